/* runlog.h - what a run leaves behind and shows while it goes: the run
 * directory, its log (also on stderr), metrics as JSON lines, a progress
 * line on a terminal (plain log lines otherwise), and Ctrl-C as a request to
 * stop that the training loop polls (so it can save a checkpoint first). */
#ifndef FLAVA_RUNLOG_H
#define FLAVA_RUNLOG_H

#include <stdio.h>

#include "status.h"

typedef struct flava_runlog {
    char dir[4096];
    FILE *log;      /* RUN_DIR/log.txt */
    FILE *metrics;  /* RUN_DIR/metrics.jsonl */
    int tty;        /* stderr is a terminal: redraw one progress line */
    double t_start;
    long total_steps;
    long first_step; /* where this process started (resume), for the rate */
    int silent;      /* a data-parallel rank other than 0: no files, no lines */
} flava_runlog;

/* Creates RUN_DIR (and parents) and opens log.txt and metrics.jsonl for
 * appending, so a resumed run continues the same files. On a data-parallel
 * rank other than 0 (src/dist.h) it opens nothing and the log is silent:
 * rank 0 speaks for the run. */
flava_status flava_runlog_open(flava_runlog *rl, const char *run_dir, long first_step,
                               long total_steps);
void flava_runlog_close(flava_runlog *rl);

/* A line to stderr and log.txt, time-stamped in the log. */
void flava_runlog_printf(flava_runlog *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends {"step": step, names[i]: values[i], ...} to metrics.jsonl. */
flava_status flava_runlog_metrics(flava_runlog *rl, long step, const char *const *names,
                                  const double *values, int n);

/* The progress line: step, loss, samples/s, ETA; on a terminal it redraws
 * in place, elsewhere it is a log line. */
void flava_runlog_progress(flava_runlog *rl, long step, double loss, double samples_per_s);

/* mkdir -p. */
flava_status flava_mkdirs(const char *path);

/* SIGINT (Ctrl-C) and SIGTERM (mpirun's Ctrl-C, a scheduler's time limit)
 * set a flag instead of killing the process; a second one kills. */
void flava_interrupt_install(void);
int flava_interrupted(void);

#endif
