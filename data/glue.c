/* glue.c - GLUE TSV readers. Columns are found by their header names (the
 * positions differ from task to task and between splits); CoLA's train and
 * dev files have no header, so their positions are fixed. */
#include "glue.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "tsv.h"

static const flava_glue_info infos[FLAVA_GLUE_NTASKS] = {
    [FLAVA_GLUE_COLA] = {"cola", 0, 2, {"0", "1"}, 1, {"matthews"}},
    [FLAVA_GLUE_SST2] = {"sst2", 0, 2, {"0", "1"}, 1, {"accuracy"}},
    [FLAVA_GLUE_MRPC] = {"mrpc", 1, 2, {"0", "1"}, 2, {"f1", "accuracy"}},
    [FLAVA_GLUE_STSB] = {"stsb", 1, 0, {NULL}, 2, {"pearson", "spearman"}},
    [FLAVA_GLUE_QQP] = {"qqp", 1, 2, {"0", "1"}, 2, {"f1", "accuracy"}},
    [FLAVA_GLUE_MNLI] = {"mnli", 1, 3, {"entailment", "neutral", "contradiction"}, 1,
                         {"accuracy"}},
    [FLAVA_GLUE_QNLI] = {"qnli", 1, 2, {"entailment", "not_entailment"}, 1, {"accuracy"}},
    [FLAVA_GLUE_RTE] = {"rte", 1, 2, {"entailment", "not_entailment"}, 1, {"accuracy"}},
    [FLAVA_GLUE_WNLI] = {"wnli", 1, 2, {"0", "1"}, 1, {"accuracy"}},
};

/* Header names of the sentence and label columns (the same in every split
 * that has them). */
static const struct {
    const char *a, *b, *label;
} columns[FLAVA_GLUE_NTASKS] = {
    [FLAVA_GLUE_COLA] = {"sentence", NULL, NULL},
    [FLAVA_GLUE_SST2] = {"sentence", NULL, "label"},
    [FLAVA_GLUE_MRPC] = {"#1 String", "#2 String", "Quality"},
    [FLAVA_GLUE_STSB] = {"sentence1", "sentence2", "score"},
    [FLAVA_GLUE_QQP] = {"question1", "question2", "is_duplicate"},
    [FLAVA_GLUE_MNLI] = {"sentence1", "sentence2", "gold_label"},
    [FLAVA_GLUE_QNLI] = {"question", "sentence", "label"},
    [FLAVA_GLUE_RTE] = {"sentence1", "sentence2", "label"},
    [FLAVA_GLUE_WNLI] = {"sentence1", "sentence2", "label"},
};

/* CoLA train/dev: source, label, original annotation, sentence; no header. */
enum { COLA_FIELDS = 4, COLA_LABEL = 1, COLA_SENTENCE = 3 };

const flava_glue_info *flava_glue_task_info(flava_glue_task task)
{
    return task >= 0 && task < FLAVA_GLUE_NTASKS ? &infos[task] : NULL;
}

flava_status flava_glue_task_from_name(flava_glue_task *task, const char *name)
{
    char norm[16];
    size_t k = 0;
    for (const char *p = name; *p && k + 1 < sizeof norm; p++)
        if (*p != '-')
            norm[k++] = (char)tolower((unsigned char)*p);
    norm[k] = '\0';
    for (int t = 0; t < FLAVA_GLUE_NTASKS; t++)
        if (!strcmp(norm, infos[t].name)) {
            *task = (flava_glue_task)t;
            return FLAVA_OK;
        }
    return FLAVA_ERROR(FLAVA_ERR_ARG, "unknown GLUE task '%s', expected one of cola, sst2, mrpc, "
                       "stsb, qqp, mnli, qnli, rte, wnli", name);
}

void flava_glue_free(flava_glue_set *set)
{
    for (long i = 0; i < set->n; i++) {
        free(set->text_a[i]);
        if (set->text_b)
            free(set->text_b[i]);
    }
    free(set->text_a);
    free(set->text_b);
    free(set->labels);
    free(set->scores);
    memset(set, 0, sizeof *set);
}

static int split_ok(flava_glue_task task, const char *split)
{
    static const char *const plain[] = {"train", "dev", "test", NULL};
    static const char *const mnli[] = {"train", "dev_matched", "dev_mismatched", "test_matched",
                                       "test_mismatched", NULL};
    for (const char *const *s = task == FLAVA_GLUE_MNLI ? mnli : plain; *s; s++)
        if (!strcmp(*s, split))
            return 1;
    return 0;
}

/* Where the fields of one split are. */
typedef struct layout {
    int nfields, a, b, label; /* b, label: -1 when absent */
} layout;

static flava_status find_column(int *col, const flava_tsv *t, const char *name)
{
    *col = flava_tsv_find(t, name);
    if (*col < 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:1: header has no column '%s'; is this the "
                           "right task's file?", t->path, name);
    return FLAVA_OK;
}

/* A test split is unlabelled in GLUE's layout; one whose header has the
 * label column (a corpus split the GLUE way, e.g. `flava data spam`) is
 * scored like dev. */
static flava_status read_layout(layout *l, flava_tsv *t, flava_glue_task task, int *labelled_io)
{
    int labelled = *labelled_io;
    int more;
    FLAVA_TRY(flava_tsv_next(t, &more));
    if (!more)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: empty file, expected %s", t->path,
                           task == FLAVA_GLUE_COLA && labelled ? "CoLA examples" : "a header row");
    if (task == FLAVA_GLUE_COLA && labelled) {
        /* no header: the first line is already an example */
        *l = (layout){COLA_FIELDS, COLA_SENTENCE, -1, COLA_LABEL};
        return FLAVA_OK;
    }
    *l = (layout){t->nfields, -1, -1, -1};
    FLAVA_TRY(find_column(&l->a, t, columns[task].a));
    if (columns[task].b)
        FLAVA_TRY(find_column(&l->b, t, columns[task].b));
    if (!labelled && columns[task].label)
        labelled = *labelled_io = flava_tsv_find(t, columns[task].label) >= 0;
    if (labelled)
        FLAVA_TRY(find_column(&l->label, t, columns[task].label));
    return FLAVA_OK;
}

static flava_status grow(flava_glue_set *set, long *cap, const char *path)
{
    long c = *cap ? 2 * *cap : 1024;
    char **a = realloc(set->text_a, sizeof(char *) * c);
    if (!a)
        goto nomem;
    set->text_a = a;
    if (infos[set->task].is_pair) {
        char **b = realloc(set->text_b, sizeof(char *) * c);
        if (!b)
            goto nomem;
        set->text_b = b;
    }
    if (set->has_labels && set->task == FLAVA_GLUE_STSB) {
        float *s = realloc(set->scores, sizeof(float) * c);
        if (!s)
            goto nomem;
        set->scores = s;
    } else if (set->has_labels) {
        int32_t *l = realloc(set->labels, sizeof(int32_t) * c);
        if (!l)
            goto nomem;
        set->labels = l;
    }
    *cap = c;
    return FLAVA_OK;
nomem:
    return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot grow the example list past %ld", path, *cap);
}

static flava_status parse_label(flava_glue_set *set, const flava_tsv *t, const char *text)
{
    const flava_glue_info *info = &infos[set->task];
    if (set->task == FLAVA_GLUE_STSB) {
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (!text[0] || *end || errno || !(v >= 0 && v <= 5))
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: score '%s', expected a number from 0 "
                               "to 5", t->path, t->line, text);
        set->scores[set->n] = (float)v;
        return FLAVA_OK;
    }
    for (int c = 0; c < info->num_labels; c++)
        if (!strcmp(text, info->labels[c])) {
            set->labels[set->n] = c;
            return FLAVA_OK;
        }
    return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: label '%s', expected %s%s%s%s%s", t->path,
                       t->line, text, info->labels[0], ", ", info->labels[1],
                       info->num_labels > 2 ? ", " : "", info->num_labels > 2 ? info->labels[2] : "");
}

static flava_status add_text(char **out, const flava_tsv *t, int col)
{
    if (!t->fields[col][0])
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: empty sentence in column %d", t->path,
                           t->line, col + 1);
    return flava_strdup(out, t->fields[col]);
}

static flava_status read_examples(flava_glue_set *set, flava_tsv *t)
{
    layout l = {0, -1, -1, -1};
    FLAVA_TRY(read_layout(&l, t, set->task, &set->has_labels));
    int headerless = set->task == FLAVA_GLUE_COLA && set->has_labels;
    long cap = 0;
    int more = 1;
    for (int first = headerless; ; first = 0) {
        if (!first)
            FLAVA_TRY(flava_tsv_next(t, &more));
        if (!more)
            break;
        if (t->nfields != l.nfields)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: %d tab-separated fields, expected %d "
                               "(%s layout)", t->path, t->line, t->nfields, l.nfields,
                               infos[set->task].name);
        if (set->n == cap)
            FLAVA_TRY(grow(set, &cap, t->path));
        if (l.label >= 0)
            FLAVA_TRY(parse_label(set, t, t->fields[l.label]));
        FLAVA_TRY(add_text(&set->text_a[set->n], t, l.a));
        if (l.b >= 0) {
            flava_status s = add_text(&set->text_b[set->n], t, l.b);
            if (s != FLAVA_OK) {
                free(set->text_a[set->n]);
                return s;
            }
        }
        set->n++;
    }
    if (set->n == 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no examples, expected at least one", t->path);
    return FLAVA_OK;
}

flava_status flava_glue_load(flava_glue_set *set, flava_glue_task task, const char *dir,
                             const char *split)
{
    memset(set, 0, sizeof *set);
    if (!flava_glue_task_info(task))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "GLUE task id %d, expected 0 to %d", (int)task,
                           FLAVA_GLUE_NTASKS - 1);
    if (!split_ok(task, split))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "GLUE %s has no split '%s' (expected %s)",
                           infos[task].name, split,
                           task == FLAVA_GLUE_MNLI ? "train, dev_matched, dev_mismatched, "
                                                     "test_matched or test_mismatched"
                                                   : "train, dev or test");
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s.tsv", dir, split) >= (int)sizeof path)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "GLUE directory path too long: %s", dir);
    set->task = task;
    set->has_labels = strncmp(split, "test", 4) != 0;
    flava_tsv t;
    FLAVA_TRY(flava_tsv_open(&t, path));
    flava_status s = read_examples(set, &t);
    flava_tsv_close(&t);
    if (s != FLAVA_OK)
        flava_glue_free(set);
    return s;
}

flava_status flava_glue_score(double values[2], const flava_glue_set *set,
                              const int32_t *pred_labels, const float *pred_scores)
{
    const flava_glue_info *info = &infos[set->task];
    if (!set->has_labels)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "GLUE %s: cannot score a test split, it has no labels",
                           info->name);
    if (set->task == FLAVA_GLUE_STSB ? !pred_scores : !pred_labels)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "GLUE %s: expected %s predictions", info->name,
                           set->task == FLAVA_GLUE_STSB ? "score" : "class");
    for (int m = 0; m < info->num_metrics; m++) {
        const char *name = info->metrics[m];
        if (!strcmp(name, "matthews"))
            FLAVA_TRY(flava_metric_matthews(&values[m], pred_labels, set->labels, set->n));
        else if (!strcmp(name, "accuracy"))
            FLAVA_TRY(flava_metric_accuracy(&values[m], pred_labels, set->labels, set->n));
        else if (!strcmp(name, "f1"))
            FLAVA_TRY(flava_metric_f1(&values[m], pred_labels, set->labels, set->n));
        else if (!strcmp(name, "pearson"))
            FLAVA_TRY(flava_metric_pearson(&values[m], pred_scores, set->scores, set->n));
        else
            FLAVA_TRY(flava_metric_spearman(&values[m], pred_scores, set->scores, set->n));
    }
    return FLAVA_OK;
}
