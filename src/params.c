/* params.c - the parameter table. */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

void flava_params_init(flava_param_table *t) { memset(t, 0, sizeof *t); }

void flava_params_free(flava_param_table *t)
{
    free(t->p);
    flava_params_init(t);
}

const flava_param *flava_params_find(const flava_param_table *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->p[i].name, name) || (t->p[i].alias[0] && !strcmp(t->p[i].alias, name)))
            return &t->p[i];
    return NULL;
}

flava_status flava_params_add(flava_param_table *t, size_t *offset, const char *name, int no_decay,
                              int ndim, const int64_t *shape)
{
    if (strlen(name) >= FLAVA_PARAM_NAME_MAX)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "parameter name '%s' is longer than %d bytes", name,
                           FLAVA_PARAM_NAME_MAX - 1);
    if (ndim < 0 || ndim > FLAVA_PARAM_MAX_DIMS)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "parameter '%s': %d dimensions (at most %d)", name,
                           ndim, FLAVA_PARAM_MAX_DIMS);
    if (flava_params_find(t, name))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "parameter '%s' declared twice", name);
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        flava_param *p = realloc(t->p, (size_t)cap * sizeof *p);
        if (!p)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot grow the parameter table to %d", cap);
        t->p = p;
        t->cap = cap;
    }
    flava_param *e = &t->p[t->n];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    e->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "parameter '%s': dimension %d is %lld", name, d,
                               (long long)shape[d]);
        e->shape[d] = shape[d];
        e->numel *= (size_t)shape[d];
    }
    e->offset = t->total;
    e->no_decay = no_decay;
    t->total += e->numel;
    t->n++;
    *offset = e->offset;
    return FLAVA_OK;
}

flava_status flava_params_add1(flava_param_table *t, size_t *offset, const char *name,
                               int no_decay, int64_t d0)
{
    return flava_params_add(t, offset, name, no_decay, 1, &d0);
}

flava_status flava_params_add2(flava_param_table *t, size_t *offset, const char *name,
                               int no_decay, int64_t d0, int64_t d1)
{
    int64_t s[2] = {d0, d1};
    return flava_params_add(t, offset, name, no_decay, 2, s);
}

flava_status flava_params_alias(flava_param_table *t, size_t offset, const char *alias)
{
    if (flava_params_find(t, alias))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "parameter alias '%s' is already a name", alias);
    for (int i = 0; i < t->n; i++) {
        if (t->p[i].offset == offset && t->p[i].numel) {
            snprintf(t->p[i].alias, sizeof t->p[i].alias, "%s", alias);
            return FLAVA_OK;
        }
    }
    return FLAVA_ERROR(FLAVA_ERR_ARG, "no parameter at offset %zu to alias as '%s'", offset,
                       alias);
}

void flava_params_fill_normal(float *x, size_t n, double std, uint64_t seed, uint64_t stream)
{
    const size_t chunk = (size_t)1 << 16, nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic)
    for (size_t ch = 0; ch < nchunks; ch++) {
        flava_rng r;
        flava_rng_init(&r, seed, (stream << 32) | ch);
        const size_t end = (ch + 1) * chunk < n ? (ch + 1) * chunk : n;
        for (size_t k = ch * chunk; k < end; k++)
            x[k] = (float)(std * flava_rng_normal(&r));
    }
}
