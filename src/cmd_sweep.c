/* cmd_sweep.c - `flava sweep -c SWEEP.cfg`: many runs, one results table. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runlog.h"
#include "sweep.h"

static const char help[] =
    "usage: flava sweep -c SWEEP.cfg [-s section.key=value ...] [--dry-run]\n"
    "\n"
    "Runs `flava pretrain|finetune|eval` once per [run.NAME] section and once per\n"
    "point of each [grid.NAME] section, `parallel` at a time, and collects what\n"
    "they report into one table, OUT/results.md (also .csv, .json), one row per run\n"
    "in the file's order, printed at the end.\n"
    "\n"
    "  [sweep]\n"
    "  out = runs                # run folders and tables\n"
    "  parallel = 2\n"
    "  [run.zeroshot]\n"
    "  command = eval\n"
    "  config = zeroshot.cfg     # relative to the sweep file\n"
    "  set = eval.batch=64, eval.ks=1,5   # -s overrides; a comma inside a value is kept\n"
    "  [grid.lr]\n"
    "  command = finetune\n"
    "  config = vqa.cfg\n"
    "  vary = optim.lr=1e-4|3e-4, train.seed=0|1    # 4 runs: lr-lr=1e-4-seed=0, ...\n"
    "\n"
    "Run NAME is `PROGRAM COMMAND -c CONFIG -s run.threads=T -s SET... -s run.dir=OUT/NAME`\n"
    "(T: sweep.threads, else OMP_NUM_THREADS, else cores / parallel) with its\n"
    "output in OUT/NAME/output.log and its command line in OUT/NAME/command.txt.\n"
    "It succeeds when it exits with 0 and leaves OUT/NAME/results.json:\n"
    "  {\"command\": \"eval\", \"task\": \"zeroshot\", \"dataset\": \"fashion-mnist\",\n"
    "   \"metric\": \"accuracy\", \"value\": 0.812,\n"
    "   \"metrics\": {\"accuracy\": 0.812, \"top5\": 0.97}, \"wall_seconds\": 41.2}\n"
    "A run with a valid results.json is complete: running the sweep again skips it\n"
    "(and refuses if its command.txt shows other settings). Any other run starts\n"
    "again in an emptied folder, or, if its section says resume = true and its\n"
    "folder exists, in that folder with --resume added.\n"
    "Before the first run starts, every run that is not complete is checked (its\n"
    "command with --check: sections, keys and task); if one fails, none starts.\n"
    "A failed run is reported in the table with the last line of its log; the\n"
    "others go on, and the sweep exits non-zero at the end. Ctrl-C stops launching,\n"
    "passes the interrupt on to the running runs, kills them after `grace`\n"
    "seconds, writes the partial table and exits non-zero.\n"
    "Paths in the file are relative to the sweep file; paths given with -s to the\n"
    "working directory. --dry-run lists the runs and their commands, and checks them.\n"
    "\n"
    "Keys:\n";

/* Lists every run: complete or not, and its command line; then checks the
 * runs that are not complete. */
static flava_status dry_run(flava_sweep *s)
{
    FLAVA_TRY(flava_sweep_scan(s));
    for (int i = 0; i < s->nruns; i++) {
        char **argv;
        FLAVA_TRY(flava_sweep_argv(&argv, s, i, NULL));
        printf("%-30s %-9s", s->runs[i].name, s->runs[i].earlier ? "complete" : "pending");
        for (char **a = argv; *a; a++)
            printf(" %s", *a);
        printf("\n");
        free(argv);
    }
    return flava_sweep_check(s, stderr);
}

flava_status flava_cmd_sweep(int argc, char **argv)
{
    const char *path = NULL;
    bool dry = false;
    const char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    int noverrides = 0;
    if (!overrides)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot hold the arguments");
    flava_status st = FLAVA_OK;
    for (int i = 0; st == FLAVA_OK && i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(help, stdout);
            st = flava_sweep_describe(stdout);
            free(overrides);
            return st;
        }
        if (!strcmp(argv[i], "--dry-run"))
            dry = true;
        else if (!strcmp(argv[i], "-c") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            overrides[noverrides++] = argv[++i];
        else
            st = FLAVA_ERROR(FLAVA_ERR_ARG, "unexpected argument '%s'; usage: flava sweep -c "
                             "SWEEP.cfg [-s section.key=value ...] [--dry-run]", argv[i]);
    }
    if (st == FLAVA_OK && !path)
        st = FLAVA_ERROR(FLAVA_ERR_ARG, "usage: flava sweep -c SWEEP.cfg [-s section.key=value ...] "
                         "[--dry-run]");
    flava_sweep *s = NULL;
    if (st == FLAVA_OK)
        st = flava_sweep_load(&s, path, overrides, noverrides);
    free(overrides);
    if (st == FLAVA_OK && dry)
        st = dry_run(s);
    else if (st == FLAVA_OK) {
        int failed = 0;
        flava_interrupt_install();
        st = flava_sweep_execute(s, stderr, &failed);
        if (st == FLAVA_OK || st == FLAVA_ERR_INTERRUPTED) {
            printf("\n");
            flava_sweep_table_md(s, stdout);
        }
        if (st == FLAVA_OK && failed)
            st = FLAVA_ERROR(FLAVA_ERR_IO, "%d of %d runs failed (see %s/results.md and their output.log)",
                             failed, s->nruns, s->out);
    }
    flava_sweep_free(s);
    return st;
}
