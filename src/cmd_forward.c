/* cmd_forward.c - `flava forward`: HF-named inputs in, HF-named outputs
 * out, and optionally every parameter gradient and a comparison against a
 * reference file. This is how anyone checks us against PyTorch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "model.h"

static const char forward_usage[] =
    "usage: flava forward --model M --inputs I.safetensors --out O.safetensors [options]\n"
    "Runs HF FlavaForPreTraining's forward on the named inputs (pixel_values,\n"
    "input_ids, input_ids_masked, token_type_ids, attention_mask, bool_masked_pos,\n"
    "mlm_labels, mim_labels, itm_labels, codebook_pixel_values) and writes the\n"
    "outputs under FlavaForPreTrainingOutput names, losses as loss_info.<name>.\n"
    "M is a flava/HF safetensors checkpoint or a HF folder.\n"
    "  -s KEY=VALUE        override a model config field (e.g.\n"
    "                      skip_unmasked_multimodal_encoder=false)\n"
    "  --grads             also run backward (training mode: logit_scale clamped)\n"
    "                      and write grad.<key> for every parameter\n"
    "  --precision P       f32 (default) or bf16\n"
    "  --compare REF       compare every output (and grad) of REF.safetensors that\n"
    "                      we produce; fail if one is missing or off\n"
    "  --rtol X            outputs' relative tolerance (1e-4)\n"
    "  --grad-rtol X       gradients' relative tolerance (1e-3)\n";

typedef struct forward_args {
    const char *model, *inputs, *out, *compare, *precision;
    int grads;
    double rtol, grad_rtol;
    const char *sets[32];
    int nsets;
} forward_args;

static flava_status parse_double(double *out, const char *opt, const char *v)
{
    char *end;
    *out = strtod(v, &end);
    if (end == v || *end || !(*out > 0))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s '%s': expected a positive number", opt, v);
    return FLAVA_OK;
}

static flava_status parse(forward_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->rtol = 1e-4;
    a->grad_rtol = 1e-3;
    a->precision = "f32";
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--grads")) {
            a->grads = 1;
            continue;
        }
        if (i + 1 >= argc)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: unknown option or missing value\n%s", o,
                               forward_usage);
        const char *v = argv[++i];
        if (!strcmp(o, "--model"))
            a->model = v;
        else if (!strcmp(o, "--inputs"))
            a->inputs = v;
        else if (!strcmp(o, "--out"))
            a->out = v;
        else if (!strcmp(o, "--compare"))
            a->compare = v;
        else if (!strcmp(o, "--precision"))
            a->precision = v;
        else if (!strcmp(o, "--rtol"))
            FLAVA_TRY(parse_double(&a->rtol, o, v));
        else if (!strcmp(o, "--grad-rtol"))
            FLAVA_TRY(parse_double(&a->grad_rtol, o, v));
        else if (!strcmp(o, "-s") && a->nsets < 32)
            a->sets[a->nsets++] = v;
        else
            return FLAVA_ERROR(FLAVA_ERR_ARG, "unknown option '%s'\n%s", o, forward_usage);
    }
    if (!a->model || !a->inputs || !a->out)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "--model, --inputs and --out are required\n%s",
                           forward_usage);
    if (strcmp(a->precision, "f32") && strcmp(a->precision, "bf16"))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "--precision '%s': expected f32 or bf16",
                           a->precision);
    return FLAVA_OK;
}

/* The output tensors (and gradients under both tied names) to write. */
static flava_status collect(flava_st_tensor **out, int *n, char (**names)[160], flava_model *m,
                            int grads)
{
    static flava_output outs[FLAVA_MAX_OUTPUTS];
    int no = flava_model_outputs(m, outs);
    int ng = 0;
    if (grads)
        for (int i = 0; i < m->table.n; i++)
            ng += m->table.p[i].alias[0] ? 2 : 1;
    flava_st_tensor *t = calloc((size_t)(no + ng), sizeof *t);
    char(*nm)[160] = calloc((size_t)(ng ? ng : 1), sizeof *nm);
    if (!t || !nm) {
        free(t);
        free(nm);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot list the outputs");
    }
    int k = 0;
    for (int i = 0; i < no; i++, k++) {
        t[k].name = outs[i].name;
        t[k].dtype = FLAVA_F32;
        t[k].ndim = outs[i].ndim;
        int64_t numel = 1;
        for (int d = 0; d < outs[i].ndim; d++)
            numel *= t[k].shape[d] = outs[i].shape[d];
        t[k].data = outs[i].data;
        t[k].nbytes = (size_t)numel * sizeof(float);
    }
    int g = 0;
    for (int i = 0; grads && i < m->table.n; i++) {
        const flava_param *p = &m->table.p[i];
        for (int a = 0; a < (p->alias[0] ? 2 : 1); a++, k++, g++) {
            snprintf(nm[g], sizeof nm[g], "grad.%s", a ? p->alias : p->name);
            t[k].name = nm[g];
            t[k].dtype = FLAVA_F32;
            t[k].ndim = p->ndim;
            memcpy(t[k].shape, p->shape, sizeof p->shape);
            t[k].data = m->grads + p->offset;
            t[k].nbytes = p->numel * sizeof(float);
        }
    }
    *out = t;
    *n = k;
    *names = nm;
    return FLAVA_OK;
}

static flava_status compare(const flava_st_tensor *ours, int n, const char *path,
                            const forward_args *a)
{
    flava_st *ref;
    FLAVA_TRY(flava_st_read(&ref, path));
    flava_status st = FLAVA_OK;
    int compared = 0;
    double worst_out = 0, worst_grad = 0;
    for (int i = 0; i < flava_st_count(ref) && st == FLAVA_OK; i++) {
        const flava_st_tensor *r = flava_st_get(ref, i);
        const int is_grad = !strncmp(r->name, "grad.", 5);
        if ((is_grad && !a->grads) || !strncmp(r->name, "codebook_", 9))
            continue;
        const flava_st_tensor *o = NULL;
        for (int k = 0; k < n && !o; k++)
            if (!strcmp(ours[k].name, r->name))
                o = &ours[k];
        int64_t numel = flava_st_numel(r);
        if (!o) {
            st = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: %s is not among our outputs", path, r->name);
            break;
        }
        if ((size_t)numel * sizeof(float) != o->nbytes) {
            st = FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: %s has %lld elements, ours %zu", path,
                             r->name, (long long)numel, o->nbytes / sizeof(float));
            break;
        }
        float *want = malloc((size_t)(numel ? numel : 1) * sizeof *want);
        if (!want) {
            st = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot read %s", r->name);
            break;
        }
        st = flava_st_to_f32(want, r);
        int64_t at = 0;
        double e = st == FLAVA_OK ? flava_rel_error(o->data, want, numel, is_grad ? 1e-4 : 0, &at)
                                  : 0;
        double tol = is_grad ? a->grad_rtol : a->rtol;
        if (st == FLAVA_OK && !(e <= tol))
            st = FLAVA_ERROR(FLAVA_ERR_NUMERIC,
                             "%s: element %lld is %.9g, the reference %.9g (relative error %.3g "
                             "> %.3g)",
                             r->name, (long long)at, (double)((const float *)o->data)[at],
                             (double)want[at], e, tol);
        free(want);
        if (is_grad)
            worst_grad = e > worst_grad ? e : worst_grad;
        else
            worst_out = e > worst_out ? e : worst_out;
        compared++;
    }
    if (st == FLAVA_OK)
        printf("compared %d tensors with %s: worst relative error %.3g (outputs), %.3g "
               "(gradients)\n",
               compared, path, worst_out, worst_grad);
    flava_st_free(ref);
    return st;
}

static flava_status run(const forward_args *a, flava_ctx *ctx, flava_model *m, flava_batch *b)
{
    for (int i = 0; i < a->nsets; i++) {
        char key[128];
        const char *eq = strchr(a->sets[i], '=');
        if (!eq || (size_t)(eq - a->sets[i]) >= sizeof key)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "-s '%s': expected KEY=VALUE", a->sets[i]);
        memcpy(key, a->sets[i], (size_t)(eq - a->sets[i]));
        key[eq - a->sets[i]] = 0;
        FLAVA_TRY(flava_config_set(&m->cfg, key, eq + 1));
    }
    if (a->grads) {
        FLAVA_TRY(flava_model_alloc_grads(m));
        /* the outputs come from the same forward as the gradients */
        FLAVA_TRY(flava_model_forward(ctx, m, b, 1));
        if (m->has_loss)
            FLAVA_TRY(flava_model_backward(ctx, m, b));
        /* training skips passes no loss reads: rerun for every HF output,
         * which leaves the gradients alone */
        FLAVA_TRY(flava_model_forward(ctx, m, b, 0));
    } else {
        FLAVA_TRY(flava_model_forward(ctx, m, b, 0));
    }
    flava_st_tensor *t = NULL;
    char(*names)[160] = NULL;
    int n = 0;
    FLAVA_TRY(collect(&t, &n, &names, m, a->grads));
    flava_status st = flava_st_write(a->out, t, n, NULL, 0);
    if (st == FLAVA_OK)
        printf("wrote %d tensors to %s\n", n, a->out);
    if (st == FLAVA_OK && a->compare)
        st = compare(t, n, a->compare, a);
    free(t);
    free(names);
    return st;
}

flava_status flava_cmd_forward(int argc, char **argv)
{
    if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(forward_usage, stdout);
        return FLAVA_OK;
    }
    forward_args a;
    FLAVA_TRY(parse(&a, argc, argv));
    flava_model *m;
    FLAVA_TRY(flava_checkpoint_load(&m, a.model, NULL, 0, 0));
    flava_ctx *ctx = NULL;
    flava_st *in = NULL;
    flava_batch b = {0};
    flava_status st = flava_ctx_create(
        &ctx, strcmp(a.precision, "bf16") ? FLAVA_PRECISION_F32 : FLAVA_PRECISION_BF16);
    if (st == FLAVA_OK)
        st = flava_st_read(&in, a.inputs);
    if (st == FLAVA_OK)
        st = flava_batch_read(&b, in, &m->cfg);
    if (st == FLAVA_OK)
        st = run(&a, ctx, m, &b);
    flava_batch_free(&b);
    flava_st_free(in);
    flava_ctx_destroy(ctx);
    flava_model_destroy(m);
    return st;
}
