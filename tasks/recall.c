/* recall.c - recall@K by counting, per query, the candidates that score
 * higher than (or equal to) the best correct one: O(n_img * n_txt). */
#include "recall.h"

#include <stdlib.h>

#include "status.h"

flava_status flava_recall_at_k(double *i2t, double *t2i, const float *sim, const int32_t *txt_image,
                               int n_img, int n_txt, const int *ks, int nk)
{
    if (n_img <= 0 || n_txt <= 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "retrieval needs images and texts (got %d and %d)", n_img, n_txt);
    for (int t = 0; t < n_txt; t++)
        if (txt_image[t] < 0 || txt_image[t] >= n_img)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "text %d names image %d, outside [0, %d)", t,
                               txt_image[t], n_img);
    int *rank_img = calloc((size_t)n_img, sizeof *rank_img); /* rank of best correct text */
    int *rank_txt = calloc((size_t)n_txt, sizeof *rank_txt);
    if (!rank_img || !rank_txt) {
        free(rank_img);
        free(rank_txt);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate retrieval ranks");
    }
#pragma omp parallel for
    for (int i = 0; i < n_img; i++) {
        const float *row = sim + (size_t)i * n_txt;
        int have = 0;
        float best = 0;
        for (int t = 0; t < n_txt; t++)
            if (txt_image[t] == i && (!have || row[t] > best)) {
                best = row[t];
                have = 1;
            }
        int rank = n_txt; /* an image without texts never counts as retrieved */
        if (have) {
            rank = 0;
            for (int t = 0; t < n_txt; t++)
                rank += txt_image[t] != i && row[t] >= best;
        }
        rank_img[i] = rank;
    }
#pragma omp parallel for
    for (int t = 0; t < n_txt; t++) {
        float own = sim[(size_t)txt_image[t] * n_txt + t];
        int rank = 0;
        for (int i = 0; i < n_img; i++)
            rank += i != txt_image[t] && sim[(size_t)i * n_txt + t] >= own;
        rank_txt[t] = rank;
    }
    for (int j = 0; j < nk; j++) {
        int hit_i = 0, hit_t = 0;
        for (int i = 0; i < n_img; i++)
            hit_i += rank_img[i] < ks[j];
        for (int t = 0; t < n_txt; t++)
            hit_t += rank_txt[t] < ks[j];
        i2t[j] = (double)hit_i / n_img;
        t2i[j] = (double)hit_t / n_txt;
    }
    free(rank_img);
    free(rank_txt);
    return FLAVA_OK;
}
