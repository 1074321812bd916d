/* glue.h - the nine GLUE tasks in the TSV layouts of the original GLUE
 * release (train.tsv, dev.tsv, test.tsv; MNLI with dev_matched,
 * dev_mismatched, test_matched, test_mismatched), and their official
 * metrics. */
#ifndef FLAVA_DATA_GLUE_H
#define FLAVA_DATA_GLUE_H

#include <stdint.h>

#include "status.h"

typedef enum flava_glue_task {
    FLAVA_GLUE_COLA,
    FLAVA_GLUE_SST2,
    FLAVA_GLUE_MRPC,
    FLAVA_GLUE_STSB,
    FLAVA_GLUE_QQP,
    FLAVA_GLUE_MNLI,
    FLAVA_GLUE_QNLI,
    FLAVA_GLUE_RTE,
    FLAVA_GLUE_WNLI,
    FLAVA_GLUE_NTASKS
} flava_glue_task;

typedef struct flava_glue_info {
    const char *name;          /* "cola", "sst2", ... */
    int is_pair;               /* two sentences per example */
    int num_labels;            /* 0 for the regression task STS-B */
    const char *labels[3];     /* label vocab: class id -> label text in the files */
    int num_metrics;
    const char *metrics[2];    /* "matthews", "accuracy", "f1", "pearson", "spearman" */
} flava_glue_info;

const flava_glue_info *flava_glue_task_info(flava_glue_task task);
/* Accepts the short names ("sst2") and the GLUE spellings ("SST-2"). */
flava_status flava_glue_task_from_name(flava_glue_task *task, const char *name);

typedef struct flava_glue_set {
    flava_glue_task task;
    long n;
    int has_labels;  /* 0 for GLUE's test splits (no label column) */
    char **text_a;
    char **text_b;   /* NULL for single-sentence tasks */
    int32_t *labels; /* class ids, classification tasks with labels */
    float *scores;   /* similarity 0..5, STS-B with labels */
} flava_glue_set;

/* Reads DIR/SPLIT.tsv. SPLIT is train, dev or test (MNLI: train,
 * dev_matched, dev_mismatched, test_matched, test_mismatched). Every line is
 * checked: field count, non-empty sentences, a known label. */
flava_status flava_glue_load(flava_glue_set *set, flava_glue_task task, const char *dir,
                             const char *split);
void flava_glue_free(flava_glue_set *set);

/* The task's official metrics of predictions against a labelled set:
 * pred_labels (classification) or pred_scores (STS-B); values[i] goes with
 * flava_glue_task_info(task)->metrics[i]. */
flava_status flava_glue_score(double values[2], const flava_glue_set *set,
                              const int32_t *pred_labels, const float *pred_scores);

#endif
