/* main.c - the `flava` program: finds the subcommand, runs it, prints the
 * error if any. The only place that exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "cli.h"
#include "dist.h"

static const flava_command commands[] = {
    {"data", "generate or convert data sets (scenes, spam)", flava_cmd_data},
    {"forward", "run the model on named HF inputs, write HF-named outputs", flava_cmd_forward},
    {"info", "list the tensors and metadata of a safetensors file", flava_cmd_info},
    {"report", "write an SVG of a run's curves and a Markdown summary", flava_cmd_report},
    {"sweep", "many pretrain/finetune/eval runs into one results table", flava_cmd_sweep},
    {"tokenizer", "train, encode, decode with SentencePiece or WordPiece", flava_cmd_tokenizer},
    {"pretrain", "pretrain a model: FLAVA, CLIP or ALIGN (-c run.cfg)", flava_cmd_pretrain},
    {"finetune", "fine-tune a model on a task (-c run.cfg)", flava_cmd_finetune},
    {"eval", "evaluate a model (-c run.cfg)", flava_cmd_eval},
    {"bench", "samples/s and GFLOP/s of training steps (-c run.cfg)", flava_cmd_bench},
    {"help", "help config: every key of a run configuration", flava_cmd_help},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: flava COMMAND [ARGS...]\n\ncommands:\n");
    for (const flava_command *c = commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n`flava COMMAND --help` describes one command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || (!strcmp(argv[1], "help") && argc == 2)) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("%s\n", PACKAGE_STRING);
        return 0;
    }
    for (const flava_command *c = commands; c->name; c++) {
        if (strcmp(c->name, argv[1]))
            continue;
        flava_status s = flava_dist_init(&argc, &argv);
        /* the ranks share training steps; any other command would only run
         * as many times over */
        if (s == FLAVA_OK && flava_dist_size() > 1 && strcmp(c->name, "pretrain") &&
            strcmp(c->name, "finetune"))
            s = FLAVA_ERROR(FLAVA_ERR_ARG, "flava %s runs in one process, not in %d MPI ranks: "
                            "mpirun spreads the training steps of pretrain and finetune only",
                            c->name, flava_dist_size());
        if (s == FLAVA_OK)
            s = c->run(argc - 2, argv + 2);
        if (s != FLAVA_OK) {
            if (flava_dist_size() > 1)
                fprintf(stderr, "flava %s (rank %d of %d): error: %s\n", c->name,
                        flava_dist_rank(), flava_dist_size(), flava_error_message());
            else
                fprintf(stderr, "flava %s: error: %s\n", c->name, flava_error_message());
            if (getenv("FLAVA_DEBUG"))
                fprintf(stderr, "  (raised at %s)\n", flava_error_where());
            /* the other ranks stop at the same step when interrupted; after
             * any other error they would wait for this one forever */
            if (s != FLAVA_ERR_INTERRUPTED)
                flava_dist_abort(1);
            flava_dist_finalize();
            return 1;
        }
        flava_dist_finalize();
        return 0;
    }
    fprintf(stderr, "flava: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
