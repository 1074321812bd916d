/* image.c - PNG (libpng) and JPEG (libjpeg) decoding, PNG writing and the
 * PIL-exact resampling behind FLAVA's image preprocessing. */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "tsv.h"

const float flava_image_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float flava_image_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* Images beyond this many pixels are refused rather than risking overflow. */
#define MAX_PIXELS (1L << 28)

void flava_image_free(flava_image *img)
{
    flava_free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

flava_status flava_image_read(flava_image *img, const char *path)
{
    char *data;
    size_t n;
    *img = (flava_image){0};
    FLAVA_TRY(flava_file_read(&data, &n, path));
    flava_status s = flava_image_decode(img, (const uint8_t *)data, n, path);
    flava_free(data);
    return s;
}

/* ---- PNG ---- */

typedef struct png_src {
    const uint8_t *data;
    size_t n, pos;
} png_src;

typedef struct png_err {
    char msg[200];
} png_err;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (e.g. a known-incorrect sRGB profile) do not stop decoding */
}

static void png_read_mem(png_structp png, png_bytep out, png_size_t len)
{
    png_src *src = png_get_io_ptr(png);
    if (len > src->n - src->pos)
        png_error(png, "file is truncated");
    memcpy(out, src->data + src->pos, len);
    src->pos += len;
}

static flava_status decode_png(flava_image *img, const uint8_t *data, size_t n, const char *name)
{
    png_err err = {{0}};
    png_src src = {data, n, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot create the PNG decoder", name);
    }
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        flava_free(pixels);
        free(rows);
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: corrupt PNG: %s", name, err.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int type = png_get_color_type(png, info);
    if (png_get_bit_depth(png, info) == 16)
        png_set_strip_16(png);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_set_expand_gray_1_2_4_to_8(png);
        png_set_gray_to_rgb(png);
    }
    png_set_strip_alpha(png); /* also drops tRNS-derived alpha */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if ((double)w * h > (double)MAX_PIXELS || png_get_rowbytes(png, info) != (size_t)w * 3)
        png_error(png, "unsupported size or pixel layout");
    if (flava_alloc((void **)&pixels, (size_t)w * h * 3, name) != FLAVA_OK)
        png_error(png, "out of memory");
    rows = malloc(sizeof(png_bytep) * h);
    if (!rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = pixels + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    img->rgb = pixels;
    img->width = (int)w;
    img->height = (int)h;
    return FLAVA_OK;
}

/* ---- JPEG ---- */

typedef struct jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* libjpeg pads a truncated stream and only warns; we treat that as an error
 * so a damaged file is never silently decoded into grey blocks. */
static void jpeg_on_warning(j_common_ptr cinfo, int level)
{
    if (level < 0)
        jpeg_on_error(cinfo);
}

static flava_status decode_jpeg(flava_image *img, const uint8_t *data, size_t n, const char *name)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_on_error;
    err.mgr.emit_message = jpeg_on_warning;
    uint8_t *volatile pixels = NULL;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        flava_free(pixels);
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: corrupt JPEG: %s", name, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(err.msg, sizeof err.msg, "CMYK JPEGs are not supported");
        longjmp(err.jump, 1);
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    if ((double)w * h > (double)MAX_PIXELS) {
        snprintf(err.msg, sizeof err.msg, "image of %dx%d pixels is too large", w, h);
        longjmp(err.jump, 1);
    }
    if (flava_alloc((void **)&pixels, (size_t)w * h * 3, name) != FLAVA_OK) {
        snprintf(err.msg, sizeof err.msg, "out of memory");
        longjmp(err.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * w * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    img->rgb = pixels;
    img->width = w;
    img->height = h;
    return FLAVA_OK;
}

flava_status flava_image_decode(flava_image *img, const uint8_t *data, size_t n, const char *name)
{
    img->rgb = NULL;
    img->width = img->height = 0;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && !memcmp(data, png_sig, 8))
        return decode_png(img, data, n, name);
    if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(img, data, n, name);
    return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: not a PNG or JPEG image (expected the PNG "
                       "signature or the JPEG SOI marker FF D8 FF)", name);
}

flava_status flava_image_write_png(const char *path, const uint8_t *pixels, int width, int height,
                                   int channels)
{
    if ((channels != 1 && channels != 3) || width <= 0 || height <= 0)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s: cannot write a %dx%d PNG with %d channels "
                           "(expected 1 or 3)", path, width, height, channels);
    FILE *f = fopen(path, "wb");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    png_err err = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error,
                                              png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        fclose(f);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot create the PNG encoder", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: writing PNG failed: %s", path, err.msg);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, pixels + (size_t)y * width * channels);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: closing failed: %s", path, strerror(errno));
    return FLAVA_OK;
}

/* ---- PIL-exact resampling ---- */

/* Fractional bits of the fixed-point coefficients: 32 bits minus 8 for the
 * pixel value and 2 for the overshoot of filters with negative lobes. */
#define PRECISION_BITS 22

static double bicubic(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double lanczos(double x)
{
    return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0;
}

/* One pass's taps: for each output index its first input index, tap count
 * and `ksize` fixed-point weights. The filter is stretched by the scale when
 * shrinking (an antialiasing low-pass), taps are clipped to the image and
 * renormalised to sum to one. */
typedef struct taps {
    int ksize;
    int *first, *count;
    int32_t *w;
} taps;

static void taps_free(taps *t)
{
    flava_free(t->first);
    flava_free(t->count);
    flava_free(t->w);
}

static flava_status taps_make(taps *t, int in_size, int out_size, flava_resample filter)
{
    memset(t, 0, sizeof *t);
    double (*fn)(double) = filter == FLAVA_RESAMPLE_LANCZOS ? lanczos : bicubic;
    double radius = filter == FLAVA_RESAMPLE_LANCZOS ? 3.0 : 2.0;
    double scale = (double)in_size / out_size;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double support = radius * fscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    double *k = NULL;
    flava_status s = flava_alloc((void **)&t->first, sizeof(int) * out_size, "resample taps");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&t->count, sizeof(int) * out_size, "resample taps");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&t->w, sizeof(int32_t) * out_size * t->ksize, "resample taps");
    if (s == FLAVA_OK)
        s = flava_alloc((void **)&k, sizeof(double) * t->ksize, "resample taps");
    if (s != FLAVA_OK) {
        taps_free(t);
        return s;
    }
    for (int o = 0; o < out_size; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in_size)
            hi = in_size;
        int cnt = hi - lo;
        double sum = 0;
        for (int i = 0; i < cnt; i++) {
            k[i] = fn((i + lo - center + 0.5) / fscale);
            sum += k[i];
        }
        int32_t *w = t->w + (size_t)o * t->ksize;
        for (int i = 0; i < cnt; i++) {
            double v = (sum != 0 ? k[i] / sum : k[i]) * (1 << PRECISION_BITS);
            w[i] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5); /* rounded half away from zero */
        }
        t->first[o] = lo;
        t->count[o] = cnt;
    }
    flava_free(k);
    return FLAVA_OK;
}

static inline uint8_t clip8(int32_t acc)
{
    int32_t v = acc >> PRECISION_BITS; /* arithmetic shift: floor */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One row of the horizontal pass; inlined with `ch` a constant so that the
 * channel loops unroll, `restrict` so that the uint8 stores do not force
 * reloading the taps. */
static inline void row_horizontal(uint8_t *restrict dst, int out_w, const uint8_t *restrict src,
                                  int ch, const taps *t)
{
    const int32_t *restrict weights = t->w;
    const int *restrict first = t->first, *restrict count = t->count;
    for (int x = 0; x < out_w; x++) {
        const int32_t *restrict w = weights + (size_t)x * t->ksize;
        const uint8_t *restrict p = src + (size_t)first[x] * ch;
        int n = count[x];
        int32_t acc[4] = {0, 0, 0, 0};
        for (int i = 0; i < n; i++)
            for (int c = 0; c < ch; c++)
                acc[c] += p[i * ch + c] * w[i];
        for (int c = 0; c < ch; c++)
            dst[x * ch + c] = clip8(acc[c] + (1 << (PRECISION_BITS - 1)));
    }
}

/* `rows` rows of `in` (in_w pixels of ch <= 4 channels) to out_w pixels. */
static void pass_horizontal(uint8_t *out, int out_w, const uint8_t *in, int in_w, int rows,
                            int ch, const taps *t)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *src = in + (size_t)y * in_w * ch;
        uint8_t *dst = out + (size_t)y * out_w * ch;
        if (ch == 3)
            row_horizontal(dst, out_w, src, 3, t);
        else if (ch == 1)
            row_horizontal(dst, out_w, src, 1, t);
        else
            row_horizontal(dst, out_w, src, ch, t);
    }
}

/* Output row y accumulates whole input rows (acc holds one row of sums), so
 * the inner loop runs along memory and vectorises. */
static void pass_vertical(uint8_t *out, int out_h, const uint8_t *in, int w_px, int row0, int ch,
                          const taps *t, int32_t *acc)
{
    size_t stride = (size_t)w_px * ch;
    for (int y = 0; y < out_h; y++) {
        const int32_t *w = t->w + (size_t)y * t->ksize;
        const uint8_t *src = in + (size_t)(t->first[y] - row0) * stride;
        for (size_t x = 0; x < stride; x++)
            acc[x] = 1 << (PRECISION_BITS - 1);
        for (int i = 0; i < t->count[y]; i++) {
            const uint8_t *row = src + i * stride;
            int32_t wi = w[i];
            for (size_t x = 0; x < stride; x++)
                acc[x] += row[x] * wi;
        }
        uint8_t *dst = out + (size_t)y * stride;
        for (size_t x = 0; x < stride; x++)
            dst[x] = clip8(acc[x]);
    }
}

flava_status flava_image_resize(uint8_t *out, int out_w, int out_h, const uint8_t *in, int in_w,
                                int in_h, int channels, flava_resample filter)
{
    if (out_w <= 0 || out_h <= 0 || in_w <= 0 || in_h <= 0 || channels <= 0 || channels > 4)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "cannot resize %dx%d to %dx%d with %d channels "
                           "(expected positive sizes and 1 to 4 channels)", in_w, in_h, out_w,
                           out_h, channels);
    size_t row = (size_t)in_w * channels;
    if (out_w == in_w && out_h == in_h) {
        memcpy(out, in, row * in_h);
        return FLAVA_OK;
    }
    taps th = {0}, tv = {0};
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    flava_status s = FLAVA_OK;
    if (out_h != in_h)
        s = taps_make(&tv, in_h, out_h, filter);
    if (s == FLAVA_OK && out_h != in_h)
        s = flava_alloc((void **)&acc, sizeof(int32_t) * out_w * channels, "resize row sums");
    /* Like PIL, the horizontal pass only runs over the rows the vertical
     * pass will read (all of them when there is no vertical pass). */
    int row0 = 0, rows = in_h;
    if (s == FLAVA_OK && out_h != in_h) {
        row0 = tv.first[0];
        rows = tv.first[out_h - 1] + tv.count[out_h - 1] - row0;
    }
    if (s == FLAVA_OK && out_w != in_w) {
        s = taps_make(&th, in_w, out_w, filter);
        if (s == FLAVA_OK && out_h != in_h)
            s = flava_alloc((void **)&tmp, (size_t)out_w * channels * rows, "resize buffer");
        if (s == FLAVA_OK)
            pass_horizontal(tmp ? tmp : out, out_w, in + row0 * row, in_w, rows, channels, &th);
    }
    if (s == FLAVA_OK && out_h != in_h) {
        if (tmp)
            pass_vertical(out, out_h, tmp, out_w, row0, channels, &tv, acc);
        else
            pass_vertical(out, out_h, in, in_w, 0, channels, &tv, acc);
    }
    flava_free(acc);
    flava_free(tmp);
    taps_free(&th);
    taps_free(&tv);
    return s;
}

/* Writes [3, size, size] floats: ((pixel/255) * mul + add - mean) / std from
 * the size x size window at (left, top) of an RGB image of width w. */
static void to_chw(float *out, const uint8_t *rgb, int w, int left, int top, int size,
                   const float mean[3], const float std[3], float mul, float add)
{
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * size * size;
        for (int y = 0; y < size; y++) {
            const uint8_t *p = rgb + ((size_t)(top + y) * w + left) * 3 + c;
            for (int x = 0; x < size; x++)
                o[y * size + x] = ((p[x * 3] / 255.0f) * mul + add - mean[c]) / std[c];
        }
    }
}

flava_status flava_image_preprocess(float *out, const flava_image *img, int size, int crop_shorter)
{
    if (size <= 0 || !img->rgb)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "preprocess: no image or output size %d", size);
    int w = size, h = size;
    if (crop_shorter) {
        /* integer arithmetic as HF's get_resize_output_image_size: int(size * long / short) */
        if (img->width <= img->height)
            h = (int)((double)size * img->height / img->width);
        else
            w = (int)((double)size * img->width / img->height);
    }
    uint8_t *resized;
    FLAVA_TRY(flava_alloc((void **)&resized, (size_t)w * h * 3, "resized image"));
    flava_status s = flava_image_resize(resized, w, h, img->rgb, img->width, img->height, 3,
                                        FLAVA_RESAMPLE_BICUBIC);
    if (s == FLAVA_OK)
        to_chw(out, resized, w, (w - size) / 2, (h - size) / 2, size, flava_image_mean,
               flava_image_std, 1.0f, 0.0f);
    flava_free(resized);
    return s;
}

flava_status flava_image_codebook(float *out, const flava_image *img, int size)
{
    if (size <= 0 || !img->rgb)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "codebook preprocess: no image or output size %d", size);
    uint8_t *resized;
    FLAVA_TRY(flava_alloc((void **)&resized, (size_t)size * size * 3, "resized image"));
    flava_status s = flava_image_resize(resized, size, size, img->rgb, img->width, img->height, 3,
                                        FLAVA_RESAMPLE_LANCZOS);
    static const float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
    if (s == FLAVA_OK)
        to_chw(out, resized, size, 0, 0, size, zero, one, 0.8f, 0.1f);
    flava_free(resized);
    return s;
}
