/* l2norm.c - rows scaled to unit length, as torch.nn.functional.normalize
 * (p = 2, eps = 1e-12): out = x / max(||x||, eps). */
#include "ops.h"

#include <math.h>

static const double L2NORM_EPS = 1e-12;

flava_status l2norm_forward(float *out, float *norm, const float *inp, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++)
            ss += (double)x[c] * x[c];
        double r = sqrt(ss);
        norm[n] = (float)r;
        double inv = 1.0 / (r > L2NORM_EPS ? r : L2NORM_EPS);
        for (int c = 0; c < C; c++)
            y[c] = (float)(x[c] * inv);
    }
    return FLAVA_OK;
}

flava_status l2norm_backward(float *dinp, const float *dout, const float *out,
                             const float *norm, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * C;
        const float *y = out + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        double r = norm[n];
        if (r > L2NORM_EPS) {
            /* d(x/|x|) = (g - y (y·g)) / |x| */
            double yg = 0;
            for (int c = 0; c < C; c++)
                yg += (double)y[c] * g[c];
            for (int c = 0; c < C; c++)
                dx[c] += (float)((g[c] - y[c] * yg) / r);
        } else {
            /* the clamp is active: out = x / eps, a plain scaling */
            for (int c = 0; c < C; c++)
                dx[c] += (float)(g[c] / L2NORM_EPS);
        }
    }
    return FLAVA_OK;
}
