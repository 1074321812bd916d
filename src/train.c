/* train.c - the shared training loop, checkpoints and --resume. */
#include "train.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "dist.h"

static const flava_cfg_key common_keys[] = {
    {"run", "task", FLAVA_CFG_STRING, NULL, "the task to run (flava help config lists them)"},
    {"run", "dir", FLAVA_CFG_STRING, NULL,
     "run directory: config.ini, log.txt, metrics.jsonl, checkpoints/, results.json"},
    {"run", "seed", FLAVA_CFG_INT, "0", "decides init, data order, masks: same seed, same run"},
    {"run", "threads", FLAVA_CFG_INT, "2", "OpenMP threads (same threads: same losses, bit for bit)"},
    {"run", "precision", FLAVA_CFG_STRING, "f32", "f32 or bf16 (matmuls in bf16, f32 master weights)"},
    {"model", "family", FLAVA_CFG_STRING, "",
     "flava, clip or align (empty: the checkpoint's model_type, else flava)"},
    {"model", "checkpoint", FLAVA_CFG_STRING, "",
     "start from this model: a .safetensors file or an HF folder (config.json + weights)"},
    {"model", "*", FLAVA_CFG_STRING, NULL,
     "any HF config field of the family (FlavaConfig, CLIPConfig, AlignConfig), nested names "
     "dotted (text_config.hidden_size = 256)"},
    {"train", "steps", FLAVA_CFG_INT, "1000", "optimizer steps (the length of the lr schedule)"},
    {"train", "stop_after", FLAVA_CFG_INT, "0",
     "end this process after that step, with a checkpoint, as if interrupted (0: run to the end)"},
    {"train", "batch_size", FLAVA_CFG_INT, "32", "samples per micro-batch"},
    {"train", "grad_accum", FLAVA_CFG_INT, "1", "micro-batches per optimizer step"},
    {"train", "lr", FLAVA_CFG_FLOAT, "1e-4", "peak learning rate"},
    {"train", "min_lr", FLAVA_CFG_FLOAT, "0", "learning rate at the end of the cosine decay"},
    {"train", "warmup_steps", FLAVA_CFG_INT, "0", "steps of linear warmup from 0 to lr"},
    {"train", "weight_decay", FLAVA_CFG_FLOAT, "0.01",
     "AdamW decoupled weight decay (not on biases, LayerNorms, embeddings)"},
    {"train", "betas", FLAVA_CFG_LIST, "0.9,0.999", "AdamW beta1, beta2"},
    {"train", "eps", FLAVA_CFG_FLOAT, "1e-8", "AdamW epsilon"},
    {"train", "max_grad_norm", FLAVA_CFG_FLOAT, "1.0", "clip the global gradient norm (0: never)"},
    {"train", "log_every", FLAVA_CFG_INT, "10", "steps between metrics.jsonl lines"},
    {"train", "eval_every", FLAVA_CFG_INT, "0", "steps between evaluations (0: at the end only)"},
    {"train", "save_every", FLAVA_CFG_INT, "0", "steps between checkpoints (0: at the end only)"},
    {"train", "image_position_init", FLAVA_CFG_STRING, "zeros",
     "a fresh FLAVA model's image patch positions: zeros (HF) or sincos (MAE's 2-D sin-cos "
     "table, then learned: patches know their place from the first step); a checkpoint's are kept"},
    {"heads", "mim", FLAVA_CFG_FLOAT, "1", "loss weight of masked image modeling (0: off)"},
    {"heads", "mlm", FLAVA_CFG_FLOAT, "1", "loss weight of masked language modeling (0: off)"},
    {"heads", "itm", FLAVA_CFG_FLOAT, "1", "loss weight of image-text matching (0: off)"},
    {"heads", "global_contrastive", FLAVA_CFG_FLOAT, "1",
     "loss weight of the image-text contrastive loss"},
    {"heads", "mmm_image", FLAVA_CFG_FLOAT, "1", "loss weight of multimodal masked image modeling"},
    {"heads", "mmm_text", FLAVA_CFG_FLOAT, "1", "loss weight of multimodal masked language modeling"},
    {"heads", "vqa", FLAVA_CFG_FLOAT, "1", "loss weight of the VQA head (fine-tuning)"},
    {"heads", "classify", FLAVA_CFG_FLOAT, "1", "loss weight of the classifier head (fine-tuning)"},
};

flava_status flava_train_register_keys(flava_cfg *cfg)
{
    return flava_cfg_register(cfg, common_keys, (int)(sizeof common_keys / sizeof *common_keys));
}

/* A positive integer key. */
static flava_status get_count(int64_t *out, flava_cfg *cfg, const char *section, const char *key,
                              int64_t min)
{
    FLAVA_TRY(flava_cfg_get_int(cfg, section, key, out));
    if (*out < min)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.%s = %lld: expected at least %lld",
                           flava_cfg_where(cfg, section, key), section, key, (long long)*out,
                           (long long)min);
    return FLAVA_OK;
}

flava_status flava_train_config_read(flava_train_config *tc, flava_cfg *cfg)
{
    int64_t v;
    FLAVA_TRY(get_count(&tc->steps, cfg, "train", "steps", 0));
    FLAVA_TRY(get_count(&tc->stop_after, cfg, "train", "stop_after", 0));
    FLAVA_TRY(get_count(&v, cfg, "train", "batch_size", 1));
    tc->batch_size = (int)v;
    FLAVA_TRY(get_count(&v, cfg, "train", "grad_accum", 1));
    tc->grad_accum = (int)v;
    FLAVA_TRY(flava_cfg_get_float(cfg, "train", "lr", &tc->lr));
    FLAVA_TRY(flava_cfg_get_float(cfg, "train", "min_lr", &tc->min_lr));
    FLAVA_TRY(get_count(&tc->warmup_steps, cfg, "train", "warmup_steps", 0));
    FLAVA_TRY(get_count(&tc->log_every, cfg, "train", "log_every", 1));
    FLAVA_TRY(get_count(&tc->eval_every, cfg, "train", "eval_every", 0));
    FLAVA_TRY(get_count(&tc->save_every, cfg, "train", "save_every", 0));
    FLAVA_TRY(flava_cfg_get_float(cfg, "train", "max_grad_norm", &tc->max_grad_norm));
    tc->adamw = FLAVA_ADAMW_DEFAULTS;
    FLAVA_TRY(flava_cfg_get_float(cfg, "train", "weight_decay", &tc->adamw.weight_decay));
    FLAVA_TRY(flava_cfg_get_float(cfg, "train", "eps", &tc->adamw.eps));
    const char *const *betas;
    int nb;
    FLAVA_TRY(flava_cfg_get_list(cfg, "train", "betas", &betas, &nb));
    char *end1 = NULL, *end2 = NULL;
    if (nb == 2) {
        tc->adamw.beta1 = strtod(betas[0], &end1);
        tc->adamw.beta2 = strtod(betas[1], &end2);
    }
    if (nb != 2 || *end1 || *end2 || !(tc->adamw.beta1 >= 0 && tc->adamw.beta1 < 1) ||
        !(tc->adamw.beta2 >= 0 && tc->adamw.beta2 < 1))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: train.betas: expected two numbers in [0, 1)",
                           flava_cfg_where(cfg, "train", "betas"));
    if (!(tc->lr >= 0) || !(tc->min_lr >= 0) || tc->min_lr > tc->lr)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "train.lr = %g, train.min_lr = %g: expected "
                           "0 <= min_lr <= lr", tc->lr, tc->min_lr);
    return FLAVA_OK;
}

flava_status flava_train_heads(flava_head_set *hs, flava_cfg *cfg, const flava_head_id *ids, int n)
{
    memset(hs, 0, sizeof *hs);
    int any = 0;
    for (int i = 0; i < n; i++) {
        const char *name = flava_heads[ids[i]]->name;
        double w;
        FLAVA_TRY(flava_cfg_get_float(cfg, "heads", name, &w));
        hs->weight[ids[i]] = w;
        hs->enabled[ids[i]] = w != 0;
        any |= w != 0;
    }
    if (!any)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "[heads]: every head this task uses has weight 0");
    return FLAVA_OK;
}

enum { MAX_MODEL_KEYS = 256 };

flava_status flava_train_family(const flava_family_ops **ops, flava_run *run)
{
    const char *name, *ck;
    FLAVA_TRY(flava_cfg_get_string(run->cfg, "model", "family", &name));
    FLAVA_TRY(flava_cfg_get_string(run->cfg, "model", "checkpoint", &ck));
    const flava_family_ops *of_ck = NULL;
    if (*ck)
        FLAVA_TRY(flava_family_of_checkpoint(&of_ck, ck));
    if (!*name) {
        *ops = of_ck ? of_ck : flava_families[FLAVA_FAMILY_FLAVA];
        return FLAVA_OK;
    }
    if (flava_family_find(ops, name) != FLAVA_OK) {
        flava_error_context("%s", flava_cfg_where(run->cfg, "model", "family"));
        return FLAVA_ERR_CONFIG;
    }
    if (of_ck && of_ck != *ops)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: model.family = %s but the checkpoint %s is a "
                           "%s model", flava_cfg_where(run->cfg, "model", "family"), name, ck,
                           of_ck->name);
    return FLAVA_OK;
}

flava_status flava_train_family_create(flava_family_model *fm, flava_run *run,
                                       const flava_head_set *heads, int partial,
                                       int need_checkpoint)
{
    return flava_train_family_create_with(fm, run, heads, partial, need_checkpoint, NULL);
}

/* train.image_position_init on a fresh model (m: NULL unless FLAVA). */
static flava_status init_positions(flava_run *run, flava_model *m, const char *family)
{
    const char *init;
    FLAVA_TRY(flava_cfg_get_string(run->cfg, "train", "image_position_init", &init));
    if (!strcmp(init, "zeros"))
        return FLAVA_OK;
    if (strcmp(init, "sincos"))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: train.image_position_init = '%s': expected "
                           "zeros or sincos", flava_cfg_where(run->cfg, "train", "image_position_init"),
                           init);
    if (!m)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: train.image_position_init = sincos: FLAVA models "
                           "only, this is %s", flava_cfg_where(run->cfg, "train", "image_position_init"),
                           family);
    return flava_model_init_positions_sincos(m);
}

flava_status flava_train_family_create_with(flava_family_model *fm, flava_run *run,
                                            const flava_head_set *heads, int partial,
                                            int need_checkpoint,
                                            const flava_family_overrides *extra)
{
    const flava_family_ops *ops;
    const char *ck;
    FLAVA_TRY(flava_train_family(&ops, run));
    FLAVA_TRY(flava_cfg_get_string(run->cfg, "model", "checkpoint", &ck));
    if (need_checkpoint && !*ck)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "evaluation needs a trained model: set "
                           "model.checkpoint (a .safetensors file or an HF folder)");
    const char *keys[MAX_MODEL_KEYS], *values[MAX_MODEL_KEYS], *wheres[MAX_MODEL_KEYS];
    int n = flava_cfg_open_keys(run->cfg, "model", keys, values, wheres, MAX_MODEL_KEYS);
    const int n_extra = extra ? extra->n : 0;
    if (n + n_extra > MAX_MODEL_KEYS)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "[model]: %d keys, at most %d", n,
                           MAX_MODEL_KEYS - n_extra);
    for (int i = 0; i < n_extra; i++, n++) {
        keys[n] = extra->keys[i];
        values[n] = extra->values[i];
        wheres[n] = extra->wheres ? extra->wheres[i] : "the task";
    }
    const flava_family_overrides ov = {keys, values, wheres, n};
    flava_status s = flava_family_create(fm, ops, *ck ? ck : NULL, &ov, heads, partial, run->seed);
    if (s != FLAVA_OK && *ck)
        flava_error_context("[model] %s model from %s", ops->name, ck);
    if (s == FLAVA_OK && !*ck) {
        s = init_positions(run, ops == flava_families[FLAVA_FAMILY_FLAVA] ? fm->impl : NULL,
                           ops->name);
        if (s != FLAVA_OK)
            flava_family_destroy(fm);
    }
    return s;
}

flava_status flava_train_model_config(flava_config *mc, const char **checkpoint, flava_run *run)
{
    const flava_family_ops *ops;
    FLAVA_TRY(flava_train_family(&ops, run));
    if (ops != flava_families[FLAVA_FAMILY_FLAVA])
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "model.family = %s: this task runs FLAVA models "
                           "only (its heads read the multimodal encoder)", ops->name);
    FLAVA_TRY(flava_cfg_get_string(run->cfg, "model", "checkpoint", checkpoint));
    flava_config_default(mc);
    if (**checkpoint)
        FLAVA_TRY(flava_checkpoint_read_config(mc, *checkpoint));
    else
        *checkpoint = NULL;
    const char *keys[MAX_MODEL_KEYS], *values[MAX_MODEL_KEYS], *wheres[MAX_MODEL_KEYS];
    int n = flava_cfg_open_keys(run->cfg, "model", keys, values, wheres, MAX_MODEL_KEYS);
    if (n > MAX_MODEL_KEYS)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "[model]: %d keys, at most %d", n, MAX_MODEL_KEYS);
    for (int i = 0; i < n; i++)
        if (flava_config_set(mc, keys[i], values[i]) != FLAVA_OK) {
            flava_error_context("%s: model.%s", wheres[i], keys[i]);
            return FLAVA_ERR_CONFIG;
        }
    if (flava_config_validate(mc) != FLAVA_OK) {
        flava_error_context("[model]%s%s", *checkpoint ? " of " : "",
                            *checkpoint ? *checkpoint : "");
        return FLAVA_ERR_CONFIG;
    }
    return FLAVA_OK;
}

flava_status flava_train_model_create(flava_model **m, flava_run *run, const flava_config *mc,
                                      const flava_head_set *heads, const char *checkpoint,
                                      int partial)
{
    FLAVA_TRY(flava_model_create(m, mc, heads));
    flava_model_init_weights(*m, run->seed);
    flava_status s = checkpoint ? flava_checkpoint_load_weights(*m, checkpoint, partial)
                                : init_positions(run, *m, "flava");
    if (s != FLAVA_OK) {
        flava_model_destroy(*m);
        *m = NULL;
    }
    return s;
}

/* ---- checkpoints ---- */

enum { PATH_MAX_LEN = 4200 };

static void ckpt_path(char *out, const char *run_dir, const char *name, const char *suffix)
{
    snprintf(out, PATH_MAX_LEN, "%s/checkpoints/%s%s", run_dir, name, suffix);
}

flava_status flava_train_latest(const char *run_dir, int64_t *step)
{
    *step = 0;
    char dir[PATH_MAX_LEN];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    DIR *d = opendir(dir);
    if (!d)
        return FLAVA_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long n;
        int end = 0;
        if (sscanf(e->d_name, "step-%lld.optim.safetensors%n", &n, &end) != 1 ||
            e->d_name[end] || n <= *step)
            continue;
        char name[64], model[PATH_MAX_LEN];
        snprintf(name, sizeof name, "step-%lld", n);
        ckpt_path(model, run_dir, name, ".safetensors");
        struct stat st;
        if (stat(model, &st) == 0)
            *step = n;
    }
    closedir(d);
    return FLAVA_OK;
}

/* AdamW's state over a family model's table. */
typedef struct optim {
    float *exp_avg, *exp_avg_sq;
    flava_param_range *no_decay;
    int n_no_decay;
} optim;

static void optim_free(optim *o)
{
    flava_free(o->exp_avg);
    flava_free(o->exp_avg_sq);
    free(o->no_decay);
}

/* Zeroed moments and the no-decay runs of the table. */
static flava_status optim_alloc(optim *o, const flava_param_table *t)
{
    memset(o, 0, sizeof *o);
    const size_t n = t->total * sizeof(float);
    FLAVA_TRY(flava_alloc((void **)&o->exp_avg, n, "the AdamW first moments"));
    FLAVA_TRY(flava_alloc((void **)&o->exp_avg_sq, n, "the AdamW second moments"));
    memset(o->exp_avg, 0, n);
    memset(o->exp_avg_sq, 0, n);
    return flava_adamw_no_decay(&o->no_decay, &o->n_no_decay, t);
}

/* One AdamW step, then the family's own after-step rule. */
static flava_status optim_step(flava_family_model *m, optim *o, double lr, int64_t step,
                               const flava_adamw_config *cfg)
{
    FLAVA_TRY(flava_adamw_step(m->params, o->exp_avg, o->exp_avg_sq, m->grads, o->no_decay,
                               o->n_no_decay, (int64_t)m->table->total, lr, step, cfg));
    if (m->ops->after_step)
        m->ops->after_step(m);
    return FLAVA_OK;
}

static flava_status save(flava_run *run, flava_family_model *m, const optim *o, int64_t step)
{
    if (flava_dist_rank() != 0) /* the ranks hold the same weights: rank 0 writes them */
        return FLAVA_OK;
    char dir[PATH_MAX_LEN], name[64], path[PATH_MAX_LEN];
    snprintf(dir, sizeof dir, "%s/checkpoints", run->run_dir);
    FLAVA_TRY(flava_mkdirs(dir));
    snprintf(name, sizeof name, "step-%lld", (long long)step);
    ckpt_path(path, run->run_dir, name, ".safetensors");
    FLAVA_TRY(m->ops->save(m, path));
    ckpt_path(path, run->run_dir, name, ".optim.safetensors");
    /* The data position is a function of the step and the seed: the
     * seed is the RNG state to restore. */
    FLAVA_TRY(flava_checkpoint_save_optim(m->table, o->exp_avg, o->exp_avg_sq, step, run->seed,
                                          flava_dist_size(), path));
    flava_runlog_printf(&run->log, "saved checkpoint %s", name);
    return FLAVA_OK;
}

static flava_status restore(flava_run *run, flava_family_model *m, optim *o, int64_t *start)
{
    FLAVA_TRY(flava_train_latest(run->run_dir, start));
    if (*start == 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "--resume: no checkpoint to resume from in %s/checkpoints "
                           "(step-N.safetensors with step-N.optim.safetensors)", run->run_dir);
    char name[64], path[PATH_MAX_LEN];
    snprintf(name, sizeof name, "step-%lld", (long long)*start);
    ckpt_path(path, run->run_dir, name, ".safetensors");
    FLAVA_TRY(m->ops->load(m, path, 0));
    ckpt_path(path, run->run_dir, name, ".optim.safetensors");
    int64_t step;
    uint64_t seed;
    int ranks;
    FLAVA_TRY(flava_checkpoint_load_optim(m->table, o->exp_avg, o->exp_avg_sq, &step, &seed,
                                          &ranks, path));
    if (step != *start)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: holds step %lld, expected %lld", path,
                           (long long)step, (long long)*start);
    if (seed != run->seed)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "--resume: %s was written with seed %llu, the run "
                           "has seed %llu", path, (unsigned long long)seed,
                           (unsigned long long)run->seed);
    /* the ranks decide which batches each step reads */
    if (ranks != flava_dist_size())
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "--resume: %s was written by a run on %d rank%s, "
                           "this one has %d: resume it on %d", path, ranks, ranks > 1 ? "s" : "",
                           flava_dist_size(), ranks);
    flava_runlog_printf(&run->log, "resuming from %s at step %lld", name, (long long)*start);
    return FLAVA_OK;
}

/* ---- the loop ---- */

/* Names the heads whose loss is not finite: "mlm = nan, itm = inf". */
static void bad_heads(char *out, size_t cap, const flava_family_model *m)
{
    size_t len = 0;
    out[0] = '\0';
    for (int h = 0; h < FLAVA_NUM_HEADS; h++)
        if (m->head_ran[h] && !isfinite(m->head_loss[h]) && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s = %g", len ? ", " : "",
                                    flava_heads[h]->name, (double)m->head_loss[h]);
    if (!len)
        snprintf(out, cap, "no single head");
}

static flava_status evaluate(flava_run *run, flava_family_model *m, const flava_train_task *task,
                             int64_t step, flava_train_result *res)
{
    if (!task->evaluate || flava_dist_rank() != 0) /* the model is the same on every rank */
        return FLAVA_OK;
    int n = 0;
    FLAVA_TRY(task->evaluate(task->self, m, step, res->eval_names, res->eval_values, &n));
    if (n < 0 || n > FLAVA_TRAIN_MAX_METRICS)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "evaluation returned %d metrics, at most %d", n,
                           FLAVA_TRAIN_MAX_METRICS);
    res->n_eval = n;
    char line[1024];
    size_t len = 0;
    line[0] = '\0';
    for (int i = 0; i < n && len < sizeof line; i++)
        len += (size_t)snprintf(line + len, sizeof line - len, " %s %.4f", res->eval_names[i],
                                res->eval_values[i]);
    flava_runlog_printf(&run->log, "eval at step %lld:%s", (long long)step, line);
    return flava_runlog_metrics(&run->log, (long)step, res->eval_names, res->eval_values, n);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* flava bench: times run->bench_steps steps after one warm-up step. */
static flava_status bench(flava_run *run, flava_family_model *m, optim *o,
                          const flava_train_config *tc, const flava_train_task *task)
{
    enum { MAX_STEPS = 1000 };
    double secs[MAX_STEPS], flops = 0, samples = 0, total = 0;
    const int64_t steps = run->bench_steps < MAX_STEPS ? run->bench_steps : MAX_STEPS;
    FLAVA_TRY(task->seek(task->self, 0));
    for (int64_t step = 0; step <= steps; step++) {
        const double t0 = flava_now();
        double f = 0;
        long n = 0;
        memset(m->grads, 0, m->table->total * sizeof(float));
        for (int micro = 0; micro < tc->grad_accum; micro++) {
            const flava_batch *b;
            FLAVA_TRY(task->next(task->self, &b, step, micro));
            FLAVA_TRY(m->ops->forward(run->ctx, m, b, 1));
            FLAVA_TRY(m->ops->backward(run->ctx, m, b));
            f += m->ops->step_flops ? m->ops->step_flops(m, b) : 0;
            n += b->B;
        }
        double norm;
        flava_grad_clip_norm(&norm, m->grads, (int64_t)m->table->total, INFINITY);
        FLAVA_TRY(optim_step(m, o, tc->lr, step + 1, &tc->adamw));
        if (step == 0)
            continue; /* warm-up: primitives created, arena sized */
        secs[step - 1] = flava_now() - t0;
        total += secs[step - 1];
        flops += f;
        samples += (double)n;
    }
    qsort(secs, (size_t)steps, sizeof *secs, cmp_double);
    printf("bench: %s, %zu parameters, %d thread(s), %s; %lld steps of %d x %d samples\n"
           "median step %.3f s, %.2f samples/s, %.2f GFLOP/s (encoders, forward + backward%s)\n",
           m->ops->name, m->table->total, run->threads,
           flava_ctx_precision(run->ctx) == FLAVA_PRECISION_BF16 ? "bf16" : "f32",
           (long long)steps, tc->grad_accum, tc->batch_size, secs[steps / 2], samples / total,
           flops / total / 1e9, m->ops->step_flops ? "" : "; not counted for this family");
    return FLAVA_OK;
}

static const char *last_checkpoint(char *buf, size_t cap, int64_t saved)
{
    if (saved)
        snprintf(buf, cap, "the last checkpoint is step %lld", (long long)saved);
    else
        snprintf(buf, cap, "no checkpoint was saved");
    return buf;
}

/* Sums over a log window. */
typedef struct window {
    double loss, head[FLAVA_NUM_HEADS], grad_norm, t0;
    int head_n[FLAVA_NUM_HEADS];
    long micro, samples;
} window;

static flava_status log_window(flava_run *run, window *w, int64_t done, double lr,
                               flava_train_result *res)
{
    static const char *const fixed[] = {"loss", "lr", "grad_norm", "samples_per_s"};
    enum { NFIX = 4 };
    static char head_names[FLAVA_NUM_HEADS][48];
    const char *names[NFIX + FLAVA_NUM_HEADS];
    double values[NFIX + FLAVA_NUM_HEADS];
    /* the window of every rank: the run's means and throughput */
    double sums[3 + 2 * FLAVA_NUM_HEADS] = {w->loss, (double)w->micro, (double)w->samples};
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        sums[3 + h] = w->head[h];
        sums[3 + FLAVA_NUM_HEADS + h] = w->head_n[h];
    }
    FLAVA_TRY(flava_dist_sum_f64(sums, 3 + 2 * FLAVA_NUM_HEADS));
    w->loss = sums[0];
    w->micro = (long)sums[1];
    w->samples = (long)sums[2];
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        w->head[h] = sums[3 + h];
        w->head_n[h] = (int)sums[3 + FLAVA_NUM_HEADS + h];
    }
    double dt = flava_now() - w->t0;
    long steps = w->micro ? w->micro : 1;
    res->loss = w->loss / (double)steps;
    res->samples_per_s = dt > 0 ? (double)w->samples / dt : 0;
    values[0] = res->loss;
    values[1] = lr;
    values[2] = w->grad_norm;
    values[3] = res->samples_per_s;
    int n = NFIX;
    for (int i = 0; i < NFIX; i++)
        names[i] = fixed[i];
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        res->head_loss[h] = w->head_n[h] ? w->head[h] / w->head_n[h] : NAN;
        if (!w->head_n[h])
            continue;
        snprintf(head_names[h], sizeof head_names[h], "loss_info.%s", flava_heads[h]->name);
        names[n] = head_names[h];
        values[n++] = res->head_loss[h];
    }
    FLAVA_TRY(flava_runlog_metrics(&run->log, (long)done, names, values, n));
    memset(w, 0, sizeof *w);
    w->t0 = flava_now();
    return FLAVA_OK;
}

static flava_status train_loop(flava_run *run, flava_family_model *m, optim *o,
                               const flava_train_config *tc, const flava_train_task *task,
                               flava_train_result *res)
{
    if (run->bench_steps)
        return bench(run, m, o, tc, task);
    int64_t start = 0;
    if (run->resume)
        FLAVA_TRY(restore(run, m, o, &start));
    m->steps = (uint64_t)start * (uint64_t)tc->grad_accum; /* forwards before `start` */
    run->log.first_step = (long)start;
    run->log.total_steps = (long)tc->steps;
    FLAVA_TRY(task->seek(task->self, start));
    flava_interrupt_install();
    const int64_t n = (int64_t)m->table->total;
    const double max_norm = tc->max_grad_norm > 0 ? tc->max_grad_norm : INFINITY;
    window w = {.t0 = flava_now()};
    int64_t saved = start;
    char since[64]; /* where a failed run can be resumed from */
    double lr = 0;
    const int64_t end = tc->stop_after && tc->stop_after < tc->steps ? tc->stop_after : tc->steps;
    for (int64_t step = start; step < end; step++) {
        memset(m->grads, 0, (size_t)n * sizeof(float));
        for (int micro = 0; micro < tc->grad_accum; micro++) {
            const flava_batch *b;
            FLAVA_TRY(task->next(task->self, &b, step, micro));
            const flava_status st = m->ops->forward(run->ctx, m, b, 1);
            if (st != FLAVA_OK && st != FLAVA_ERR_NUMERIC)
                return st;
            if (st == FLAVA_ERR_NUMERIC || !isfinite(m->loss)) {
                char heads[512];
                bad_heads(heads, sizeof heads, m);
                return FLAVA_ERROR(FLAVA_ERR_NUMERIC, "step %lld: the loss is %g (%s); %s",
                                   (long long)step + 1, (double)m->loss, heads,
                                   last_checkpoint(since, sizeof since, saved));
            }
            w.loss += m->loss;
            for (int h = 0; h < FLAVA_NUM_HEADS; h++)
                if (m->head_ran[h]) {
                    w.head[h] += m->head_loss[h];
                    w.head_n[h]++;
                }
            w.micro++;
            w.samples += b->B;
            FLAVA_TRY(m->ops->backward(run->ctx, m, b));
        }
        /* the mean over the step's micro-batches, on every rank */
        FLAVA_TRY(flava_dist_sum_f32(m->grads, n));
        const int micros = tc->grad_accum * flava_dist_size();
        if (micros > 1) {
            const float scale = 1.0f / (float)micros;
            float *g = m->grads;
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < n; i++)
                g[i] *= scale;
        }
        double norm;
        if (flava_grad_clip_norm(&norm, m->grads, n, max_norm) != FLAVA_OK)
            return FLAVA_ERROR(FLAVA_ERR_NUMERIC, "step %lld: the gradient norm is %g; %s",
                               (long long)step + 1, norm,
                               last_checkpoint(since, sizeof since, saved));
        w.grad_norm = norm;
        lr = flava_lr_cosine(step, tc->warmup_steps, tc->steps, tc->lr, tc->min_lr);
        FLAVA_TRY(optim_step(m, o, lr, step + 1, &tc->adamw));
        const int64_t done = step + 1;
        const double last_loss = w.loss / (double)(w.micro ? w.micro : 1);
        const int log_now = done % tc->log_every == 0 || done == end;
        if (run->log.tty || log_now)
            flava_runlog_progress(&run->log, (long)done, last_loss,
                                  (double)w.samples / (flava_now() - w.t0 + 1e-9));
        if (log_now)
            FLAVA_TRY(log_window(run, &w, done, lr, res));
        res->steps = done;
        if (tc->eval_every && done % tc->eval_every == 0 && done != end)
            FLAVA_TRY(evaluate(run, m, task, done, res));
        if (tc->save_every && done % tc->save_every == 0 && done != end) {
            FLAVA_TRY(save(run, m, o, done));
            saved = done;
        }
        int stop; /* every rank stops after the same step */
        FLAVA_TRY(flava_dist_any(&stop, flava_interrupted()));
        if (stop) {
            if (saved != done)
                FLAVA_TRY(save(run, m, o, done));
            return FLAVA_ERROR(FLAVA_ERR_INTERRUPTED, "interrupted after step %lld; continue "
                               "with --resume", (long long)done);
        }
    }
    res->steps = end > start ? end : start;
    FLAVA_TRY(evaluate(run, m, task, res->steps, res));
    if (saved != res->steps || res->steps == 0)
        FLAVA_TRY(save(run, m, o, res->steps));
    if (end < tc->steps) {
        flava_runlog_printf(&run->log, "stopped after step %lld (train.stop_after); continue "
                            "with --resume", (long long)end);
        return FLAVA_OK;
    }
    if (flava_dist_rank() != 0)
        return FLAVA_OK;
    char path[PATH_MAX_LEN];
    ckpt_path(path, run->run_dir, "final", ".safetensors");
    return m->ops->save(m, path);
}

flava_status flava_train(flava_run *run, flava_family_model *m, const flava_train_config *tc,
                         const flava_train_task *task, flava_train_result *res)
{
    memset(res, 0, sizeof *res);
    for (int h = 0; h < FLAVA_NUM_HEADS; h++)
        res->head_loss[h] = NAN;
    FLAVA_TRY(m->ops->alloc_grads(m));
    optim o;
    flava_status s = optim_alloc(&o, m->table);
    if (s == FLAVA_OK)
        s = train_loop(run, m, &o, tc, task, res);
    optim_free(&o);
    return s;
}
