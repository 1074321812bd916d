/* kmeans.h - a k-means patch codebook: MIM targets when no dVAE weights
 * (image_codebook) are given. K centroids are fit on patches of training
 * images; a patch's label is the id of its nearest centroid.
 *
 * A patch is the C x p x p block of an NCHW image under the same grid as
 * the ViT's patch embedding, flattened in (c, y, x) order and normalised to
 * zero mean and unit variance over its own values, so that the codes
 * describe shape and texture rather than brightness.
 *
 * Everything is deterministic for a seed, whatever the thread count: the
 * k-means++ draws come from one RNG stream, distances are GEMM-shaped
 * (||x||^2 - 2 x.c + ||c||^2 through linear_forward) but every centroid
 * that could be the nearest within that product's rounding bound is
 * re-scored exactly in double, and the centroid means are summed in a
 * fixed order. Saved as safetensors, tensor `kmeans_codebook.centroids`
 * of shape [K, C, p, p]. */
#ifndef FLAVA_KMEANS_H
#define FLAVA_KMEANS_H

#include <stdint.h>

#include "ctx.h"
#include "status.h"

#define FLAVA_KMEANS_TENSOR "kmeans_codebook.centroids"

typedef struct flava_kmeans flava_kmeans;

/* Rows out[N * (H/p) * (W/p), C*p*p]: the normalised patches of
 * images[N,C,H,W], image by image, patches row-major over the grid. H and
 * W must be multiples of p. */
flava_status flava_kmeans_patches(float *out, const float *images, int N, int C, int H, int W,
                                  int patch);

/* Fits K centroids on patches[M, C*p*p] (rows from flava_kmeans_patches):
 * k-means++ seeding from `seed`, then up to `iters` Lloyd iterations
 * (fewer once no label changes). A centroid that loses all its points
 * keeps its place. Needs M >= K. */
flava_status flava_kmeans_fit(flava_ctx *ctx, flava_kmeans **out, const float *patches,
                              int64_t M, int C, int patch, int K, int iters, uint64_t seed);

/* ids[M] = index of the centroid nearest (squared Euclidean) to each row
 * of patches[M, C*p*p]; the lowest index on exact ties. */
flava_status flava_kmeans_nearest(flava_ctx *ctx, flava_kmeans *km, int32_t *ids,
                                  const float *patches, int64_t M);

/* MIM labels ids[B, (H/p)*(W/p)] for images[B,C,H,W]; the patch buffer is
 * sized on the first call with a batch shape and reused. */
flava_status flava_kmeans_assign(flava_ctx *ctx, flava_kmeans *km, int32_t *ids,
                                 const float *images, int B, int H, int W);

/* The centroids [K, C*p*p] and their shape. */
const float *flava_kmeans_centroids(const flava_kmeans *km, int *K, int *C, int *patch);

flava_status flava_kmeans_save(const flava_kmeans *km, const char *path);
flava_status flava_kmeans_load(flava_kmeans **out, const char *path);
void flava_kmeans_destroy(flava_kmeans *km);

#endif
