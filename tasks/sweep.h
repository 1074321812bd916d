/* sweep.h - many runs of `flava pretrain|finetune|eval`, one results table.
 *
 * A sweep file (INI, src/cfg.h) names runs one by one (`[run.NAME]`) or as
 * grids over hyper-parameters (`[grid.NAME]`, cartesian product of `vary`).
 * Each run is a child process `PROGRAM COMMAND -c CONFIG -s ... -s
 * run.dir=OUT/NAME` with its output in OUT/NAME/output.log; on success it
 * leaves OUT/NAME/results.json:
 *   {"command": "eval", "task": "zeroshot", "dataset": "fashion-mnist",
 *    "metric": "accuracy", "value": 0.812,
 *    "metrics": {"accuracy": 0.812, "top5": 0.97}, "wall_seconds": 41.2}
 * (tasks/task.h's flava_results_write writes it.)
 * A run whose results.json exists and is valid is complete and skipped when
 * the sweep starts again. The table (Markdown, CSV, JSON) has one row per
 * run in the sweep file's order. `flava sweep --help` documents the keys. */
#ifndef FLAVA_SWEEP_H
#define FLAVA_SWEEP_H

#include <stdbool.h>
#include <stdio.h>

#include "status.h"

/* A run's results.json. */
typedef struct flava_sweep_result {
    char *command, *task, *dataset, *metric;
    double value;        /* metrics[metric] */
    int nmetrics;
    char **names;        /* every metric, in the file's order */
    double *values;
    double wall_seconds;
} flava_sweep_result;

/* Parses results.json text; `where` names it in errors. Every field above
 * is required; command is pretrain, finetune or eval; value must be
 * metrics[metric]. On failure *r is left empty. */
flava_status flava_sweep_result_parse(flava_sweep_result *r, const char *json, const char *where);
flava_status flava_sweep_result_read(flava_sweep_result *r, const char *path);
void flava_sweep_result_free(flava_sweep_result *r);

typedef enum flava_sweep_state {
    FLAVA_SWEEP_PENDING,     /* not started (yet) */
    FLAVA_SWEEP_RUNNING,
    FLAVA_SWEEP_OK,
    FLAVA_SWEEP_FAILED,
    FLAVA_SWEEP_INTERRUPTED, /* stopped by Ctrl-C */
} flava_sweep_state;

enum { FLAVA_SWEEP_MD = 1, FLAVA_SWEEP_CSV = 2, FLAVA_SWEEP_JSON = 4 };

typedef struct flava_sweep_run {
    char *name;       /* its folder under out */
    char *where;      /* "sweep.cfg:12", the line of its section, for messages */
    char *command;    /* pretrain | finetune | eval */
    char *config;     /* absolute path */
    char *dir;        /* out/name, absolute */
    char **sets;      /* section.key=value: the section's `set`, then the grid point */
    int nsets;
    int nvaried;      /* the last nvaried sets are the grid point */
    const char **params; /* each hyper-parameter column's value (in sets), NULL if not varied */
    bool resume;      /* an incomplete run is resumed (--resume), not restarted */
    int ranks;        /* data-parallel ranks: > 1 runs it under the sweep's launcher */
    /* outcome */
    flava_sweep_state state;
    bool earlier;     /* complete before this sweep started */
    flava_sweep_result result;
    char *error;      /* FAILED: why, usually the last line of output.log */
    double wall_seconds;
    int pid;
    double t_start;
} flava_sweep_run;

typedef struct flava_sweep {
    char *path;       /* the sweep file */
    char *out;        /* absolute */
    char *program;    /* what is executed */
    char **launcher;  /* what starts a run of several ranks, before -np N (mpirun ...) */
    int nlauncher;
    int parallel;
    int threads;      /* run.threads of each run */
    double grace;     /* seconds the runs get to stop after Ctrl-C */
    int formats;      /* FLAVA_SWEEP_MD | ... */
    flava_sweep_run *runs;
    int nruns;
    char **param_keys; /* the varied hyper-parameters of all grids, in order of appearance */
    int nparams;
} flava_sweep;

/* Reads the sweep file and the -s overrides (section.key=value), expands
 * the grids and checks everything that can be checked before a run starts:
 * keys, commands, that every config exists, the program, unique run names.
 * Errors name the file and line. */
flava_status flava_sweep_load(flava_sweep **out, const char *path, const char *const *overrides,
                              int noverrides);
void flava_sweep_free(flava_sweep *s);

/* Runs the command of each run that is not complete (flava_sweep_scan) with
 * --check, one after another, so that a typo in the last run's settings
 * costs none of the runs before it. A failing check's message goes to the
 * sweep's standard error, a line naming its run to log; the error counts
 * and names the runs that failed. */
flava_status flava_sweep_check(const flava_sweep *s, FILE *log);

/* Run i's command line, argv[0] being the program; NULL-terminated, freed
 * with free() (one block). A flag (--resume, --check), unless NULL, ends it. */
flava_status flava_sweep_argv(char ***argv, const flava_sweep *s, int i, const char *flag);

/* Marks the runs that are complete already (valid results.json). A
 * complete run whose command.txt shows another command line is an error:
 * its results would not belong to this sweep. */
flava_status flava_sweep_scan(flava_sweep *s);

/* Runs the pending runs, `parallel` at a time, rewriting the tables after
 * each; progress lines go to `log`. Ctrl-C (flava_interrupt_install) stops
 * launching, forwards the interrupt to the running runs, kills them after
 * `grace` seconds, and returns FLAVA_ERR_INTERRUPTED after writing the
 * tables. Failed runs do not stop the others; *nfailed counts them. */
flava_status flava_sweep_execute(flava_sweep *s, FILE *log, int *nfailed);

/* The table as Markdown, CSV or JSON. */
flava_status flava_sweep_table_md(const flava_sweep *s, FILE *f);
flava_status flava_sweep_table_csv(const flava_sweep *s, FILE *f);
flava_status flava_sweep_table_json(const flava_sweep *s, FILE *f);
/* OUT/results.{md,csv,json} as selected by `format`. */
flava_status flava_sweep_write_tables(const flava_sweep *s);

/* The keys of a sweep file with their defaults and help (flava sweep --help). */
flava_status flava_sweep_describe(FILE *f);

#endif
