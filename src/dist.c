/* dist.c - the ranks of a data-parallel run, over MPI. */
#include "dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

static int joined, world_rank, world_size = 1;

static int launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

flava_status flava_dist_init(int *argc, char ***argv)
{
    if (!launched())
        return FLAVA_OK;
    int provided;
    /* the loader's producer thread and OpenMP never call MPI */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return FLAVA_ERROR(FLAVA_ERR_IO, "MPI_Init_thread failed: cannot join the ranks");
    joined = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    return FLAVA_OK;
}

void flava_dist_finalize(void)
{
    if (joined)
        MPI_Finalize();
    joined = 0;
}

void flava_dist_abort(int code)
{
    if (joined && world_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
}

int flava_dist_rank(void) { return world_rank; }
int flava_dist_size(void) { return world_size; }

/* In pieces of at most INT_MAX elements: MPI counts are ints. */
static flava_status sum(void *x, int64_t n, MPI_Datatype type, size_t elem, const char *what)
{
    if (world_size == 1)
        return FLAVA_OK;
    for (int64_t at = 0; at < n; at += INT_MAX) {
        const int count = (int)(n - at < INT_MAX ? n - at : INT_MAX);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)x + (size_t)at * elem, count, type, MPI_SUM,
                          MPI_COMM_WORLD) != MPI_SUCCESS)
            return FLAVA_ERROR(FLAVA_ERR_IO, "MPI_Allreduce of %lld %s failed on rank %d of %d",
                               (long long)n, what, world_rank, world_size);
    }
    return FLAVA_OK;
}

flava_status flava_dist_sum_f32(float *x, int64_t n)
{
    return sum(x, n, MPI_FLOAT, sizeof *x, "floats");
}

flava_status flava_dist_sum_f64(double *x, int64_t n)
{
    return sum(x, n, MPI_DOUBLE, sizeof *x, "doubles");
}

flava_status flava_dist_gather(void *all, const void *mine, int64_t bytes)
{
    if (world_size == 1) {
        if (all != mine)
            memmove(all, mine, (size_t)bytes);
        return FLAVA_OK;
    }
    if (bytes > INT_MAX || MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE,
                                         MPI_COMM_WORLD) != MPI_SUCCESS)
        return FLAVA_ERROR(FLAVA_ERR_IO, "MPI_Allgather of %lld bytes failed on rank %d of %d",
                           (long long)bytes, world_rank, world_size);
    return FLAVA_OK;
}

flava_status flava_dist_gather_rows(float *all, const float *mine, int B, int D)
{
    return flava_dist_gather(all, mine, (int64_t)B * D * (int64_t)sizeof *mine);
}

void flava_dist_own_rows(float *mine, const float *all, int B, int D)
{
    const size_t n = (size_t)B * D;
    const float *own = all + (size_t)world_rank * n;
    for (size_t k = 0; k < n; k++)
        mine[k] = (float)world_size * own[k];
}

flava_status flava_dist_any(int *any, int flag)
{
    *any = flag != 0;
    if (world_size == 1)
        return FLAVA_OK;
    if (MPI_Allreduce(MPI_IN_PLACE, any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD) != MPI_SUCCESS)
        return FLAVA_ERROR(FLAVA_ERR_IO, "MPI_Allreduce of a flag failed on rank %d of %d",
                           world_rank, world_size);
    return FLAVA_OK;
}
