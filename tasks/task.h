/* task.h - what a task is: one entry of the task registry (tasks/registry.c),
 * run by `flava pretrain|finetune|eval -c run.cfg`.
 *
 * A task knows what data it reads, which heads it uses and which metrics it
 * reports. The command (src/cmd_run.c) creates the config, lets the chosen
 * task register its keys, loads the file and the -s overrides, opens the run
 * directory and the compute context, and calls run(). A task writes its
 * results with flava_results_write (RUN_DIR/results.json), which is what
 * `flava sweep` collects into its table. */
#ifndef FLAVA_TASK_H
#define FLAVA_TASK_H

#include <stdint.h>

#include "cfg.h"
#include "ctx.h"
#include "runlog.h"
#include "status.h"

typedef struct flava_run {
    flava_cfg *cfg;
    flava_ctx *ctx;
    flava_runlog log;
    const char *run_dir;
    const char *config_path; /* the file given with -c, for relative paths */
    uint64_t seed;
    int threads;
    int resume;              /* --resume was given */
    int64_t bench_steps;     /* flava bench: time this many steps, save nothing */
} flava_run;

typedef struct flava_task_ops {
    const char *name;    /* `task = NAME` in [run] */
    const char *command; /* "pretrain", "finetune" or "eval" */
    const char *summary;
    /* Registers the task's own config keys (the common ones are registered
     * by the command). */
    flava_status (*register_keys)(flava_cfg *cfg);
    /* Runs the task to the end, writing RUN_DIR/results.json. */
    flava_status (*run)(flava_run *run);
} flava_task_ops;

/* The registry, and the task of a command by name (NULL: none). */
extern const flava_task_ops *const flava_tasks[];
extern const int flava_num_tasks;
const flava_task_ops *flava_task_find(const char *command, const char *name);

/* RUN_DIR/results.json: {"command", "task", "dataset", "metric", "value",
 * "metrics": {names[i]: values[i]}, "wall_seconds"}; `metric` must be one of
 * names[] and is the one the task's literature reports. Written atomically. */
flava_status flava_results_write(const char *run_dir, const char *command, const char *task,
                                 const char *dataset, const char *metric,
                                 const char *const *names, const double *values, int n,
                                 double wall_seconds);

#endif
