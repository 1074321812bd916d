/* cmd_run.c - `flava pretrain|finetune|eval -c run.cfg [-s section.key=value
 * ...] [--resume | --check]`, `flava bench -c run.cfg` and `flava help
 * config`. */
#include <ftw.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "cli.h"
#include "ctx.h"
#include "dist.h"
#include "task.h"
#include "train.h"

typedef struct args {
    const char *config;
    const char **sets;
    int nsets, resume, check;
    int64_t bench_steps;
} args;

static flava_status parse_args(args *a, const char *command, int argc, char **argv, int bench)
{
    memset(a, 0, sizeof *a);
    a->sets = calloc((size_t)argc + 1, sizeof *a->sets);
    if (!a->sets)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "arguments");
    a->bench_steps = 5;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        const int has_value = i + 1 < argc;
        if (!strcmp(o, "-c") && has_value)
            a->config = argv[++i];
        else if (!strcmp(o, "-s") && has_value)
            a->sets[a->nsets++] = argv[++i];
        else if (!strcmp(o, "--resume") && !bench)
            a->resume = 1;
        else if (!strcmp(o, "--check") && !bench)
            a->check = 1;
        else if (!strcmp(o, "--steps") && has_value && bench) {
            char *end;
            a->bench_steps = strtoll(argv[++i], &end, 10);
            if (*end || a->bench_steps < 1)
                return FLAVA_ERROR(FLAVA_ERR_ARG, "--steps %s: expected a positive count", argv[i]);
        } else
            return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: unexpected argument '%s'%s (see flava %s "
                               "--help)", command, o,
                               (!strcmp(o, "-c") || !strcmp(o, "-s") || !strcmp(o, "--steps"))
                                   ? " without its value" : "", command);
    }
    if (!a->config)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: -c run.cfg is required (see flava %s --help)",
                           command, command);
    return FLAVA_OK;
}

/* Registers the common keys and those of every task (a file for another
 * command's task then fails on run.task, not on that task's keys). */
static flava_status register_all(flava_cfg *cfg)
{
    FLAVA_TRY(flava_train_register_keys(cfg));
    for (int i = 0; i < flava_num_tasks; i++)
        FLAVA_TRY(flava_tasks[i]->register_keys(cfg));
    return FLAVA_OK;
}

static flava_status unknown_task(const char *command, const char *name, const char *where)
{
    char list[1024] = "";
    size_t len = 0;
    for (int i = 0; i < flava_num_tasks && len < sizeof list; i++)
        if (!strcmp(flava_tasks[i]->command, command))
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                    flava_tasks[i]->name);
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: run.task = '%s' is not a task of flava %s "
                       "(tasks: %s)", where, name, command, len ? list : "none yet");
}

static flava_status run_with(flava_run *run, const flava_task_ops *task, const args *a,
                             const char *command)
{
    flava_cfg *cfg = run->cfg;
    const char *dir, *precision;
    int64_t seed, threads;
    FLAVA_TRY(flava_cfg_get_string(cfg, "run", "dir", &dir));
    FLAVA_TRY(flava_cfg_get_int(cfg, "run", "seed", &seed));
    FLAVA_TRY(flava_cfg_get_int(cfg, "run", "threads", &threads));
    FLAVA_TRY(flava_cfg_get_string(cfg, "run", "precision", &precision));
    if (threads < 1 || threads > 1024)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: run.threads = %lld: expected 1 to 1024",
                           flava_cfg_where(cfg, "run", "threads"), (long long)threads);
    flava_precision prec;
    if (!strcmp(precision, "f32"))
        prec = FLAVA_PRECISION_F32;
    else if (!strcmp(precision, "bf16"))
        prec = FLAVA_PRECISION_BF16;
    else
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: run.precision = '%s': expected f32 or bf16",
                           flava_cfg_where(cfg, "run", "precision"), precision);
    run->run_dir = dir;
    run->seed = (uint64_t)seed;
    run->threads = (int)threads;
    run->resume = a->resume;
    omp_set_num_threads((int)threads);
    int64_t latest;
    FLAVA_TRY(flava_train_latest(dir, &latest));
    if (latest && !a->resume && !run->bench_steps)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s already holds checkpoints (step %lld): continue "
                           "it with --resume or choose another run.dir", dir, (long long)latest);
    FLAVA_TRY(flava_ctx_create(&run->ctx, prec));
    flava_status s = flava_runlog_open(&run->log, dir, 0, 0);
    if (s == FLAVA_OK) {
        char path[4200];
        snprintf(path, sizeof path, "%s/config.ini", dir);
        if (flava_dist_rank() == 0)
            s = flava_cfg_write(cfg, path);
        if (s == FLAVA_OK) {
            flava_runlog_printf(&run->log, "flava %s: task %s, run directory %s%s", command,
                                task->name, dir, a->resume ? " (resuming)" : "");
            s = task->run(run);
        }
        if (s != FLAVA_OK && run->log.log) /* main() prints it on stderr */
            fprintf(run->log.log, "error: %s\n", flava_error_message());
        flava_runlog_close(&run->log);
    }
    flava_ctx_destroy(run->ctx);
    return s;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static flava_status run_command(const char *command, int argc, char **argv, int bench)
{
    if (argc >= 1 && !strcmp(argv[0], "--help")) {
        if (bench)
            printf("usage: flava bench -c run.cfg [-s section.key=value ...] [--steps N]\n\n"
                   "Times N training steps (default 5, after one warm-up step) of the run's task\n"
                   "in a scratch run directory: seconds per step, samples/s and the encoders'\n"
                   "GFLOP/s (GEMMs and attention, forward and backward).\n");
        else
            printf("usage: flava %s -c run.cfg [-s section.key=value ...] [--resume | --check]\n\n"
                   "Runs the task named by [run] task. `flava help config` lists every key.\n"
                   "--resume continues run.dir from its newest checkpoint.\n"
                   "--check reads the configuration and the settings, checks that every section\n"
                   "and key is known and that the task is one of flava %s, and stops there:\n"
                   "nothing is run or written (values are checked when the task reads them).\n",
                   command, command);
        return FLAVA_OK;
    }
    args a;
    flava_cfg *cfg = NULL;
    flava_status s = parse_args(&a, bench ? "bench" : command, argc, argv, bench);
    if (s == FLAVA_OK)
        s = flava_cfg_create(&cfg);
    if (s == FLAVA_OK)
        s = register_all(cfg);
    if (s == FLAVA_OK)
        s = flava_cfg_load(cfg, a.config);
    for (int i = 0; s == FLAVA_OK && i < a.nsets; i++)
        s = flava_cfg_set(cfg, a.sets[i]);
    const char *name = NULL;
    if (s == FLAVA_OK)
        s = flava_cfg_get_string(cfg, "run", "task", &name);
    const flava_task_ops *task = NULL;
    if (s == FLAVA_OK) {
        for (int i = 0; i < flava_num_tasks && !task; i++)
            if (!strcmp(flava_tasks[i]->name, name) &&
                (bench || !strcmp(flava_tasks[i]->command, command)))
                task = flava_tasks[i];
        if (!task)
            s = unknown_task(command, name, flava_cfg_where(cfg, "run", "task"));
    }
    char scratch[] = "/tmp/flava-bench-XXXXXX";
    if (s == FLAVA_OK && bench) {
        char set[64];
        if (!mkdtemp(scratch))
            s = FLAVA_ERROR(FLAVA_ERR_IO, "bench: cannot create a scratch directory in /tmp");
        char dirset[128];
        snprintf(dirset, sizeof dirset, "run.dir=%s", scratch);
        snprintf(set, sizeof set, "train.steps=%lld", (long long)a.bench_steps + 1);
        if (s == FLAVA_OK)
            s = flava_cfg_set(cfg, dirset);
        if (s == FLAVA_OK)
            s = flava_cfg_set(cfg, set);
    }
    if (s == FLAVA_OK && a.check) {
        if (flava_dist_rank() == 0)
            printf("%s: task %s of flava %s: every section and key is known\n", a.config, name,
                   command);
    } else if (s == FLAVA_OK) {
        flava_run run = {.cfg = cfg, .config_path = a.config, .bench_steps = bench ? a.bench_steps : 0};
        s = run_with(&run, task, &a, bench ? "bench" : command);
        if (s == FLAVA_OK && flava_dist_rank() == 0)
            flava_cfg_warn_unread(cfg, stderr);
    }
    if (bench && scratch[strlen(scratch) - 1] != 'X') /* the scratch run of bench goes */
        nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    flava_cfg_free(cfg);
    free(a.sets);
    return s;
}

flava_status flava_cmd_pretrain(int argc, char **argv)
{
    return run_command("pretrain", argc, argv, 0);
}

flava_status flava_cmd_finetune(int argc, char **argv)
{
    return run_command("finetune", argc, argv, 0);
}

flava_status flava_cmd_eval(int argc, char **argv)
{
    return run_command("eval", argc, argv, 0);
}

flava_status flava_cmd_bench(int argc, char **argv)
{
    return run_command("bench", argc, argv, 1);
}

flava_status flava_cmd_help(int argc, char **argv)
{
    if (argc != 1 || strcmp(argv[0], "config"))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "help: expected `flava help config` (the run "
                           "configuration keys); `flava --help` lists the commands");
    flava_cfg *cfg;
    FLAVA_TRY(flava_cfg_create(&cfg));
    flava_status s = register_all(cfg);
    if (s == FLAVA_OK) {
        printf("Run configuration (INI) of flava pretrain|finetune|eval|bench; -s section.key=value\n"
               "overrides a key. [data.NAME] sections are named by you, one per source.\n\ntasks:\n");
        for (int i = 0; i < flava_num_tasks; i++)
            printf("  %-10s %-10s %s\n", flava_tasks[i]->command, flava_tasks[i]->name,
                   flava_tasks[i]->summary);
        printf("\n");
        flava_cfg_describe(cfg, stdout);
    }
    flava_cfg_free(cfg);
    return s;
}
