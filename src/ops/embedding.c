/* embedding.c - table lookups and their deterministic scatter-add. */
#include "ops.h"

#include <string.h>

/* Columns per task in the backward: each task owns a column strip, so every
 * element of dtable sums its rows in position order whatever the thread
 * count (bitwise reproducible, no atomics). */
enum { EMB_COLS_PER_TASK = 64 };

flava_status embedding_forward(float *out, const int32_t *ids, const float *table,
                               int N, int C, int V)
{
    for (int n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V)
            return FLAVA_ERROR(FLAVA_ERR_ARG,
                               "embedding: id %d at position %d is outside the table [0, %d)",
                               ids[n], n, V);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, (size_t)C * sizeof *out);
    return FLAVA_OK;
}

flava_status embedding_backward(float *dtable, const float *dout, const int32_t *ids,
                                int N, int C)
{
    /* The table size is not known here; forward has checked the upper bound. */
    for (int n = 0; n < N; n++)
        if (ids[n] < 0)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "embedding backward: id %d at position %d is negative",
                               ids[n], n);
    int ntasks = (C + EMB_COLS_PER_TASK - 1) / EMB_COLS_PER_TASK;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntasks; t++) {
        int c0 = t * EMB_COLS_PER_TASK;
        int c1 = c0 + EMB_COLS_PER_TASK < C ? c0 + EMB_COLS_PER_TASK : C;
        for (int n = 0; n < N; n++) {
            float *row = dtable + (size_t)ids[n] * C;
            const float *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++)
                row[c] += g[c];
        }
    }
    return FLAVA_OK;
}
