/* vqa.c - VQAv2 readers, the official answer normalisation and accuracy
 * (overall and per answer type), the question-type prior, predictions in
 * the official results format, the answer vocabulary. */
#include "vqa.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tsv.h"

/* ---- normalisation (the rules of the official vqaEval.py) ---- */

static const char punctuation[] = ";/[]\"{}()=+\\_->@`,?!<";

static const char *const number_words[][2] = {
    {"none", "0"}, {"zero", "0"}, {"one", "1"}, {"two", "2"},   {"three", "3"}, {"four", "4"},
    {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"},
};

/* Apostrophe-less spellings and what the evaluation restores (its table,
 * including its oddities, so that accuracies agree; its capitalised keys
 * "Im", "Ive", "Id've", "I'dve" never match a lower-cased word, so they are
 * left out, and so are its entries that map a word to itself). */
static const char *const contractions[][2] = {
    {"aint", "ain't"}, {"arent", "aren't"}, {"cant", "can't"}, {"couldve", "could've"},
    {"couldnt", "couldn't"}, {"couldn'tve", "couldn't've"}, {"couldnt've", "couldn't've"},
    {"didnt", "didn't"}, {"doesnt", "doesn't"}, {"dont", "don't"}, {"hadnt", "hadn't"},
    {"hadnt've", "hadn't've"}, {"hadn'tve", "hadn't've"}, {"hasnt", "hasn't"},
    {"havent", "haven't"}, {"hed", "he'd"}, {"hed've", "he'd've"}, {"he'dve", "he'd've"},
    {"hes", "he's"}, {"howd", "how'd"}, {"howll", "how'll"}, {"hows", "how's"},
    {"isnt", "isn't"}, {"itd", "it'd"}, {"itd've", "it'd've"}, {"it'dve", "it'd've"},
    {"itll", "it'll"}, {"maam", "ma'am"}, {"mightnt", "mightn't"},
    {"mightnt've", "mightn't've"}, {"mightn'tve", "mightn't've"}, {"mightve", "might've"},
    {"mustnt", "mustn't"}, {"mustve", "must've"}, {"neednt", "needn't"}, {"notve", "not've"},
    {"oclock", "o'clock"}, {"oughtnt", "oughtn't"}, {"ow's'at", "'ow's'at"},
    {"'ows'at", "'ow's'at"}, {"'ow'sat", "'ow's'at"}, {"shant", "shan't"},
    {"shed've", "she'd've"}, {"she'dve", "she'd've"}, {"shouldve", "should've"},
    {"shouldnt", "shouldn't"}, {"shouldnt've", "shouldn't've"}, {"shouldn'tve", "shouldn't've"},
    {"somebody'd", "somebodyd"}, {"somebodyd've", "somebody'd've"},
    {"somebody'dve", "somebody'd've"}, {"somebodyll", "somebody'll"},
    {"somebodys", "somebody's"}, {"someoned", "someone'd"}, {"someoned've", "someone'd've"},
    {"someone'dve", "someone'd've"}, {"someonell", "someone'll"}, {"someones", "someone's"},
    {"somethingd", "something'd"}, {"somethingd've", "something'd've"},
    {"something'dve", "something'd've"}, {"somethingll", "something'll"}, {"thats", "that's"},
    {"thered", "there'd"}, {"thered've", "there'd've"}, {"there'dve", "there'd've"},
    {"therere", "there're"}, {"theres", "there's"}, {"theyd", "they'd"},
    {"theyd've", "they'd've"}, {"they'dve", "they'd've"}, {"theyll", "they'll"},
    {"theyre", "they're"}, {"theyve", "they've"}, {"twas", "'twas"}, {"wasnt", "wasn't"},
    {"wed've", "we'd've"}, {"we'dve", "we'd've"}, {"weve", "we've"}, {"werent", "weren't"},
    {"whatll", "what'll"}, {"whatre", "what're"}, {"whats", "what's"}, {"whatve", "what've"},
    {"whens", "when's"}, {"whered", "where'd"}, {"wheres", "where's"}, {"whereve", "where've"},
    {"whod", "who'd"}, {"whod've", "who'd've"}, {"who'dve", "who'd've"}, {"wholl", "who'll"},
    {"whos", "who's"}, {"whove", "who've"}, {"whyll", "why'll"}, {"whyre", "why're"},
    {"whys", "why's"}, {"wont", "won't"}, {"wouldve", "would've"}, {"wouldnt", "wouldn't"},
    {"wouldnt've", "wouldn't've"}, {"wouldn'tve", "wouldn't've"}, {"yall", "y'all"},
    {"yall'll", "y'all'll"}, {"y'allll", "y'all'll"}, {"yall'd've", "y'all'd've"},
    {"y'alld've", "y'all'd've"}, {"y'all'dve", "y'all'd've"}, {"youd", "you'd"},
    {"youd've", "you'd've"}, {"you'dve", "you'd've"}, {"youll", "you'll"},
    {"youre", "you're"}, {"youve", "you've"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *lookup(const char *const table[][2], size_t n, const char *word)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(table[i][0], word))
            return table[i][1];
    return NULL;
}

/* A digit, a comma and a digit anywhere: then punctuation is removed, not
 * replaced by a space (so "1,000" stays one number). */
static int has_digit_comma_digit(const char *s)
{
    for (size_t i = 0; s[i] && s[i + 1] && s[i + 2]; i++)
        if (isdigit((unsigned char)s[i]) && s[i + 1] == ',' && isdigit((unsigned char)s[i + 2]))
            return 1;
    return 0;
}

/* Whether `c` is next to a space somewhere in s ("c " or " c"). */
static int spaced(const char *s, char c)
{
    for (size_t i = 0; s[i]; i++)
        if (s[i] == c && ((s[i + 1] == ' ') || (i > 0 && s[i - 1] == ' ')))
            return 1;
    return 0;
}

flava_status flava_vqa_normalize(char **out, const char *answer)
{
    size_t len = strlen(answer);
    /* restored contractions add at most 3 bytes per word, words need >= 2 bytes */
    char *a = malloc(len + 1), *res = malloc(2 * len + 16);
    if (!a || !res) {
        free(a);
        free(res);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "normalising an answer of %zu bytes", len);
    }
    /* tabs and newlines become spaces; stripped at both ends */
    size_t start = 0, end = len;
    while (start < end && isspace((unsigned char)answer[start]))
        start++;
    while (end > start && isspace((unsigned char)answer[end - 1]))
        end--;
    memcpy(a, answer + start, end - start);
    a[end - start] = '\0';
    for (char *p = a; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    /* punctuation: each mark is removed if it touches a space anywhere in the
     * original (or a digit-comma-digit occurs), else replaced by a space */
    int comma_num = has_digit_comma_digit(a);
    char remove[sizeof punctuation] = {0};
    for (size_t k = 0; punctuation[k]; k++)
        remove[k] = (char)(comma_num || spaced(a, punctuation[k]));
    size_t m = 0;
    for (size_t i = 0; a[i]; i++) {
        const char *mark = strchr(punctuation, a[i]);
        if (!mark)
            a[m++] = a[i];
        else if (!remove[mark - punctuation])
            a[m++] = ' ';
    }
    a[m] = '\0';
    /* periods not followed by a digit go (at most 32: the evaluation passes
     * re.UNICODE where re.sub takes its count) */
    int periods = 0;
    m = 0;
    for (size_t i = 0; a[i]; i++) {
        if (a[i] == '.' && !isdigit((unsigned char)a[i + 1]) && periods < 32) {
            periods++;
            continue;
        }
        a[m++] = a[i];
    }
    a[m] = '\0';
    /* words: lower case, number words to digits, no articles, contractions */
    for (char *p = a; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    res[0] = '\0';
    size_t r = 0;
    for (char *save = NULL, *w = strtok_r(a, " \t\n\r\f\v", &save); w;
         w = strtok_r(NULL, " \t\n\r\f\v", &save)) {
        const char *num = lookup(number_words, COUNT(number_words), w);
        if (num)
            w = (char *)num;
        if (!strcmp(w, "a") || !strcmp(w, "an") || !strcmp(w, "the"))
            continue;
        const char *full = lookup(contractions, COUNT(contractions), w);
        r += (size_t)sprintf(res + r, "%s%s", r ? " " : "", full ? full : w);
    }
    free(a);
    *out = res;
    return FLAVA_OK;
}

/* ---- accuracy ---- */

static double leave_one_out(const flava_vqa_question *q, const char *answer)
{
    int matches = 0;
    for (int j = 0; j < q->n_answers; j++)
        matches += !strcmp(q->answers[j], answer);
    double sum = 0;
    for (int j = 0; j < q->n_answers; j++) {
        int others = matches - !strcmp(q->answers[j], answer);
        sum += others >= 3 ? 1.0 : others / 3.0;
    }
    return sum / q->n_answers;
}

flava_status flava_vqa_accuracy(double *out, const flava_vqa_question *q, const char *answer)
{
    if (q->n_answers == 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "question %lld has no annotated answers",
                           (long long)q->question_id);
    char *norm;
    FLAVA_TRY(flava_vqa_normalize(&norm, answer));
    *out = leave_one_out(q, norm);
    free(norm);
    return FLAVA_OK;
}

/* ---- reading ---- */

void flava_vqa_free(flava_vqa_set *set)
{
    for (long i = 0; i < set->n; i++) {
        free(set->q[i].question);
        free(set->q[i].image_path);
        for (int j = 0; j < set->q[i].n_answers; j++)
            free(set->q[i].answers[j]);
        free(set->q[i].question_type);
        free(set->q[i].answer_type);
        free(set->q[i].top_answer);
    }
    free(set->q);
    memset(set, 0, sizeof *set);
}

static flava_status parse_file(cJSON **root, const char *path, const char *array_key,
                               cJSON **array)
{
    *root = NULL;
    char *text;
    size_t len;
    FLAVA_TRY(flava_file_read(&text, &len, path));
    const char *end = NULL;
    *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!*root) {
        long at = end ? (long)(end - text) : 0, line = 1;
        for (long i = 0; i < at && i < (long)len; i++)
            line += text[i] == '\n';
        flava_free(text);
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: invalid JSON near byte %ld", path, line, at);
    }
    flava_free(text);
    *array = cJSON_GetObjectItemCaseSensitive(*root, array_key);
    if (!cJSON_IsArray(*array)) {
        cJSON_Delete(*root);
        *root = NULL;
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: expected a top-level object with an array "
                           "'%s'", path, array_key);
    }
    return FLAVA_OK;
}

static flava_status get_id(int64_t *out, const cJSON *obj, const char *key, const char *path,
                           long record)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 9007199254740992.0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %ld: expected a non-negative integer "
                           "'%s'", path, record, key);
    *out = (int64_t)v->valuedouble;
    return FLAVA_OK;
}

static const char *get_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static flava_status image_path(char **out, const char *dir, const char *subtype, int64_t id,
                               flava_vqa_naming naming)
{
    char name[512];
    if (naming == FLAVA_VQA_COCO)
        snprintf(name, sizeof name, "COCO_%s_%012lld.jpg", subtype, (long long)id);
    else
        snprintf(name, sizeof name, "%lld.png", (long long)id);
    size_t n = strlen(dir) + strlen(name) + 2;
    if (!(*out = malloc(n)))
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "image path");
    snprintf(*out, n, "%s/%s", dir, name);
    return FLAVA_OK;
}

static flava_status read_questions(flava_vqa_set *set, const cJSON *arr, const char *path,
                                   const char *image_dir, const char *subtype,
                                   flava_vqa_naming naming)
{
    long n = cJSON_GetArraySize(arr);
    if (n == 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no questions, expected at least one", path);
    if (!(set->q = calloc((size_t)n, sizeof *set->q)))
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: %ld questions", path, n);
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        long i = set->n;
        flava_vqa_question *q = &set->q[i];
        FLAVA_TRY(get_id(&q->question_id, item, "question_id", path, i));
        FLAVA_TRY(get_id(&q->image_id, item, "image_id", path, i));
        const char *text = get_string(item, "question");
        if (!text)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %ld (question_id %lld): expected a "
                               "non-empty string 'question'", path, i, (long long)q->question_id);
        FLAVA_TRY(flava_strdup(&q->question, text));
        set->n++;
        if (!image_dir)
            continue;
        FLAVA_TRY(image_path(&q->image_path, image_dir, subtype, q->image_id, naming));
        if (access(q->image_path, R_OK) != 0)
            return FLAVA_ERROR(FLAVA_ERR_IO, "%s: record %ld (question_id %lld): image '%s' "
                               "cannot be read: %s", path, i, (long long)q->question_id,
                               q->image_path, strerror(errno));
    }
    return FLAVA_OK;
}

/* Question indices sorted by question_id, for matching annotations. */
static int by_qid(const void *a, const void *b, void *questions)
{
    const flava_vqa_question *q = questions;
    int64_t x = q[*(const long *)a].question_id, y = q[*(const long *)b].question_id;
    return (x > y) - (x < y);
}

static long find_question(const flava_vqa_set *set, const long *order, int64_t qid)
{
    long lo = 0, hi = set->n;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (set->q[order[mid]].question_id < qid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < set->n && set->q[order[lo]].question_id == qid ? order[lo] : -1;
}

/* A field the official files always have but that other data may lack:
 * *out NULL when absent; when present it must be a non-empty string. */
static flava_status optional_string(char **out, const cJSON *item, const char *key,
                                    const char *path, long i, const flava_vqa_question *q)
{
    *out = NULL;
    if (!cJSON_GetObjectItemCaseSensitive(item, key))
        return FLAVA_OK;
    const char *text = get_string(item, key);
    if (!text)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %ld (question_id %lld): '%s' must be a "
                           "non-empty string", path, i, (long long)q->question_id, key);
    return flava_strdup(out, text);
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The most frequent of items[n] (n > 0), ties to the strcmp-first, so the
 * answer does not depend on the order; sorts items. */
static const char *most_frequent(const char **items, size_t n)
{
    qsort(items, n, sizeof *items, by_text);
    const char *best = items[0];
    size_t best_n = 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && !strcmp(items[j], items[i]); j++)
            ;
        if (j - i > best_n)
            best = items[i], best_n = j - i;
    }
    return best;
}

static flava_status read_answers(flava_vqa_question *q, const cJSON *item, const char *path,
                                 long i)
{
    const cJSON *answers = cJSON_GetObjectItemCaseSensitive(item, "answers");
    if (!cJSON_IsArray(answers) || cJSON_GetArraySize(answers) != FLAVA_VQA_ANSWERS)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %ld (question_id %lld): expected an "
                           "array 'answers' of %d answers", path, i, (long long)q->question_id,
                           FLAVA_VQA_ANSWERS);
    const cJSON *a;
    cJSON_ArrayForEach(a, answers)
    {
        const char *text = get_string(a, "answer");
        if (!text)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %ld (question_id %lld): answer %d "
                               "has no non-empty string 'answer'", path, i,
                               (long long)q->question_id, q->n_answers + 1);
        FLAVA_TRY(flava_vqa_normalize(&q->answers[q->n_answers], text));
        q->n_answers++;
    }
    FLAVA_TRY(optional_string(&q->question_type, item, "question_type", path, i, q));
    FLAVA_TRY(optional_string(&q->answer_type, item, "answer_type", path, i, q));
    char *top;
    FLAVA_TRY(optional_string(&top, item, "multiple_choice_answer", path, i, q));
    if (top) {
        flava_status s = flava_vqa_normalize(&q->top_answer, top);
        free(top);
        return s;
    }
    const char *ten[FLAVA_VQA_ANSWERS];
    memcpy(ten, q->answers, sizeof ten);
    return flava_strdup(&q->top_answer, most_frequent(ten, FLAVA_VQA_ANSWERS));
}

static flava_status read_annotations(flava_vqa_set *set, const cJSON *arr, const char *path)
{
    long *order = malloc(sizeof(long) * set->n);
    if (!order)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: question index", path);
    for (long i = 0; i < set->n; i++)
        order[i] = i;
    qsort_r(order, set->n, sizeof(long), by_qid, set->q);
    flava_status s = FLAVA_OK;
    for (long i = 1; i < set->n && s == FLAVA_OK; i++)
        if (set->q[order[i]].question_id == set->q[order[i - 1]].question_id)
            s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "questions file: question_id %lld appears twice",
                            (long long)set->q[order[i]].question_id);
    long i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        if (s != FLAVA_OK)
            break;
        int64_t qid, iid;
        if ((s = get_id(&qid, item, "question_id", path, i)) != FLAVA_OK ||
            (s = get_id(&iid, item, "image_id", path, i)) != FLAVA_OK)
            break;
        long k = find_question(set, order, qid);
        if (k < 0)
            s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %ld: question_id %lld is not in the "
                            "questions file", path, i, (long long)qid);
        else if (set->q[k].image_id != iid)
            s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %ld: question_id %lld has image_id "
                            "%lld, the questions file says %lld", path, i, (long long)qid,
                            (long long)iid, (long long)set->q[k].image_id);
        else if (set->q[k].n_answers)
            s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: record %ld: question_id %lld annotated twice",
                            path, i, (long long)qid);
        else
            s = read_answers(&set->q[k], item, path, i);
        i++;
    }
    for (long k = 0; k < set->n && s == FLAVA_OK; k++)
        if (!set->q[k].n_answers)
            s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: question_id %lld has no annotation", path,
                            (long long)set->q[k].question_id);
    free(order);
    return s;
}

flava_status flava_vqa_load(flava_vqa_set *set, const char *questions_path,
                            const char *annotations_path, const char *image_dir,
                            flava_vqa_naming naming)
{
    memset(set, 0, sizeof *set);
    cJSON *qroot, *qarr, *aroot = NULL, *aarr;
    FLAVA_TRY(parse_file(&qroot, questions_path, "questions", &qarr));
    const char *subtype = get_string(qroot, "data_subtype");
    flava_status s = FLAVA_OK;
    if (image_dir && naming == FLAVA_VQA_COCO && !subtype)
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no string 'data_subtype' (e.g. \"train2014\"), "
                        "needed for COCO image names", questions_path);
    if (s == FLAVA_OK)
        s = read_questions(set, qarr, questions_path, image_dir, subtype, naming);
    if (s == FLAVA_OK && annotations_path) {
        s = parse_file(&aroot, annotations_path, "annotations", &aarr);
        if (s == FLAVA_OK)
            s = read_annotations(set, aarr, annotations_path);
    }
    cJSON_Delete(qroot);
    cJSON_Delete(aroot);
    if (s != FLAVA_OK)
        flava_vqa_free(set);
    return s;
}

/* ---- per answer type, the prior baseline, predictions ---- */

flava_status flava_vqa_tally_add(flava_vqa_tally *t, const flava_vqa_question *q, double acc)
{
    const char *type = q->answer_type;
    if (type) {
        int k = 0;
        while (k < t->ntypes && strcmp(t->type[k], type) < 0)
            k++;
        if (k == t->ntypes || strcmp(t->type[k], type)) {
            if (t->ntypes == FLAVA_VQA_MAX_TYPES)
                return FLAVA_ERROR(FLAVA_ERR_FORMAT, "question_id %lld: answer_type '%s' is one "
                                   "more than the %d reported (VQAv2 has yes/no, number, other)",
                                   (long long)q->question_id, type, FLAVA_VQA_MAX_TYPES);
            const int m = t->ntypes - k;
            memmove(&t->type[k + 1], &t->type[k], sizeof *t->type * (size_t)m);
            memmove(&t->type_sum[k + 1], &t->type_sum[k], sizeof *t->type_sum * (size_t)m);
            memmove(&t->type_n[k + 1], &t->type_n[k], sizeof *t->type_n * (size_t)m);
            t->type[k] = type;
            t->type_sum[k] = 0;
            t->type_n[k] = 0;
            t->ntypes++;
        }
        t->type_sum[k] += acc;
        t->type_n[k]++;
    } else {
        t->untyped++;
    }
    t->sum += acc;
    t->n++;
    return FLAVA_OK;
}

void flava_vqa_prior_free(flava_vqa_prior *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->question_types[i]);
        free(p->answers[i]);
    }
    free(p->question_types);
    free(p->answers);
    free(p->fallback);
    memset(p, 0, sizeof *p);
}

typedef struct typed_answer {
    const char *type, *answer;
} typed_answer;

static int by_type(const void *a, const void *b)
{
    return strcmp(((const typed_answer *)a)->type, ((const typed_answer *)b)->type);
}

/* pairs[np] sorted by type -> one most frequent answer per type; scratch
 * holds np pointers. */
static flava_status prior_types(flava_vqa_prior *p, const typed_answer *pairs, size_t np,
                                const char **scratch)
{
    size_t groups = 0;
    for (size_t i = 0; i < np; i++)
        groups += i == 0 || strcmp(pairs[i].type, pairs[i - 1].type) != 0;
    p->question_types = calloc(groups ? groups : 1, sizeof(char *));
    p->answers = calloc(groups ? groups : 1, sizeof(char *));
    if (!p->question_types || !p->answers)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "prior baseline: %zu question types", groups);
    for (size_t i = 0, j; i < np; i = j) {
        for (j = i; j < np && !strcmp(pairs[j].type, pairs[i].type); j++)
            scratch[j - i] = pairs[j].answer;
        FLAVA_TRY(flava_strdup(&p->question_types[p->n], pairs[i].type));
        p->n++; /* freed from here on */
        FLAVA_TRY(flava_strdup(&p->answers[p->n - 1], most_frequent(scratch, j - i)));
    }
    return FLAVA_OK;
}

flava_status flava_vqa_prior_build(flava_vqa_prior *p, const flava_vqa_set *train)
{
    memset(p, 0, sizeof *p);
    if (train->n == 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "prior baseline: no training questions");
    for (long i = 0; i < train->n; i++)
        if (!train->q[i].top_answer)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "prior baseline: training question_id %lld has no "
                               "annotation", (long long)train->q[i].question_id);
    const size_t n = (size_t)train->n;
    typed_answer *pairs = malloc(sizeof *pairs * n);
    const char **answers = malloc(sizeof *answers * n);
    flava_status s = FLAVA_OK;
    if (!pairs || !answers)
        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "prior baseline: %zu training questions", n);
    size_t np = 0;
    for (size_t i = 0; s == FLAVA_OK && i < n; i++) {
        answers[i] = train->q[i].top_answer;
        if (train->q[i].question_type)
            pairs[np++] = (typed_answer){train->q[i].question_type, train->q[i].top_answer};
    }
    if (s == FLAVA_OK)
        s = flava_strdup(&p->fallback, most_frequent(answers, n));
    if (s == FLAVA_OK) {
        qsort(pairs, np, sizeof *pairs, by_type);
        s = prior_types(p, pairs, np, answers);
    }
    free(pairs);
    free(answers);
    if (s != FLAVA_OK)
        flava_vqa_prior_free(p);
    return s;
}

const char *flava_vqa_prior_answer(const flava_vqa_prior *p, const flava_vqa_question *q)
{
    const char *key = q->question_type;
    char **hit = key && p->n ? bsearch(&key, p->question_types, (size_t)p->n, sizeof(char *),
                                       by_text)
                             : NULL;
    return hit ? p->answers[hit - p->question_types] : p->fallback;
}

flava_status flava_vqa_predictions_write(const char *path, const flava_vqa_set *set,
                                         const char *const *answers, long n)
{
    if (n < 0 || n > set->n)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: %ld predictions for %ld questions", path, n, set->n);
    cJSON *arr = cJSON_CreateArray();
    int ok = arr != NULL;
    for (long i = 0; ok && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(arr, o);
        if (!ok)
            cJSON_Delete(o);
        ok = ok && cJSON_AddNumberToObject(o, "question_id", (double)set->q[i].question_id) &&
             cJSON_AddStringToObject(o, "answer", answers[i]);
    }
    char *text = ok ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!text)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot build the JSON of %ld predictions", path,
                           n);
    flava_status s = flava_file_write_atomic(path, text);
    cJSON_free(text);
    return s;
}

/* ---- vocabulary ---- */

void flava_vqa_vocab_free(flava_vqa_vocab *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->answers[i]);
    free(v->answers);
    free(v->sorted);
    memset(v, 0, sizeof *v);
}

static int by_answer(const void *a, const void *b, void *answers)
{
    char **text = answers;
    return strcmp(text[*(const int *)a], text[*(const int *)b]);
}

/* Builds v->sorted; fails on a duplicate answer. */
static flava_status index_answers(flava_vqa_vocab *v, const char *where)
{
    if (!(v->sorted = malloc(sizeof(int) * (v->n ? v->n : 1))))
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "answer vocabulary index");
    for (int i = 0; i < v->n; i++)
        v->sorted[i] = i;
    qsort_r(v->sorted, v->n, sizeof(int), by_answer, v->answers);
    for (int i = 1; i < v->n; i++)
        if (!strcmp(v->answers[v->sorted[i]], v->answers[v->sorted[i - 1]]))
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: answer '%s' appears twice (lines %d and "
                               "%d)", where, v->answers[v->sorted[i]], v->sorted[i - 1] + 1,
                               v->sorted[i] + 1);
    return FLAVA_OK;
}

int flava_vqa_vocab_find(const flava_vqa_vocab *v, const char *answer)
{
    int lo = 0, hi = v->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(v->answers[v->sorted[mid]], answer);
        if (c == 0)
            return v->sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

typedef struct answer_count {
    const char *text;
    long count;
} answer_count;

static int by_count_then_text(const void *a, const void *b)
{
    const answer_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->text, y->text);
}

flava_status flava_vqa_vocab_build(flava_vqa_vocab *v, const flava_vqa_set *set, int top_k)
{
    memset(v, 0, sizeof *v);
    if (top_k <= 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "answer vocabulary of %d answers, expected > 0", top_k);
    size_t total = 0;
    for (long i = 0; i < set->n; i++)
        total += (size_t)set->q[i].n_answers;
    if (total == 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "answer vocabulary: the set has no annotated answers");
    const char **all = malloc(sizeof(char *) * total);
    answer_count *counts = malloc(sizeof(answer_count) * total);
    flava_status s = FLAVA_OK;
    if (!all || !counts) {
        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "answer vocabulary: %zu answers", total);
        goto done;
    }
    size_t k = 0, distinct = 0;
    for (long i = 0; i < set->n; i++)
        for (int j = 0; j < set->q[i].n_answers; j++)
            all[k++] = set->q[i].answers[j];
    qsort(all, total, sizeof(char *), by_text);
    for (size_t i = 0; i < total; i++) {
        if (distinct && !strcmp(counts[distinct - 1].text, all[i]))
            counts[distinct - 1].count++;
        else
            counts[distinct++] = (answer_count){all[i], 1};
    }
    qsort(counts, distinct, sizeof *counts, by_count_then_text);
    int n = distinct < (size_t)top_k ? (int)distinct : top_k;
    if (!(v->answers = calloc((size_t)n, sizeof(char *)))) {
        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "answer vocabulary: %d answers", n);
        goto done;
    }
    for (int i = 0; i < n && s == FLAVA_OK; i++)
        if ((s = flava_strdup(&v->answers[i], counts[i].text)) == FLAVA_OK)
            v->n++;
    if (s == FLAVA_OK)
        s = index_answers(v, "answer vocabulary");
done:
    free(all);
    free(counts);
    if (s != FLAVA_OK)
        flava_vqa_vocab_free(v);
    return s;
}

flava_status flava_vqa_vocab_write(const flava_vqa_vocab *v, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    for (int i = 0; i < v->n; i++)
        fprintf(f, "%s\n", v->answers[i]);
    if (ferror(f) | fclose(f))
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return FLAVA_OK;
}

static flava_status read_vocab_lines(flava_vqa_vocab *v, flava_tsv *t)
{
    int cap = 0, more;
    for (;;) {
        FLAVA_TRY(flava_tsv_next(t, &more));
        if (!more)
            break;
        if (t->nfields != 1 || !t->fields[0][0])
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: expected one non-empty answer "
                               "without tabs", t->path, t->line);
        if (v->n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **a = realloc(v->answers, sizeof(char *) * cap);
            if (!a)
                return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: %d answers", t->path, cap);
            v->answers = a;
        }
        FLAVA_TRY(flava_strdup(&v->answers[v->n], t->fields[0]));
        v->n++;
    }
    if (v->n == 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: empty answer vocabulary", t->path);
    return index_answers(v, t->path);
}

flava_status flava_vqa_vocab_read(flava_vqa_vocab *v, const char *path)
{
    memset(v, 0, sizeof *v);
    flava_tsv t;
    FLAVA_TRY(flava_tsv_open(&t, path));
    flava_status s = read_vocab_lines(v, &t);
    flava_tsv_close(&t);
    if (s != FLAVA_OK)
        flava_vqa_vocab_free(v);
    return s;
}

void flava_vqa_soft_scores(float *out, const flava_vqa_vocab *v, const flava_vqa_question *q)
{
    memset(out, 0, sizeof(float) * v->n);
    for (int j = 0; j < q->n_answers; j++) {
        int c = flava_vqa_vocab_find(v, q->answers[j]);
        if (c >= 0)
            out[c] = (float)leave_one_out(q, q->answers[j]);
    }
}
