/* dist.h - data-parallel training over MPI ranks (DESIGN.md: MPI carries
 * a run past one machine), as PyTorch's DistributedDataParallel does it:
 * every rank holds the whole model, trains on its own share of each step's
 * batches, and the ranks sum their gradients before the one optimizer
 * step they all take, so their weights stay the same.
 *
 * A process started by mpirun (or mpiexec, srun: a launcher that sets
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK) joins the world of ranks;
 * any other process is the only rank and never touches MPI. Rank 0 alone
 * writes the run directory (log, metrics, checkpoints, results) and runs
 * the evaluations. */
#ifndef FLAVA_DIST_H
#define FLAVA_DIST_H

#include <stdint.h>

#include "status.h"

/* Joins the ranks if a launcher started this process (call once, first). */
flava_status flava_dist_init(int *argc, char ***argv);
/* Leaves them (after the last collective call). */
void flava_dist_finalize(void);
/* Ends every rank after an error on this one: the others would otherwise
 * wait for it forever in the next collective call. */
void flava_dist_abort(int code);

int flava_dist_rank(void); /* 0 .. size - 1 */
int flava_dist_size(void); /* 1 without a launcher */

/* x[n] becomes the sum over the ranks of x[n], on every rank. */
flava_status flava_dist_sum_f32(float *x, int64_t n);
flava_status flava_dist_sum_f64(double *x, int64_t n);
/* all[] = every rank's `bytes` bytes of mine[], in rank order (size *
 * bytes in all). */
flava_status flava_dist_gather(void *all, const void *mine, int64_t bytes);

/* A contrastive loss over the batch of every rank (OpenCLIP's gather with
 * gradient): each rank gathers the B rows [B, D] of every rank's
 * embeddings into [size * B, D], computes the whole batch's loss and its
 * gradient for all rows, and backpropagates through its own towers its
 * own rows' gradient times size (the mean of the ranks' gradients is then
 * the whole batch's). */
flava_status flava_dist_gather_rows(float *all, const float *mine, int B, int D);
void flava_dist_own_rows(float *mine, const float *all, int B, int D);
/* Whether any rank passes a non-zero flag. */
flava_status flava_dist_any(int *any, int flag);

#endif
