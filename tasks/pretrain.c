/* pretrain.c - FLAVA pretraining: any subset of MLM, MIM, MMM, ITM and the
 * contrastive loss over a mix of image-only, text-only and image-text
 * sources ([data.NAME] sections). An idx source with scene_size N shows
 * its items as one-item N x N scenes (data/scenes.h), each in a cell drawn
 * from the run seed, so that a resumed run renders the same scenes.
 *
 * Each micro-batch comes from one source, chosen as MMF's multitasking
 * samplers choose: in proportion to the sources' sizes (`size`), to their
 * `weight`s (`ratio`), or in turn (`round_robin`). The choice of micro-batch
 * g is drawn from its own RNG stream, so the data position of any step is
 * known without replaying the data: --resume counts the batches each source
 * gave before the step and opens its loader there. Masks and ITM negatives
 * of sample i of micro-batch g come from stream (g, i) likewise.
 *
 * MIM targets: the checkpoint's dVAE codebook (the model computes them)
 * when it has one, else a k-means patch codebook fitted here on training
 * images before the first step and kept in RUN_DIR/kmeans.safetensors. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "dist.h"
#include "idx.h"
#include "imagetext.h"
#include "kmeans.h"
#include "loader.h"
#include "masking.h"
#include "rng.h"
#include "scenes.h"
#include "task.h"
#include "tokenizer.h"
#include "train.h"
#include "tsv.h"

static const flava_cfg_key pretrain_keys[] = {
    {"pretrain", "tokenizer", FLAVA_CFG_STRING, "",
     "WordPiece vocab.txt (or folder) or SentencePiece .model; needed by text sources"},
    {"pretrain", "max_text_len", FLAVA_CFG_INT, "32", "text positions per sample"},
    {"pretrain", "mix", FLAVA_CFG_STRING, "size",
     "which source gives each micro-batch: size (in proportion to size), ratio (to weight), "
     "round_robin"},
    {"pretrain", "mlm_probability", FLAVA_CFG_FLOAT, "0.15", "share of tokens masked for MLM/MMM"},
    {"pretrain", "itm_negative_probability", FLAVA_CFG_FLOAT, "0.5",
     "share of image-text samples given another sample's caption (ITM label 0)"},
    {"pretrain", "kmeans_images", FLAVA_CFG_INT, "2000",
     "training images the k-means MIM codebook is fitted on (no dVAE in the checkpoint)"},
    {"pretrain", "kmeans_iters", FLAVA_CFG_INT, "20", "Lloyd iterations of the k-means fit"},
    {"pretrain", "prefetch", FLAVA_CFG_INT, "2", "batches each loader decodes ahead"},
    {"data.*", "kind", FLAVA_CFG_STRING, NULL, "idx (images), imagetext (TSV pairs) or text"},
    {"data.*", "path", FLAVA_CFG_STRING, NULL,
     "IDX images file, image-text TSV, or text file (one text per line, or a TSV column)"},
    {"data.*", "labels", FLAVA_CFG_STRING, "", "IDX labels file (kind = idx)"},
    {"data.*", "image_key", FLAVA_CFG_STRING, FLAVA_IMAGETEXT_IMAGE_KEY,
     "image column of an image-text TSV"},
    {"data.*", "caption_key", FLAVA_CFG_STRING, FLAVA_IMAGETEXT_CAPTION_KEY,
     "caption column of an image-text TSV"},
    {"data.*", "column", FLAVA_CFG_STRING, "",
     "kind = text: the TSV column holding the texts (empty: one text per line)"},
    {"data.*", "weight", FLAVA_CFG_FLOAT, "1", "the source's share under mix = ratio"},
    {"data.*", "limit", FLAVA_CFG_INT, "0", "use the first N samples only (0: all)"},
    {"data.*", "scene_size", FLAVA_CFG_INT, "0",
     "kind = idx: 0 keeps the images as they are (resized to the model's input); N (even, "
     ">= 2 x the item side): each item is drawn at load, as `flava data scenes --size N` draws "
     "it, into one cell of an otherwise empty N x N 2x2 scene, the cell drawn from the run seed"},
    {"data.*", "heads", FLAVA_CFG_LIST, "",
     "the objectives this source's batches feed, a subset of the enabled [heads] (empty: all "
     "that apply); a pass no listed head reads is skipped, so e.g. global_contrastive alone "
     "costs the two unmasked unimodal passes, as MMF gives each dataset its own losses"},
};

enum { MAX_SOURCES = 16 };
enum { KIND_IDX, KIND_IMAGETEXT, KIND_TEXT };
enum { MIX_SIZE, MIX_RATIO, MIX_ROUND_ROBIN };

/* RNG stream families, so that no two purposes share a stream. */
enum { STREAM_MIX = 1, STREAM_MASK = 2, STREAM_LOADER = 3, STREAM_KMEANS = 4, STREAM_SCENES = 5 };

typedef struct source {
    const char *name; /* "data.NAME" */
    int kind;
    flava_idx_set idx;
    flava_imagetext pairs;
    char **texts;
    long n;
    double weight;
    unsigned heads; /* bit h: head h feeds on this source's batches */
    flava_loader *loader;
} source;

typedef struct pretrain {
    flava_run *run;
    flava_family_model fm;
    /* FLAVA's own model when a masked-image head runs (only FLAVA has
     * them): its codebook and patch vocabulary give the MIM targets */
    flava_model *m;
    flava_head_set hs;
    flava_train_config tc;
    source src[MAX_SOURCES];
    int nsrc, mix;
    double cum[MAX_SOURCES]; /* cumulative choice probabilities */
    flava_tokenizer *tok;
    flava_text_encoder enc;
    int32_t special[FLAVA_TOKENIZER_N_SPECIAL];
    flava_mlm_config mlm;
    flava_mim_config mim;
    double itm_neg;
    int T, S, P, prefetch;
    flava_image_spec spec; /* the family's preprocessing */
    flava_kmeans *km; /* NULL when the model has its dVAE codebook */
    uint64_t seed;
    /* the batch handed to the model: the loader's images, its texts in
     * caption order, and the masks and labels (buffers of the largest
     * batch, allocated once) */
    flava_batch b;
    int32_t *ids, *types, *ids_masked, *mlm_lbl, *mim_lbl, *itm_lbl, *caption_index;
    float *amask;
    uint8_t *masked_pos;
} pretrain;

/* ---- sources ---- */

/* Appends a copy of text to s->texts (capacity *cap). */
static flava_status push_text(source *s, long *cap, const char *text, const char *path)
{
    if (s->n == *cap) {
        long grown_cap = *cap ? 2 * *cap : 1024;
        char **grown = realloc(s->texts, sizeof(char *) * (size_t)grown_cap);
        if (!grown)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: %ld texts", path, grown_cap);
        s->texts = grown;
        *cap = grown_cap;
    }
    FLAVA_TRY(flava_strdup(&s->texts[s->n], text));
    s->n++;
    return FLAVA_OK;
}

/* The texts of a file: one per non-empty line, or the field `column` of a
 * TSV with a header. */
static flava_status read_lines(source *s, const char *path, const char *column)
{
    long cap = 0;
    flava_status st = FLAVA_OK;
    if (*column) {
        flava_tsv t;
        FLAVA_TRY(flava_tsv_open(&t, path));
        int more, col = -1;
        st = flava_tsv_next(&t, &more);
        if (st == FLAVA_OK && (!more || (col = flava_tsv_find(&t, column)) < 0))
            st = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:1: no column '%s' in the header", path, column);
        while (st == FLAVA_OK && (st = flava_tsv_next(&t, &more)) == FLAVA_OK && more)
            st = col < t.nfields ? push_text(s, &cap, t.fields[col], path)
                                 : FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: %d fields, expected at "
                                               "least %d", path, t.line, t.nfields, col + 1);
        flava_tsv_close(&t);
    } else {
        FILE *f = fopen(path, "r");
        if (!f)
            return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        char *line = NULL;
        size_t lcap = 0;
        ssize_t len;
        while (st == FLAVA_OK && (len = getline(&line, &lcap, f)) >= 0) {
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (len)
                st = push_text(s, &cap, line, path);
        }
        free(line);
        fclose(f);
    }
    if (st == FLAVA_OK && s->n == 0)
        st = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no texts", path);
    return st;
}

/* The images of an idx source as one-item scenes (scene_size), each item's
 * cell drawn from scene_seed. */
static flava_status render_scenes(source *s, flava_cfg *cfg, int64_t scene_size,
                                  uint64_t scene_seed)
{
    char key[256];
    snprintf(key, sizeof key, "%s.scene_size", s->name);
    flava_idx_set scenes;
    flava_status st = flava_scenes_one_item(&scenes, &s->idx, s->n, scene_size,
                                            FLAVA_SCENES_SEEDED_CELL, scene_seed, key);
    if (st != FLAVA_OK) {
        flava_error_context("%s", flava_cfg_where(cfg, s->name, "scene_size"));
        return st;
    }
    flava_idx_set_free(&s->idx);
    s->idx = scenes;
    return FLAVA_OK;
}

/* s->heads from the source's `heads` list: enabled heads only. */
static flava_status source_heads(source *s, flava_cfg *cfg, const flava_head_set *hs)
{
    const char *const *names;
    int n;
    FLAVA_TRY(flava_cfg_get_list(cfg, s->name, "heads", &names, &n));
    s->heads = 0;
    for (int h = 0; h < FLAVA_NUM_HEADS; h++)
        s->heads |= n == 0 && hs->enabled[h] ? 1u << h : 0;
    for (int i = 0; i < n; i++) {
        const int h = flava_head_find(names[i]);
        if (h < 0 || !hs->enabled[h])
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.heads: '%s' is not an enabled "
                               "pretraining head (a [heads] weight above 0)",
                               flava_cfg_where(cfg, s->name, "heads"), s->name, names[i]);
        s->heads |= 1u << h;
    }
    return FLAVA_OK;
}

static flava_status open_source(source *s, flava_run *run, const char *section,
                                const flava_head_set *hs, uint64_t scene_seed)
{
    flava_cfg *cfg = run->cfg;
    const char *kind, *path, *labels, *image_key, *caption_key, *column;
    int64_t limit, scene_size;
    s->name = section;
    FLAVA_TRY(flava_cfg_get_string(cfg, section, "kind", &kind));
    FLAVA_TRY(flava_cfg_get_string(cfg, section, "path", &path));
    FLAVA_TRY(flava_cfg_get_string(cfg, section, "labels", &labels));
    FLAVA_TRY(flava_cfg_get_string(cfg, section, "image_key", &image_key));
    FLAVA_TRY(flava_cfg_get_string(cfg, section, "caption_key", &caption_key));
    FLAVA_TRY(flava_cfg_get_string(cfg, section, "column", &column));
    FLAVA_TRY(flava_cfg_get_float(cfg, section, "weight", &s->weight));
    FLAVA_TRY(flava_cfg_get_int(cfg, section, "limit", &limit));
    FLAVA_TRY(flava_cfg_get_int(cfg, section, "scene_size", &scene_size));
    FLAVA_TRY(source_heads(s, cfg, hs));
    if (scene_size && strcmp(kind, "idx"))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.scene_size = %lld needs kind = idx",
                           flava_cfg_where(cfg, section, "scene_size"), section,
                           (long long)scene_size);
    if (!strcmp(kind, "idx")) {
        s->kind = KIND_IDX;
        if (!*labels)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "[%s]: kind = idx needs labels = FILE", section);
        FLAVA_TRY(flava_idx_load(&s->idx, path, labels));
        s->n = (long)s->idx.n;
    } else if (!strcmp(kind, "imagetext")) {
        s->kind = KIND_IMAGETEXT;
        FLAVA_TRY(flava_imagetext_load(&s->pairs, path, image_key, caption_key));
        s->n = s->pairs.n;
    } else if (!strcmp(kind, "text")) {
        s->kind = KIND_TEXT;
        FLAVA_TRY(read_lines(s, path, column));
    } else {
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: %s.kind = '%s': expected idx, imagetext or text",
                           flava_cfg_where(cfg, section, "kind"), section, kind);
    }
    if (limit < 0 || !(s->weight >= 0))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "[%s]: limit %lld and weight %g must not be negative",
                           section, (long long)limit, s->weight);
    if (limit && limit < s->n)
        s->n = (long)limit;
    if (scene_size) {
        FLAVA_TRY(render_scenes(s, cfg, scene_size, scene_seed));
        flava_runlog_printf(&run->log, "[%s]: %ld items as one-item %lldx%lld scenes", section,
                            s->n, (long long)scene_size, (long long)scene_size);
    }
    return FLAVA_OK;
}

static void close_source(source *s)
{
    flava_loader_close(s->loader);
    s->loader = NULL;
    flava_idx_set_free(&s->idx);
    flava_imagetext_free(&s->pairs);
    for (long i = 0; s->texts && i < s->n; i++)
        free(s->texts[i]);
    free(s->texts);
}

/* ---- the data position ---- */

/* The source of micro-batch g. */
static int choose(const pretrain *p, int64_t g)
{
    if (p->mix == MIX_ROUND_ROBIN)
        return (int)(g % p->nsrc);
    flava_rng r;
    flava_rng_init(&r, p->seed + STREAM_MIX, (uint64_t)g);
    double u = flava_rng_uniform(&r);
    for (int i = 0; i < p->nsrc - 1; i++)
        if (u < p->cum[i])
            return i;
    return p->nsrc - 1;
}

static flava_loader_opts loader_opts(const pretrain *p, const source *s, long first_batch)
{
    flava_rng r;
    flava_rng_init(&r, p->seed + STREAM_LOADER, (uint64_t)(s - p->src));
    return (flava_loader_opts){
        .batch_size = p->tc.batch_size,
        .image_size = s->kind != KIND_TEXT ? p->S : 0,
        .codebook_size = s->kind != KIND_TEXT && p->m && p->m->codebook ? 112 : 0,
        .image_spec = s->kind != KIND_TEXT ? &p->spec : NULL,
        .max_text_len = s->kind != KIND_IDX ? p->T : 0,
        .shuffle = 1,
        .drop_last = 1,
        .prefetch = p->prefetch,
        .threads = p->run->threads,
        .seed = flava_rng_u64(&r),
        .first_batch = first_batch,
        .rank = flava_dist_rank(),
        .ranks = flava_dist_size(),
    };
}

static flava_status open_loader(pretrain *p, source *s, long first_batch)
{
    flava_loader_source ls = {.n = s->n};
    if (s->kind == KIND_IDX)
        ls.idx = &s->idx;
    else if (s->kind == KIND_IMAGETEXT)
        ls.pairs = &s->pairs;
    else
        ls.texts = s->texts;
    flava_loader_opts o = loader_opts(p, s, first_batch);
    flava_status st = flava_loader_open(&s->loader, &ls, s->kind != KIND_IDX ? &p->enc : NULL, &o);
    if (st != FLAVA_OK)
        flava_error_context("[%s]", s->name);
    return st;
}

static flava_status seek(void *self, int64_t step)
{
    pretrain *p = self;
    long count[MAX_SOURCES] = {0};
    for (int64_t g = 0; g < step * p->tc.grad_accum; g++)
        count[choose(p, g)]++;
    for (int i = 0; i < p->nsrc; i++) {
        flava_loader_close(p->src[i].loader);
        p->src[i].loader = NULL;
        FLAVA_TRY(open_loader(p, &p->src[i], count[i]));
    }
    return FLAVA_OK;
}

/* ---- batches ---- */

/* Whether a source's images get MIM targets (MIM or MMM-image feeds on it). */
static bool source_masks_images(const source *s)
{
    return s->kind != KIND_TEXT &&
           (s->heads >> FLAVA_HEAD_MIM & 1 || s->heads >> FLAVA_HEAD_MMM_IMAGE & 1);
}

static flava_status next(void *self, const flava_batch **out, int64_t step, int micro)
{
    pretrain *p = self;
    /* The ranks of a data-parallel run read the same source at a micro-batch,
     * each its own batch of it; masks and negatives come from the run-wide
     * index g of the batch (the same run on one rank with grad_accum times
     * the ranks draws the same for a single source). */
    const int64_t micro_index = step * p->tc.grad_accum + micro;
    source *s = &p->src[choose(p, micro_index)];
    const int64_t g = micro_index * flava_dist_size() + flava_dist_rank();
    const flava_batch *lb;
    long epoch, index;
    FLAVA_TRY(flava_loader_next(s->loader, &lb, &epoch, &index));
    flava_batch *b = &p->b;
    const int B = lb->B, T = p->T, P = p->P;
    b->B = B;
    b->pixel_values = lb->pixel_values;
    b->codebook_pixel_values = lb->codebook_pixel_values;
    const int text = lb->input_ids != NULL, image = lb->pixel_values != NULL;
    b->image_size = image ? p->S : 0;
    b->T = text ? T : 0;
    b->P = image ? P : 0;
    b->input_ids = NULL;
    b->bool_masked_pos = NULL;
    b->mim_labels = NULL;
    b->itm_labels = NULL;
    b->token_type_ids = NULL;
    b->attention_mask = NULL;
    b->input_ids_masked = NULL;
    b->mlm_labels = NULL;
    flava_rng r;
    int on[FLAVA_NUM_HEADS];
    for (int h = 0; h < FLAVA_NUM_HEADS; h++)
        on[h] = s->heads >> h & 1;
    b->heads = s->heads;
    if (text && image && on[FLAVA_HEAD_ITM]) {
        /* ITM negatives: sample i reads caption caption_index[i] */
        flava_rng_init(&r, p->seed + STREAM_MASK, (uint64_t)g << 20);
        FLAVA_TRY(flava_itm_negatives(p->caption_index, p->itm_lbl, B, p->itm_neg, &r));
        b->itm_labels = p->itm_lbl;
    }
    if (text) {
        for (int i = 0; i < B; i++) {
            const int j = b->itm_labels ? p->caption_index[i] : i;
            memcpy(p->ids + (size_t)i * T, lb->input_ids + (size_t)j * T, sizeof(int32_t) * T);
            memcpy(p->types + (size_t)i * T, lb->token_type_ids + (size_t)j * T,
                   sizeof(int32_t) * T);
            memcpy(p->amask + (size_t)i * T, lb->attention_mask + (size_t)j * T,
                   sizeof(float) * T);
            if (!on[FLAVA_HEAD_MLM] && !on[FLAVA_HEAD_MMM_TEXT])
                continue;
            flava_rng_init(&r, p->seed + STREAM_MASK, ((uint64_t)g << 20) + 1 + 2 * (uint64_t)i);
            FLAVA_TRY(flava_mlm_mask(p->ids_masked + (size_t)i * T, p->mlm_lbl + (size_t)i * T,
                                     NULL, p->ids + (size_t)i * T, p->amask + (size_t)i * T, T,
                                     &p->mlm, &r));
        }
        b->input_ids = p->ids;
        b->token_type_ids = p->types;
        b->attention_mask = p->amask;
        if (on[FLAVA_HEAD_MLM] || on[FLAVA_HEAD_MMM_TEXT]) {
            b->input_ids_masked = p->ids_masked;
            b->mlm_labels = p->mlm_lbl;
        }
    }
    if (source_masks_images(s)) {
        for (int i = 0; i < B; i++) {
            int nm;
            flava_rng_init(&r, p->seed + STREAM_MASK, ((uint64_t)g << 20) + 2 + 2 * (uint64_t)i);
            FLAVA_TRY(flava_mim_mask(p->masked_pos + (size_t)i * P, &nm, &p->mim, &r));
        }
        b->bool_masked_pos = p->masked_pos;
        if (p->km) {
            FLAVA_TRY(flava_kmeans_assign(p->run->ctx, p->km, p->mim_lbl, lb->pixel_values, B,
                                          p->S, p->S));
            for (int64_t k = 0; k < (int64_t)B * P; k++)
                if (!p->masked_pos[k])
                    p->mim_lbl[k] = FLAVA_IGNORE_INDEX;
            b->mim_labels = p->mim_lbl;
        }
    }
    *out = b;
    return FLAVA_OK;
}

/* ---- the k-means codebook ---- */

/* Fits K = image_config.vocab_size centroids on up to kmeans_images
 * training images (an equal share from each source whose images get MIM
 * targets, each read in its own seeded order), or loads the run's codebook
 * when resuming. */
static flava_status kmeans_codebook(pretrain *p, int64_t n_images, int64_t iters)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/kmeans.safetensors", p->run->run_dir);
    struct stat st;
    if (p->run->resume && stat(path, &st) == 0) {
        FLAVA_TRY(flava_kmeans_load(&p->km, path));
        int K, C, patch;
        flava_kmeans_centroids(p->km, &K, &C, &patch);
        if (K != p->m->cfg.image.vocab_size || patch != p->m->cfg.image.patch_size || C != 3)
            return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: %d centroids of %dx%dx%d, expected %d of "
                               "3x%dx%d", path, K, C, patch, patch, p->m->cfg.image.vocab_size,
                               p->m->cfg.image.patch_size, p->m->cfg.image.patch_size);
        return FLAVA_OK;
    }
    int n_img_src = 0;
    for (int i = 0; i < p->nsrc; i++)
        n_img_src += source_masks_images(&p->src[i]);
    const int S = p->S, patch = p->m->cfg.image.patch_size, K = p->m->cfg.image.vocab_size;
    const size_t img_floats = (size_t)3 * S * S;
    float *images = NULL, *patches = NULL;
    FLAVA_TRY(flava_alloc((void **)&images, sizeof(float) * img_floats * (size_t)n_images,
                          "k-means images"));
    int64_t have = 0;
    flava_status s = FLAVA_OK;
    char from[256] = ""; /* the sources, for the log */
    for (int i = 0, done_src = 0; s == FLAVA_OK && i < p->nsrc; i++) {
        source *src = &p->src[i];
        if (!source_masks_images(src))
            continue;
        size_t used = strlen(from);
        snprintf(from + used, sizeof from - used, "%s%s", used ? ", " : "",
                 src->name + strlen("data."));
        int64_t want = (n_images - have) / (n_img_src - done_src++);
        if (want > src->n)
            want = src->n;
        flava_loader_source ls = {.n = src->n};
        if (src->kind == KIND_IDX)
            ls.idx = &src->idx;
        else
            ls.pairs = &src->pairs;
        flava_loader_opts o = loader_opts(p, src, 0);
        o.max_text_len = o.codebook_size = o.drop_last = 0;
        o.rank = o.ranks = 0; /* every rank fits on the same images */
        flava_rng r;
        flava_rng_init(&r, p->seed + STREAM_KMEANS, (uint64_t)i);
        o.seed = flava_rng_u64(&r);
        flava_loader *l;
        s = flava_loader_open(&l, &ls, NULL, &o);
        for (int64_t got = 0; s == FLAVA_OK && got < want;) {
            const flava_batch *b;
            long e, g;
            s = flava_loader_next(l, &b, &e, &g);
            int64_t take = want - got < b->B ? want - got : b->B;
            if (s == FLAVA_OK)
                memcpy(images + (size_t)have * img_floats, b->pixel_values,
                       sizeof(float) * img_floats * (size_t)take);
            got += take;
            have += take;
        }
        flava_loader_close(l);
    }
    const int64_t M = have * (S / patch) * (S / patch);
    if (s == FLAVA_OK && M < K)
        s = FLAVA_ERROR(FLAVA_ERR_CONFIG, "k-means: %lld patches from %lld images for %d "
                        "centroids (image_config.vocab_size): raise pretrain.kmeans_images",
                        (long long)M, (long long)have, K);
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&patches, sizeof(float) * img_floats * (size_t)have,
                        "k-means patches");
    if (s == FLAVA_OK)
        s = flava_kmeans_patches(patches, images, (int)have, 3, S, S, patch);
    flava_free(images);
    double t0 = flava_now();
    if (s == FLAVA_OK)
        s = flava_kmeans_fit(p->run->ctx, &p->km, patches, M, 3, patch, K, (int)iters,
                             p->seed + STREAM_KMEANS);
    flava_free(patches);
    FLAVA_TRY(s);
    flava_runlog_printf(&p->run->log, "k-means MIM codebook: %d centroids on %lld patches of "
                        "%lld images (%s) in %.1f s", K, (long long)M, (long long)have, from,
                        flava_now() - t0);
    /* every rank fits the same codebook; rank 0 keeps it */
    return flava_dist_rank() == 0 ? flava_kmeans_save(p->km, path) : FLAVA_OK;
}

/* ---- setup and run ---- */

static flava_status alloc_buffers(pretrain *p)
{
    const size_t B = (size_t)p->tc.batch_size, T = (size_t)p->T, P = (size_t)p->P;
    FLAVA_TRY(flava_alloc((void **)&p->ids, sizeof(int32_t) * B * T, "input_ids"));
    FLAVA_TRY(flava_alloc((void **)&p->types, sizeof(int32_t) * B * T, "token_type_ids"));
    FLAVA_TRY(flava_alloc((void **)&p->ids_masked, sizeof(int32_t) * B * T, "input_ids_masked"));
    FLAVA_TRY(flava_alloc((void **)&p->mlm_lbl, sizeof(int32_t) * B * T, "mlm_labels"));
    FLAVA_TRY(flava_alloc((void **)&p->amask, sizeof(float) * B * T, "attention_mask"));
    FLAVA_TRY(flava_alloc((void **)&p->masked_pos, B * P, "bool_masked_pos"));
    FLAVA_TRY(flava_alloc((void **)&p->mim_lbl, sizeof(int32_t) * B * P, "mim_labels"));
    FLAVA_TRY(flava_alloc((void **)&p->itm_lbl, sizeof(int32_t) * B, "itm_labels"));
    FLAVA_TRY(flava_alloc((void **)&p->caption_index, sizeof(int32_t) * B, "caption order"));
    return FLAVA_OK;
}

static void free_all(pretrain *p)
{
    for (int i = 0; i < p->nsrc; i++)
        close_source(&p->src[i]);
    flava_kmeans_destroy(p->km);
    flava_family_destroy(&p->fm);
    flava_tokenizer_free(p->tok);
    flava_free(p->ids);
    flava_free(p->types);
    flava_free(p->ids_masked);
    flava_free(p->mlm_lbl);
    flava_free(p->amask);
    flava_free(p->masked_pos);
    flava_free(p->mim_lbl);
    flava_free(p->itm_lbl);
    flava_free(p->caption_index);
}

static flava_status setup_data(pretrain *p)
{
    flava_cfg *cfg = p->run->cfg;
    const char *names[MAX_SOURCES];
    int n = flava_cfg_sections(cfg, "data.*", names, MAX_SOURCES);
    if (n == 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "pretraining needs data: no [data.NAME] section "
                           "(kind = idx | imagetext | text, path = ...)");
    if (n > MAX_SOURCES)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%d [data.NAME] sections, at most %d", n, MAX_SOURCES);
    int any_text = 0;
    for (int i = 0; i < n; i++) {
        p->nsrc = i + 1; /* so that free_all closes what was opened */
        flava_rng r;
        flava_rng_init(&r, p->seed + STREAM_SCENES, (uint64_t)i);
        FLAVA_TRY(open_source(&p->src[i], p->run, names[i], &p->hs, flava_rng_u64(&r)));
        any_text |= p->src[i].kind != KIND_IDX;
        if (p->src[i].n < p->tc.batch_size)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "[%s]: %ld samples make no full batch of %d",
                               names[i], p->src[i].n, p->tc.batch_size);
    }
    const char *mix, *tok_path;
    FLAVA_TRY(flava_cfg_get_string(cfg, "pretrain", "mix", &mix));
    if (!strcmp(mix, "size"))
        p->mix = MIX_SIZE;
    else if (!strcmp(mix, "ratio"))
        p->mix = MIX_RATIO;
    else if (!strcmp(mix, "round_robin"))
        p->mix = MIX_ROUND_ROBIN;
    else
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "%s: pretrain.mix = '%s': expected size, ratio or "
                           "round_robin", flava_cfg_where(cfg, "pretrain", "mix"), mix);
    double total = 0;
    for (int i = 0; i < n; i++)
        total += p->mix == MIX_SIZE ? (double)p->src[i].n : p->src[i].weight;
    if (!(total > 0))
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "mix = ratio: every [data.NAME] weight is 0");
    for (int i = 0; i < n; i++) {
        p->cum[i] = (i ? p->cum[i - 1] : 0) +
                    (p->mix == MIX_SIZE ? (double)p->src[i].n : p->src[i].weight) / total;
    }
    FLAVA_TRY(flava_cfg_get_string(cfg, "pretrain", "tokenizer", &tok_path));
    if (any_text && !*tok_path)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "text sources need pretrain.tokenizer = vocab.txt "
                           "or .model");
    if (any_text) {
        FLAVA_TRY(flava_tokenizer_load(&p->tok, tok_path));
        if (p->tok->vocab_size > p->fm.vocab_size)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "the tokenizer %s has %d pieces but the model's "
                               "text_config.vocab_size is %d", tok_path, p->tok->vocab_size,
                               p->fm.vocab_size);
        p->enc = (flava_text_encoder){flava_tokenizer_encode_unpadded, p->tok, p->tok->pad_id};
        flava_tokenizer_special_ids(p->special, p->tok);
        p->mlm = (flava_mlm_config){.mask_id = p->tok->mask_id,
                                    .vocab_size = p->tok->vocab_size,
                                    .special_ids = p->special,
                                    .n_special = FLAVA_TOKENIZER_N_SPECIAL};
        FLAVA_TRY(flava_cfg_get_float(cfg, "pretrain", "mlm_probability", &p->mlm.mask_prob));
    }
    return FLAVA_OK;
}

static flava_status pretrain_run_inner(pretrain *p, double t0)
{
    flava_run *run = p->run;
    flava_cfg *cfg = run->cfg;
    FLAVA_TRY(flava_train_config_read(&p->tc, cfg));
    const flava_family_ops *ops;
    FLAVA_TRY(flava_train_family(&ops, run));
    flava_head_set hs;
    FLAVA_TRY(flava_train_heads(&hs, cfg, ops->pretrain_heads, ops->n_pretrain_heads));
    p->hs = hs;
    FLAVA_TRY(flava_train_family_create(&p->fm, run, &hs, 1, 0));
    const int mim = hs.enabled[FLAVA_HEAD_MIM] || hs.enabled[FLAVA_HEAD_MMM_IMAGE];
    p->m = mim ? p->fm.impl : NULL; /* a MIM head: the family is FLAVA */
    int64_t v, kmeans_images, kmeans_iters;
    FLAVA_TRY(flava_cfg_get_int(cfg, "pretrain", "max_text_len", &v));
    if (v < 2 || v > p->fm.max_text_len)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "pretrain.max_text_len = %lld: expected 2 to "
                           "text_config.max_position_embeddings (%d)", (long long)v,
                           p->fm.max_text_len);
    p->T = (int)v;
    FLAVA_TRY(flava_cfg_get_int(cfg, "pretrain", "prefetch", &v));
    p->prefetch = v < 1 ? 1 : (int)v;
    FLAVA_TRY(flava_cfg_get_float(cfg, "pretrain", "itm_negative_probability", &p->itm_neg));
    FLAVA_TRY(flava_cfg_get_int(cfg, "pretrain", "kmeans_images", &kmeans_images));
    FLAVA_TRY(flava_cfg_get_int(cfg, "pretrain", "kmeans_iters", &kmeans_iters));
    p->S = p->fm.image_size;
    ops->image(&p->spec, p->S);
    const int grid = p->fm.image_size / p->fm.patch_size;
    p->P = grid * grid;
    p->mim = flava_mim_default_config(grid, grid);
    FLAVA_TRY(setup_data(p));
    FLAVA_TRY(alloc_buffers(p));
    int masks_images = 0; /* then a MIM head is on, and p->m is the model */
    for (int i = 0; i < p->nsrc; i++)
        masks_images |= source_masks_images(&p->src[i]);
    if (masks_images && !p->m->codebook) {
        if (kmeans_images < 1)
            return FLAVA_ERROR(FLAVA_ERR_CONFIG, "pretrain.kmeans_images must be positive");
        FLAVA_TRY(kmeans_codebook(p, kmeans_images, kmeans_iters));
    }
    flava_runlog_printf(&run->log, "pretrain: %s, %zu parameters, %d sources, %lld steps of "
                        "%d x %d", ops->name, p->fm.table->total, p->nsrc, (long long)p->tc.steps,
                        p->tc.grad_accum, p->tc.batch_size);
    const flava_train_task task = {p, seek, next, NULL};
    flava_train_result res;
    FLAVA_TRY(flava_train(run, &p->fm, &p->tc, &task, &res));

    const char *names[1 + FLAVA_NUM_HEADS];
    double values[1 + FLAVA_NUM_HEADS];
    static char head_names[FLAVA_NUM_HEADS][48];
    int n = 0;
    names[n] = "loss";
    values[n++] = res.loss;
    for (int h = 0; h < FLAVA_NUM_HEADS; h++) {
        if (isnan(res.head_loss[h]))
            continue;
        snprintf(head_names[h], sizeof head_names[h], "loss_info.%s", flava_heads[h]->name);
        names[n] = head_names[h];
        values[n++] = res.head_loss[h];
    }
    char dataset[512] = "";
    size_t len = 0;
    for (int i = 0; i < p->nsrc && len < sizeof dataset; i++)
        len += (size_t)snprintf(dataset + len, sizeof dataset - len, "%s%s", i ? "+" : "",
                                p->src[i].name + strlen("data."));
    return flava_results_write(run->run_dir, "pretrain", "pretrain", dataset, "loss", names, values,
                               n, flava_now() - t0);
}

static flava_status pretrain_run(flava_run *run)
{
    pretrain p = {.run = run, .seed = run->seed};
    flava_status s = pretrain_run_inner(&p, flava_now());
    free_all(&p);
    return s;
}

static flava_status pretrain_register_keys(flava_cfg *cfg)
{
    return flava_cfg_register_shared(cfg, pretrain_keys,
                                     (int)(sizeof pretrain_keys / sizeof *pretrain_keys));
}

const flava_task_ops flava_task_pretrain = {
    .name = "pretrain",
    .command = "pretrain",
    .summary = "pretraining: FLAVA's MLM, MIM, MMM, ITM, contrastive; CLIP's and ALIGN's "
               "contrastive loss; over [data.NAME] sources",
    .register_keys = pretrain_register_keys,
    .run = pretrain_run,
};
