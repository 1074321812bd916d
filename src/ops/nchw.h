/* nchw.h - the size check shared by the NCHW ops of the model families
 * (batch norm, global average pooling, channel scale). */
#ifndef FLAVA_OPS_NCHW_H
#define FLAVA_OPS_NCHW_H

#include "status.h"

static inline flava_status flava_check_nchw(const char *op, int N, int C, int H, int W)
{
    if (N < 1 || C < 1 || H < 1 || W < 1)
        return FLAVA_ERROR(FLAVA_ERR_SHAPE, "%s: N=%d C=%d H=%d W=%d, expected sizes >= 1", op,
                           N, C, H, W);
    return FLAVA_OK;
}

#endif
