/* vqa.h - VQAv2: questions and annotations JSON, the image folder, answer
 * normalisation and accuracy as the official VQA evaluation computes them,
 * and the answer vocabulary with per-question soft scores. */
#ifndef FLAVA_DATA_VQA_H
#define FLAVA_DATA_VQA_H

#include <stdint.h>

#include "status.h"

#define FLAVA_VQA_ANSWERS 10 /* human answers per question in VQAv2 */

typedef enum flava_vqa_naming {
    FLAVA_VQA_COCO, /* COCO_<data_subtype>_<image_id, 12 digits>.jpg */
    FLAVA_VQA_PNG,  /* <image_id>.png (the generated scenes) */
} flava_vqa_naming;

typedef struct flava_vqa_question {
    int64_t question_id, image_id;
    char *question;
    char *image_path;
    int n_answers;                      /* 0 without annotations (test) */
    char *answers[FLAVA_VQA_ANSWERS];   /* normalised */
} flava_vqa_question;

typedef struct flava_vqa_set {
    long n;
    flava_vqa_question *q; /* in the questions file's order */
} flava_vqa_set;

/* Reads the questions file, and the annotations file unless it is NULL;
 * every question must have exactly one annotation with ten answers and the
 * same image_id, and its image must exist in image_dir. */
flava_status flava_vqa_load(flava_vqa_set *set, const char *questions_path,
                            const char *annotations_path, const char *image_dir,
                            flava_vqa_naming naming);
void flava_vqa_free(flava_vqa_set *set);

/* The official normalisation (punctuation, periods, lower case, number
 * words to digits, articles dropped, contractions restored); *out is
 * malloc'ed. */
flava_status flava_vqa_normalize(char **out, const char *answer);

/* VQA accuracy of `answer` (normalised first): the mean over the ten
 * leave-one-out subsets of the other nine answers of min(1, matches/3).
 * The human answers are normalised at load time whether or not they agree
 * (versions of the official script differ there; the released VQAv2
 * answers are already in normal form, so only other data can tell). */
flava_status flava_vqa_accuracy(double *out, const flava_vqa_question *q, const char *answer);

typedef struct flava_vqa_vocab {
    int n;
    char **answers; /* by class id */
    int *sorted;    /* class ids in strcmp order, for lookup */
} flava_vqa_vocab;

/* The top_k most frequent normalised answers over all ten answers of every
 * question; equal counts are ordered by strcmp, so the vocabulary does not
 * depend on the file order. */
flava_status flava_vqa_vocab_build(flava_vqa_vocab *v, const flava_vqa_set *set, int top_k);
/* One answer a line, class id = line number - 1. */
flava_status flava_vqa_vocab_write(const flava_vqa_vocab *v, const char *path);
flava_status flava_vqa_vocab_read(flava_vqa_vocab *v, const char *path);
int flava_vqa_vocab_find(const flava_vqa_vocab *v, const char *answer); /* -1 if absent */
void flava_vqa_vocab_free(flava_vqa_vocab *v);

/* out[v->n]: each vocabulary answer's accuracy for the question (the soft
 * target of the VQA head); answers outside the vocabulary have no slot. */
void flava_vqa_soft_scores(float *out, const flava_vqa_vocab *v, const flava_vqa_question *q);

#endif
