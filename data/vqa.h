/* vqa.h - VQAv2: questions and annotations JSON, the image folder, answer
 * normalisation and accuracy as the official VQA evaluation computes them
 * (overall and per answer type), the question-type prior baseline,
 * predictions in the official results format, and the answer vocabulary
 * with per-question soft scores. */
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
    char *image_path;                   /* NULL when loaded without an image folder */
    int n_answers;                      /* 0 without annotations (test) */
    char *answers[FLAVA_VQA_ANSWERS];   /* normalised */
    /* The annotation's question_type ("how many") and answer_type
     * ("yes/no", "number", "other"), NULL where it has none: the official
     * evaluation would stop there (KeyError); we load such data and leave
     * the question out of the per-type figures. */
    char *question_type, *answer_type;
    /* multiple_choice_answer, normalised; where the annotation has none, the
     * most frequent of the ten answers (ties: strcmp-first), which is how
     * VQAv2 defines it. NULL without annotations. */
    char *top_answer;
} flava_vqa_question;

typedef struct flava_vqa_set {
    long n;
    flava_vqa_question *q; /* in the questions file's order */
} flava_vqa_set;

/* Reads the questions file, and the annotations file unless it is NULL;
 * every question must have exactly one annotation with ten answers and the
 * same image_id, and its image must exist in image_dir. With image_dir NULL
 * no image is looked for (for the text-only uses: the prior baseline). */
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

/* Accuracy per answer type, as the official evaluation's perAnswerType: one
 * group per answer_type string met, kept in strcmp order. Start from {0}. */
enum { FLAVA_VQA_MAX_TYPES = 6 }; /* VQAv2 has 3 */
typedef struct flava_vqa_tally {
    double sum;                           /* over every question added */
    long n;
    int ntypes;
    const char *type[FLAVA_VQA_MAX_TYPES]; /* the questions' own strings */
    double type_sum[FLAVA_VQA_MAX_TYPES];
    long type_n[FLAVA_VQA_MAX_TYPES];
    long untyped;                          /* questions without answer_type */
} flava_vqa_tally;

/* Adds question q answered with accuracy acc; a 7th answer type is an error
 * naming the question. q must outlive the tally. */
flava_status flava_vqa_tally_add(flava_vqa_tally *t, const flava_vqa_question *q, double acc);

/* The language-prior baseline: for each question_type of the training
 * annotations the most frequent top_answer among its questions (ties:
 * strcmp-first); a question whose type has no training question, or that
 * has no type, gets the most frequent top_answer of all training
 * questions. */
typedef struct flava_vqa_prior {
    int n;
    char **question_types; /* strcmp order */
    char **answers;        /* answers[i] for question_types[i] */
    char *fallback;
} flava_vqa_prior;

/* train must be annotated. */
flava_status flava_vqa_prior_build(flava_vqa_prior *p, const flava_vqa_set *train);
const char *flava_vqa_prior_answer(const flava_vqa_prior *p, const flava_vqa_question *q);
void flava_vqa_prior_free(flava_vqa_prior *p);

/* The official results format, [{"question_id": ..., "answer": ...}, ...],
 * for questions set->q[0 .. n-1] answered answers[0 .. n-1], written
 * atomically to path. */
flava_status flava_vqa_predictions_write(const char *path, const flava_vqa_set *set,
                                         const char *const *answers, long n);

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
