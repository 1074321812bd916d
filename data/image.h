/* image.h - PNG/JPEG decoding to RGB, PNG writing, and the FLAVA image
 * preprocessing: PIL-exact resampling (the separable convolution of Pillow's
 * Resample.c, BICUBIC or LANCZOS), scaling and CLIP normalisation. */
#ifndef FLAVA_DATA_IMAGE_H
#define FLAVA_DATA_IMAGE_H

#include <stdint.h>

#include "status.h"

/* An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC). */
typedef struct flava_image {
    int width, height;
    uint8_t *rgb; /* [height, width, 3], flava_alloc'ed */
} flava_image;

typedef enum flava_resample {
    FLAVA_RESAMPLE_BICUBIC, /* PIL.Image.BICUBIC (a = -0.5, support 2) */
    FLAVA_RESAMPLE_LANCZOS, /* PIL.Image.LANCZOS (support 3) */
} flava_resample;

/* HF FlavaImageProcessor's defaults. */
#define FLAVA_IMAGE_SIZE 224
#define FLAVA_CODEBOOK_SIZE 112
extern const float flava_image_mean[3];
extern const float flava_image_std[3];

/* Decodes a PNG or JPEG (told apart by their signatures); gray, gray+alpha,
 * palette, RGB and RGBA become RGB (alpha is dropped, as PIL's convert does). */
flava_status flava_image_read(flava_image *img, const char *path);
/* Decodes from memory; `name` is used in error messages. */
flava_status flava_image_decode(flava_image *img, const uint8_t *data, size_t n, const char *name);
void flava_image_free(flava_image *img);

/* Writes 8-bit PNG, channels 1 (gray) or 3 (RGB). */
flava_status flava_image_write_png(const char *path, const uint8_t *pixels, int width, int height,
                                   int channels);

/* Resizes interleaved 8-bit pixels exactly as PIL's Image.resize does:
 * horizontal pass then vertical pass, fixed-point coefficients with 22
 * fractional bits, rounding and clipping to uint8 after each pass. */
flava_status flava_image_resize(uint8_t *out, int out_w, int out_h, const uint8_t *in, int in_w,
                                int in_h, int channels, flava_resample filter);

/* pixel_values as HF FlavaImageProcessor makes them: out [3, size, size]
 * float, BICUBIC resize to size x size, x/255, (x - mean)/std. With
 * `crop_shorter` the shorter side is resized to `size` (aspect kept, longer
 * side int(size*long/short)) and the centre size x size is cropped. */
flava_status flava_image_preprocess(float *out, const flava_image *img, int size, int crop_shorter);

/* codebook_pixel_values: out [3, size, size], LANCZOS resize, x/255 mapped to
 * 0.8x + 0.1 (the DALL-E dVAE input range). */
flava_status flava_image_codebook(float *out, const flava_image *img, int size);

#endif
