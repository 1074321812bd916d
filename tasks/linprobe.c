/* linprobe.c - linear probe: multinomial logistic regression (logreg.h) on
 * frozen image features (the final CLS state, the pooler output or the
 * patch states' mean) of an IDX train set, standardised with the fitting
 * set's mean and std. The inverse penalty C is chosen on a seeded held-out
 * share of the train set over a log grid (best held-out accuracy, ties to
 * the smaller C), then the probe is refitted on the whole train set and
 * scored on the test set.
 * With linprobe.scene_size the items are shown as one-item scenes (as
 * zero-shot can), the features averaged over the listed cells. */
#include <stdlib.h>
#include <string.h>

#include "evalmath.h"
#include "idx.h"
#include "logreg.h"
#include "rng.h"
#include "scenes.h"
#include "taskutil.h"

static const flava_cfg_key linprobe_keys[] = {
    {"linprobe", "images", FLAVA_CFG_STRING, NULL, "IDX images of the train set"},
    {"linprobe", "labels", FLAVA_CFG_STRING, NULL, "IDX labels of the train set"},
    {"linprobe", "test_images", FLAVA_CFG_STRING, NULL, "IDX images of the test set"},
    {"linprobe", "test_labels", FLAVA_CFG_STRING, NULL, "IDX labels of the test set"},
    {"linprobe", "feature", FLAVA_CFG_STRING, "cls",
     "cls (the image tower's CLS state; ALIGN has none), pooled (its pooler output) or mean "
     "(its final patch states averaged, MAE's probe input)"},
    {"linprobe", "train_limit", FLAVA_CFG_INT, "0", "first N train images only (0: all)"},
    {"linprobe", "test_limit", FLAVA_CFG_INT, "0", "first N test images only (0: all)"},
    {"linprobe", "holdout", FLAVA_CFG_FLOAT, "0.2", "share of the train set that chooses C"},
    {"linprobe", "c_min", FLAVA_CFG_FLOAT, "1e-3", "smallest C of the grid"},
    {"linprobe", "c_max", FLAVA_CFG_FLOAT, "1e2", "largest C of the grid"},
    {"linprobe", "c_steps", FLAVA_CFG_INT, "6", "values of the log grid"},
    {"linprobe", "max_iter", FLAVA_CFG_INT, "1000", "L-BFGS iterations per fit"},
    {"linprobe", "tol", FLAVA_CFG_FLOAT, "1e-4", "gradient max-norm that ends a fit"},
    {"linprobe", "batch_size", FLAVA_CFG_INT, "64", "images per forward"},
    {"linprobe", "dataset", FLAVA_CFG_STRING, "fashion-mnist", "data set name in results.json"},
    {"linprobe", "scene_size", FLAVA_CFG_INT, "0",
     "0: each image fills the model's input; N (even, >= 2 x the item side): each train and "
     "test item is drawn, as `flava data scenes --size N` draws it, into one cell of an "
     "otherwise empty N x N 2x2 scene"},
    {"linprobe", "scene_cells", FLAVA_CFG_LIST, "top left",
     "with scene_size: the cells the item is put in (top left, top right, bottom left, "
     "bottom right), one feature pass over the train and test items each; the probe fits and "
     "scores the features averaged over the cells"},
};

enum { MAX_GRID = 64, STREAM_HOLDOUT = 21 };

typedef struct linprobe {
    flava_family_model m;
    flava_idx_set train, test, scenes;
    float *Xtr, *Xte, *Xfit, *Xhold, *mean, *std, *Xcell;
    int32_t *ytr, *yte, *yfit, *yhold, *pred, *perm;
    flava_logreg lr;
} linprobe;

static flava_status labels_of(int32_t **y, const flava_idx_set *s, long n, int *K)
{
    FLAVA_TRY(flava_alloc((void **)y, sizeof(int32_t) * (size_t)n, "labels"));
    for (long i = 0; i < n; i++) {
        (*y)[i] = s->labels[i];
        if ((*y)[i] + 1 > *K)
            *K = (*y)[i] + 1;
    }
    return FLAVA_OK;
}

/* Features *X[*N, D] of the first n items of `set` (0: all): of the items
 * as they are, or with scene_size the mean over cells[ncells] of the
 * features of their one-item scenes. */
static flava_status probe_features(float **X, long *N, linprobe *p, flava_run *run,
                                   const flava_idx_set *set, long n, int64_t scene_size,
                                   const int *cells, int ncells, int bs, flava_feature f)
{
    flava_loader_source src = {.n = n, .idx = set};
    if (!scene_size)
        return flava_task_features(X, N, run, &p->m, &src, NULL, 0, bs, f);
    const size_t D = (size_t)flava_task_feature_dim(&p->m, f);
    for (int c = 0; c < ncells; c++) {
        flava_idx_set_free(&p->scenes);
        FLAVA_TRY(flava_scenes_one_item(&p->scenes, set, n, scene_size, cells[c], 0,
                                        "linprobe.scene_size"));
        src = (flava_loader_source){.idx = &p->scenes};
        flava_free(p->Xcell);
        p->Xcell = NULL;
        FLAVA_TRY(flava_task_features(c ? &p->Xcell : X, N, run, &p->m, &src, NULL, 0, bs, f));
        for (size_t i = 0; c && i < (size_t)*N * D; i++)
            (*X)[i] += p->Xcell[i];
    }
    for (size_t i = 0; ncells > 1 && i < (size_t)*N * D; i++)
        (*X)[i] /= (float)ncells;
    flava_idx_set_free(&p->scenes);
    return FLAVA_OK;
}

/* Standardises a copy of the fitting rows and, with the same statistics,
 * the scored rows; fits with C and returns the scored rows' accuracy. */
static flava_status fit_score(double *acc, linprobe *p, flava_ctx *ctx, float *Xfit,
                              const int32_t *yfit, long nfit, float *Xs, const int32_t *ys, long ns,
                              int D, int K, double C, int64_t max_iter, double tol)
{
    FLAVA_TRY(flava_standardize_fit(p->mean, p->std, Xfit, nfit, D));
    flava_standardize_apply(Xfit, p->mean, p->std, nfit, D);
    flava_standardize_apply(Xs, p->mean, p->std, ns, D);
    flava_logreg_free(&p->lr);
    FLAVA_TRY(flava_logreg_fit(ctx, &p->lr, Xfit, yfit, (int)nfit, D, K, C, (int)max_iter, tol));
    FLAVA_TRY(flava_logreg_predict(ctx, p->pred, NULL, &p->lr, Xs, (int)ns));
    long hit = 0;
    for (long i = 0; i < ns; i++)
        hit += p->pred[i] == ys[i];
    *acc = (double)hit / (double)ns;
    return FLAVA_OK;
}

static flava_status linprobe_inner(linprobe *p, flava_run *run, double t0)
{
    flava_cfg *cfg = run->cfg;
    const char *images, *labels, *timages, *tlabels, *feature, *dataset;
    const char *const *cell_list;
    int ncell_names;
    int64_t train_limit, test_limit, steps, max_iter, bs, scene_size;
    double holdout, c_min, c_max, tol;
    FLAVA_TRY(flava_cfg_get_string(cfg, "linprobe", "images", &images));
    FLAVA_TRY(flava_cfg_get_string(cfg, "linprobe", "labels", &labels));
    FLAVA_TRY(flava_cfg_get_string(cfg, "linprobe", "test_images", &timages));
    FLAVA_TRY(flava_cfg_get_string(cfg, "linprobe", "test_labels", &tlabels));
    FLAVA_TRY(flava_cfg_get_string(cfg, "linprobe", "feature", &feature));
    FLAVA_TRY(flava_cfg_get_int(cfg, "linprobe", "train_limit", &train_limit));
    FLAVA_TRY(flava_cfg_get_int(cfg, "linprobe", "test_limit", &test_limit));
    FLAVA_TRY(flava_cfg_get_float(cfg, "linprobe", "holdout", &holdout));
    FLAVA_TRY(flava_cfg_get_float(cfg, "linprobe", "c_min", &c_min));
    FLAVA_TRY(flava_cfg_get_float(cfg, "linprobe", "c_max", &c_max));
    FLAVA_TRY(flava_cfg_get_int(cfg, "linprobe", "c_steps", &steps));
    FLAVA_TRY(flava_cfg_get_int(cfg, "linprobe", "max_iter", &max_iter));
    FLAVA_TRY(flava_cfg_get_float(cfg, "linprobe", "tol", &tol));
    FLAVA_TRY(flava_cfg_get_int(cfg, "linprobe", "batch_size", &bs));
    FLAVA_TRY(flava_cfg_get_string(cfg, "linprobe", "dataset", &dataset));
    FLAVA_TRY(flava_cfg_get_int(cfg, "linprobe", "scene_size", &scene_size));
    FLAVA_TRY(flava_cfg_get_list(cfg, "linprobe", "scene_cells", &cell_list, &ncell_names));
    int cells[FLAVA_SCENES_CELLS] = {0}, ncells = 0;
    if (scene_size)
        FLAVA_TRY(flava_scenes_cell_list(cells, &ncells, cell_list, ncell_names,
                                         "linprobe.scene_cells"));
    flava_feature f;
    if (!strcmp(feature, "cls"))
        f = FLAVA_FEATURE_IMAGE_CLS;
    else if (!strcmp(feature, "pooled"))
        f = FLAVA_FEATURE_IMAGE_POOLED;
    else if (!strcmp(feature, "mean"))
        f = FLAVA_FEATURE_IMAGE_MEAN;
    else
        return FLAVA_ERROR(FLAVA_ERR_CONFIG,
                           "%s: linprobe.feature = '%s': expected cls, pooled or mean",
                           flava_cfg_where(cfg, "linprobe", "feature"), feature);
    if (!(holdout > 0 && holdout < 1) || steps < 2 || steps > MAX_GRID || bs < 1 ||
        max_iter < 1 || train_limit < 0 || test_limit < 0)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "linprobe: holdout %g in (0, 1), c_steps %lld in 2 "
                           "to %d, batch_size %lld and max_iter %lld >= 1, limits >= 0 expected",
                           holdout, (long long)steps, MAX_GRID, (long long)bs,
                           (long long)max_iter);
    double grid[MAX_GRID], hold_acc[MAX_GRID];
    FLAVA_TRY(flava_log_grid(grid, (int)steps, c_min, c_max));
    FLAVA_TRY(flava_idx_load(&p->train, images, labels));
    FLAVA_TRY(flava_idx_load(&p->test, timages, tlabels));
    if (scene_size) {
        FLAVA_TRY(flava_scenes_check_size(scene_size, p->train.rows, p->train.cols,
                                          "linprobe.scene_size"));
        FLAVA_TRY(flava_scenes_check_size(scene_size, p->test.rows, p->test.cols,
                                          "linprobe.scene_size"));
    }
    FLAVA_TRY(flava_task_eval_model(&p->m, run));

    long N, M;
    FLAVA_TRY(probe_features(&p->Xtr, &N, p, run, &p->train,
                             train_limit && train_limit < p->train.n ? (long)train_limit : 0,
                             scene_size, cells, ncells, (int)bs, f));
    FLAVA_TRY(probe_features(&p->Xte, &M, p, run, &p->test,
                             test_limit && test_limit < p->test.n ? (long)test_limit : 0,
                             scene_size, cells, ncells, (int)bs, f));
    const int D = flava_task_feature_dim(&p->m, f);
    int K = 0;
    FLAVA_TRY(labels_of(&p->ytr, &p->train, N, &K));
    FLAVA_TRY(labels_of(&p->yte, &p->test, M, &K));
    const long nhold = (long)(holdout * (double)N), nfit = N - nhold;
    if (nhold < 1 || nfit < 2)
        return FLAVA_ERROR(FLAVA_ERR_CONFIG, "linprobe: %ld train images split %ld / %ld by "
                           "holdout %g: too few to choose C", N, nfit, nhold, holdout);

    /* a seeded split: Fisher-Yates, the last nhold rows are held out */
    const size_t row = sizeof(float) * (size_t)D;
    FLAVA_TRY(flava_alloc((void **)&p->perm, sizeof(int32_t) * (size_t)N, "split"));
    FLAVA_TRY(flava_alloc((void **)&p->Xfit, row * (size_t)N, "fit features"));
    FLAVA_TRY(flava_alloc((void **)&p->Xhold, row * (size_t)nhold, "held-out features"));
    FLAVA_TRY(flava_alloc((void **)&p->yfit, sizeof(int32_t) * (size_t)N, "fit labels"));
    FLAVA_TRY(flava_alloc((void **)&p->yhold, sizeof(int32_t) * (size_t)nhold, "held-out labels"));
    FLAVA_TRY(flava_alloc((void **)&p->pred, sizeof(int32_t) * (size_t)(N > M ? N : M), "pred"));
    FLAVA_TRY(flava_alloc((void **)&p->mean, row, "feature means"));
    FLAVA_TRY(flava_alloc((void **)&p->std, row, "feature stds"));
    flava_rng r;
    flava_rng_init(&r, run->seed + STREAM_HOLDOUT, 0);
    for (long i = 0; i < N; i++)
        p->perm[i] = (int32_t)i;
    for (long i = N - 1; i > 0; i--) {
        const long j = (long)flava_rng_below(&r, (uint32_t)(i + 1));
        const int32_t t = p->perm[i];
        p->perm[i] = p->perm[j];
        p->perm[j] = t;
    }
    for (int g = 0; g < (int)steps; g++) {
        for (long i = 0; i < N; i++) {
            float *dst = i < nfit ? p->Xfit + (size_t)i * D : p->Xhold + (size_t)(i - nfit) * D;
            int32_t *y = i < nfit ? &p->yfit[i] : &p->yhold[i - nfit];
            memcpy(dst, p->Xtr + (size_t)p->perm[i] * D, row);
            *y = p->ytr[p->perm[i]];
        }
        FLAVA_TRY(fit_score(&hold_acc[g], p, run->ctx, p->Xfit, p->yfit, nfit, p->Xhold,
                            p->yhold, nhold, D, K, grid[g], max_iter, tol));
        flava_runlog_printf(&run->log, "linear probe: C %.4g held-out accuracy %.4f (%d "
                            "iterations)", grid[g], hold_acc[g], p->lr.iterations);
    }
    const int best = flava_argmax_first(hold_acc, (int)steps);
    memcpy(p->Xfit, p->Xtr, row * (size_t)N);
    double acc;
    FLAVA_TRY(fit_score(&acc, p, run->ctx, p->Xfit, p->ytr, N, p->Xte, p->yte, M, D, K,
                        grid[best], max_iter, tol));
    flava_runlog_printf(&run->log, "linear probe: %ld train, %ld test images%s, %d features, C "
                        "%.4g: test accuracy %.4f", N, M,
                        scene_size ? " (one-item scenes)" : "", D, grid[best], acc);
    const char *names[] = {"accuracy", "C", "holdout_accuracy", "train_images", "test_images"};
    const double values[] = {acc, grid[best], hold_acc[best], (double)N, (double)M};
    return flava_task_results(run, "eval", "linprobe", dataset, "accuracy", names, values, 5, t0);
}

static flava_status linprobe_run(flava_run *run)
{
    linprobe p = {0};
    flava_status s = linprobe_inner(&p, run, flava_now());
    flava_family_destroy(&p.m);
    flava_idx_set_free(&p.train);
    flava_idx_set_free(&p.test);
    flava_idx_set_free(&p.scenes);
    flava_logreg_free(&p.lr);
    float *fl[] = {p.Xtr, p.Xte, p.Xfit, p.Xhold, p.mean, p.std, p.Xcell};
    int32_t *il[] = {p.ytr, p.yte, p.yfit, p.yhold, p.pred, p.perm};
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++)
        flava_free(fl[i]);
    for (size_t i = 0; i < sizeof il / sizeof *il; i++)
        flava_free(il[i]);
    return s;
}

static flava_status linprobe_register_keys(flava_cfg *cfg)
{
    return flava_cfg_register(cfg, linprobe_keys,
                              (int)(sizeof linprobe_keys / sizeof *linprobe_keys));
}

const flava_task_ops flava_task_linprobe = {
    .name = "linprobe",
    .command = "eval",
    .summary = "linear probe: logistic regression on frozen image features, C by held-out split",
    .register_keys = linprobe_register_keys,
    .run = linprobe_run,
};
