/* taskutil.c - see taskutil.h. */
#include "taskutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsv.h"

#include "dist.h"
#include "ops.h"
#include "rng.h"

enum { STREAM_FT_LOADER = 11 }; /* the fine-tuning loader's seed stream */

flava_status flava_task_eval_model(flava_family_model *fm, flava_run *run)
{
    return flava_train_family_create(fm, run, &flava_family_contrastive_heads, 1, 1);
}

flava_status flava_task_tokenizer(flava_tokenizer **tok, flava_text_encoder *enc, const char *path,
                                  int vocab_size)
{
    if (!*path)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "the task reads texts: set its tokenizer (a "
                           "WordPiece vocab.txt or folder, or a SentencePiece .model)");
    FLAVA_TRY(flava_tokenizer_load(tok, path));
    if ((*tok)->vocab_size > vocab_size)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "the tokenizer %s has %d pieces but the model's "
                           "text_config.vocab_size is %d", path, (*tok)->vocab_size, vocab_size);
    *enc = (flava_text_encoder){flava_tokenizer_encode_unpadded, *tok, (*tok)->pad_id};
    return FLAVA_OK;
}

flava_status flava_task_read_lines(char ***lines, long *n, const char *path)
{
    *lines = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open %s", path);
    char *line = NULL;
    size_t lcap = 0;
    long cap = 0;
    ssize_t len;
    flava_status s = FLAVA_OK;
    while (s == FLAVA_OK && (len = getline(&line, &lcap, f)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(*lines, sizeof(char *) * (size_t)cap);
            if (!grown) {
                s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: lines", path);
                break;
            }
            *lines = grown;
        }
        s = flava_strdup(&(*lines)[*n], line);
        *n += s == FLAVA_OK;
    }
    free(line);
    fclose(f);
    if (s == FLAVA_OK && *n == 0)
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no lines", path);
    if (s != FLAVA_OK) {
        flava_task_free_lines(*lines, *n);
        *lines = NULL;
        *n = 0;
    }
    return s;
}

void flava_task_free_lines(char **lines, long n)
{
    for (long i = 0; lines && i < n; i++)
        free(lines[i]);
    free(lines);
}

int flava_task_feature_dim(const flava_family_model *fm, flava_feature f)
{
    return f == FLAVA_FEATURE_IMAGE_EMBED || f == FLAVA_FEATURE_TEXT_EMBED ? fm->embed_dim
                                                                           : fm->feature_dim;
}

flava_status flava_task_batch_features(float *out, flava_ctx *ctx, flava_family_model *fm,
                                       const flava_batch *b, flava_feature f)
{
    const int text = f == FLAVA_FEATURE_TEXT_EMBED;
    if (text ? !b->input_ids : !b->pixel_values)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "the batch has no %s", text ? "input_ids" :
                           "pixel_values");
    switch (f) {
    case FLAVA_FEATURE_IMAGE_EMBED:
        return fm->ops->encode_images(ctx, fm, out, b->pixel_values, b->B);
    case FLAVA_FEATURE_TEXT_EMBED:
        return fm->ops->encode_texts(ctx, fm, out, b->input_ids, b->attention_mask,
                                     b->token_type_ids, b->B, b->T);
    default:
        return fm->ops->image_features(ctx, fm, out, b->pixel_values, b->B,
                                       (flava_image_feature)f);
    }
}

static flava_loader_opts eval_opts(const flava_run *run, int batch_size, int image_size,
                                   int max_text_len)
{
    return (flava_loader_opts){.batch_size = batch_size,
                               .image_size = image_size,
                               .max_text_len = max_text_len,
                               .prefetch = 2,
                               .threads = run->threads,
                               .seed = run->seed};
}

flava_loader_opts flava_task_eval_opts(flava_image_spec *spec, const flava_run *run,
                                       const flava_family_model *fm, int batch_size,
                                       int max_text_len)
{
    flava_loader_opts o = eval_opts(run, batch_size, fm->image_size, max_text_len);
    fm->ops->image(spec, fm->image_size);
    o.image_spec = spec;
    return o;
}

flava_status flava_task_features(float **out, long *n, flava_run *run, flava_family_model *fm,
                                 const flava_loader_source *src, const flava_text_encoder *enc,
                                 int max_text_len, int batch_size, flava_feature f)
{
    const int text = f == FLAVA_FEATURE_TEXT_EMBED;
    const int dim = flava_task_feature_dim(fm, f);
    flava_image_spec spec;
    flava_loader_opts o = flava_task_eval_opts(&spec, run, fm, batch_size,
                                               text ? max_text_len : 0);
    if (text) {
        o.image_size = 0;
        o.image_spec = NULL;
    }
    flava_loader *l;
    FLAVA_TRY(flava_loader_open(&l, src, text ? enc : NULL, &o));
    const long batches = flava_loader_batches_per_epoch(l);
    *out = NULL;
    *n = 0;
    flava_status s = FLAVA_OK;
    for (long g = 0; s == FLAVA_OK && g < batches; g++) {
        const flava_batch *b;
        long epoch, step;
        s = flava_loader_next(l, &b, &epoch, &step);
        if (s == FLAVA_OK && !*out) {
            /* every batch but the last is full */
            s = flava_alloc((void **)out, sizeof(float) * (size_t)batches * batch_size * dim,
                            "features");
        }
        if (s == FLAVA_OK)
            s = flava_task_batch_features(*out + (size_t)*n * dim, run->ctx, fm, b, f);
        if (s == FLAVA_OK)
            *n += b->B;
    }
    flava_loader_close(l);
    if (s != FLAVA_OK) {
        flava_free(*out);
        *out = NULL;
    }
    return s;
}

/* ---- fine-tuning ---- */

static flava_status ft_seek(void *self, int64_t step)
{
    flava_ft *ft = self;
    flava_loader_close(ft->loader);
    ft->loader = NULL;
    flava_rng r;
    flava_rng_init(&r, ft->run->seed + STREAM_FT_LOADER, 0);
    flava_loader_opts o = eval_opts(ft->run, ft->batch_size, ft->image_size, ft->max_text_len);
    o.image_spec = ft->image_size ? &ft->spec : NULL;
    o.shuffle = 1;
    o.drop_last = 1;
    o.seed = flava_rng_u64(&r);
    o.first_batch = (long)(step * ft->grad_accum);
    o.rank = flava_dist_rank();
    o.ranks = flava_dist_size();
    return flava_loader_open(&ft->loader, &ft->train, ft->max_text_len ? ft->enc : NULL, &o);
}

static flava_status ft_next(void *self, const flava_batch **b, int64_t step, int micro)
{
    (void)step, (void)micro; /* the loader is positioned by seek and runs in order */
    flava_ft *ft = self;
    long epoch, index;
    return flava_loader_next(ft->loader, b, &epoch, &index);
}

flava_status flava_ft_evaluate(flava_ft *ft, const char **names, double *values, int *n)
{
    flava_loader_opts o = eval_opts(ft->run, ft->eval_batch_size, ft->image_size,
                                    ft->max_text_len);
    o.image_spec = ft->image_size ? &ft->spec : NULL;
    flava_loader *l;
    FLAVA_TRY(flava_loader_open(&l, &ft->eval, ft->max_text_len ? ft->enc : NULL, &o));
    const long batches = flava_loader_batches_per_epoch(l);
    flava_status s = FLAVA_OK;
    long first = 0;
    for (long g = 0; s == FLAVA_OK && g < batches; g++) {
        const flava_batch *b;
        long epoch, step;
        s = flava_loader_next(l, &b, &epoch, &step);
        if (s == FLAVA_OK)
            s = ft->fm->ops->forward(ft->run->ctx, ft->fm, b, 0);
        if (s == FLAVA_OK && !ft->fm->head_logits[ft->head])
            s = FLAVA_ERROR(FLAVA_ERR_ARG, "the %s head did not run on the evaluation batch",
                            flava_heads[ft->head]->name);
        if (s == FLAVA_OK)
            s = ft->score(ft->self, ft->fm->head_logits[ft->head], ft->fm->head_cols[ft->head],
                          first, b->B);
        first += s == FLAVA_OK ? b->B : 0;
    }
    flava_loader_close(l);
    FLAVA_TRY(s);
    return ft->finish(ft->self, names, values, n);
}

static flava_status ft_evaluate(void *self, flava_family_model *m, int64_t step,
                                const char **names, double *values, int *n)
{
    (void)step, (void)m; /* ft->fm is the model being trained */
    return flava_ft_evaluate(self, names, values, n);
}

flava_train_task flava_ft_task(flava_ft *ft)
{
    return (flava_train_task){ft, ft_seek, ft_next, ft_evaluate};
}

void flava_ft_close(flava_ft *ft)
{
    flava_loader_close(ft->loader);
    ft->loader = NULL;
}

flava_status flava_ft_model(flava_model **m, flava_run *run, const flava_config *mc,
                            const char *checkpoint, flava_head_id head, int eval)
{
    if (eval && !checkpoint)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "evaluation needs a fine-tuned model: set "
                           "model.checkpoint");
    flava_head_set hs = {{0}, {0}};
    if (eval) {
        hs.enabled[head] = 1;
        hs.weight[head] = 1;
    } else {
        FLAVA_TRY(flava_train_heads(&hs, run->cfg, &head, 1)); /* its [heads] weight */
    }
    flava_status s = flava_train_model_create(m, run, mc, &hs, checkpoint, !eval);
    if (s != FLAVA_OK && eval)
        flava_error_context("a checkpoint for `flava eval` must hold the fine-tuned %s head",
                            flava_heads[head]->name);
    return s;
}

/* The classifier settings of a fine-tune as config overrides. */
typedef struct ft_settings {
    char labels[16];
    const char *keys[2], *values[2];
} ft_settings;

static flava_status ft_classifier_flava(flava_family_model *fm, flava_run *run, const char *input,
                                        int num_labels, int eval)
{
    flava_config mc;
    const char *ck;
    FLAVA_TRY(flava_train_model_config(&mc, &ck, run));
    if (eval && (mc.num_labels != num_labels || strcmp(mc.classifier_input, input)))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "the checkpoint's classifier has %d labels on the "
                           "%s encoder; the task needs %d on the %s encoder", mc.num_labels,
                           mc.classifier_input, num_labels, input);
    mc.num_labels = num_labels;
    snprintf(mc.classifier_input, sizeof mc.classifier_input, "%s", input);
    flava_model *m;
    FLAVA_TRY(flava_ft_model(&m, run, &mc, ck, FLAVA_HEAD_CLASSIFY, eval));
    /* the wrapped model is fm's: flava_family_destroy frees it */
    flava_family_wrap(fm, flava_families[FLAVA_FAMILY_FLAVA], m);
    return FLAVA_OK;
}

flava_status flava_ft_classifier(flava_family_model *fm, flava_run *run, const char *input,
                                 int num_labels, int eval)
{
    memset(fm, 0, sizeof *fm);
    const flava_family_ops *ops;
    FLAVA_TRY(flava_train_family(&ops, run));
    if (ops == flava_families[FLAVA_FAMILY_FLAVA])
        return ft_classifier_flava(fm, run, input, num_labels, eval);
    ft_settings set;
    snprintf(set.labels, sizeof set.labels, "%d", num_labels);
    set.keys[0] = "num_labels", set.values[0] = set.labels;
    set.keys[1] = "classifier_input", set.values[1] = input;
    const flava_family_overrides extra = {set.keys, set.values, NULL, 2};
    /* finetune: a pretrained checkpoint, the classifier fresh; eval: the
     * fine-tuned one, whole */
    FLAVA_TRY(flava_train_family_create_with(fm, run, NULL, !eval, eval, eval ? NULL : &extra));
    if (eval && (fm->num_labels != num_labels || strcmp(fm->classifier_input, input)))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "the checkpoint's classifier has %d labels on the "
                           "%s features; the task needs %d on the %s features (a checkpoint "
                           "for `flava eval` must hold the fine-tuned classifier)",
                           fm->num_labels, fm->classifier_input, num_labels, input);
    return FLAVA_OK;
}

flava_status flava_ft_finish(flava_ft *ft, int eval, const char *task, const char *dataset,
                             const char *metric, double t0)
{
    ft->fm->ops->image(&ft->spec, ft->image_size);
    flava_train_config tc;
    FLAVA_TRY(flava_train_config_read(&tc, ft->run->cfg));
    ft->batch_size = ft->eval_batch_size = tc.batch_size;
    ft->grad_accum = tc.grad_accum;
    const char *names[FLAVA_TRAIN_MAX_METRICS];
    double values[FLAVA_TRAIN_MAX_METRICS];
    int n = 0;
    if (eval) {
        FLAVA_TRY(flava_ft_evaluate(ft, names, values, &n));
    } else {
        flava_runlog_printf(&ft->run->log, "finetune %s: %s, %zu parameters, %lld steps of %d x "
                            "%d", task, ft->fm->ops->name, ft->fm->table->total,
                            (long long)tc.steps, tc.grad_accum, tc.batch_size);
        const flava_train_task tt = flava_ft_task(ft);
        flava_train_result res;
        FLAVA_TRY(flava_train(ft->run, ft->fm, &tc, &tt, &res));
        n = res.n_eval;
        memcpy(names, res.eval_names, sizeof(*names) * (size_t)n);
        memcpy(values, res.eval_values, sizeof(*values) * (size_t)n);
    }
    return flava_task_results(ft->run, eval ? "eval" : "finetune", task, dataset, metric, names,
                              values, n, t0);
}

flava_status flava_task_results(flava_run *run, const char *command, const char *task,
                                const char *dataset, const char *metric, const char **names,
                                const double *values, int n, double t0)
{
    if (flava_dist_rank() != 0) /* rank 0 evaluated the model and writes for the run */
        return FLAVA_OK;
    char list[512] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], metric))
            return flava_results_write(run->run_dir, command, task, dataset, metric, names,
                                       values, n, flava_now() - t0);
        if (len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                    names[i]);
    }
    return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: metric '%s' is not one the task measures (%s)", task,
                       metric, list);
}
