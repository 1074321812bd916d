/* bench_data.c - decode + preprocess throughput (images/s) of PNG and JPEG
 * files to 224-px pixel_values, decoding from memory in OpenMP threads
 * (OMP_NUM_THREADS, 2 by default here).
 *
 *   tests/bench_data [SECONDS] [IMAGE...]   (default: the fixture PNG and JPEG)
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flava.h"

/* Returns images/s of wall-clock time; *cpu_ms gets the CPU time per image
 * summed over the threads, which stays meaningful on a shared machine. */
static double bench_one(const char *path, double seconds, int *w, int *h, double *cpu_ms)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_data: cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *data = malloc((size_t)n);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(data);
        return -1;
    }
    fclose(f);
    flava_image probe;
    if (flava_image_decode(&probe, data, (size_t)n, path) != FLAVA_OK) {
        fprintf(stderr, "bench_data: %s\n", flava_error_message());
        free(data);
        return -1;
    }
    *w = probe.width;
    *h = probe.height;
    flava_image_free(&probe);
    long done = 0;
    int failed = 0;
    clock_t c0 = clock();
    double t0 = omp_get_wtime(), elapsed = 0;
#pragma omp parallel reduction(+ : done) reduction(| : failed)
    {
        float *out = malloc(sizeof(float) * 3 * FLAVA_IMAGE_SIZE * FLAVA_IMAGE_SIZE);
        while (out && !failed && omp_get_wtime() - t0 < seconds) {
            flava_image img;
            if (flava_image_decode(&img, data, (size_t)n, path) != FLAVA_OK ||
                flava_image_preprocess(out, &img, FLAVA_IMAGE_SIZE, 0) != FLAVA_OK)
                failed = 1;
            flava_image_free(&img);
            done++;
        }
        free(out);
    }
    elapsed = omp_get_wtime() - t0;
    *cpu_ms = 1e3 * (double)(clock() - c0) / CLOCKS_PER_SEC / (double)done;
    free(data);
    return failed ? -1 : done / elapsed;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    const char *root = getenv("FLAVA_SRCDIR") ? getenv("FLAVA_SRCDIR") : FLAVA_SRCDIR;
    char png[1024], jpg[1024];
    snprintf(png, sizeof png, "%s/tests/fixtures/image/rgb320x256.png", root);
    snprintf(jpg, sizeof jpg, "%s/tests/fixtures/image/rgb96x80.jpg", root);
    const char *defaults[] = {png, jpg};
    const char **paths = argc > 2 ? (const char **)argv + 2 : defaults;
    int npaths = argc > 2 ? argc - 2 : 2;
    printf("threads %d, %.1f s per image, output [3,%d,%d]\n", omp_get_max_threads(), seconds,
           FLAVA_IMAGE_SIZE, FLAVA_IMAGE_SIZE);
    for (int i = 0; i < npaths; i++) {
        int w = 0, h = 0;
        double cpu_ms = 0, rate = bench_one(paths[i], seconds, &w, &h, &cpu_ms);
        if (rate < 0)
            return 1;
        printf("%-50s %4dx%-4d %8.1f images/s %7.2f CPU ms/image\n", paths[i], w, h, rate,
               cpu_ms);
    }
    return 0;
}
