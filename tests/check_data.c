/* check_data.c - the data readers: IDX, images (against PIL), image-text
 * TSV, GLUE and its metrics (against scikit-learn/scipy), VQAv2 (accuracy
 * per answer type and the prior baseline against a Python re-implementation
 * of the official evaluation), and the scene generator read back through
 * those readers, and the batch loader.
 * Malformed inputs of every reader must fail with a message naming the file
 * and what was expected. */
#include "testutil.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "tsv.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char tmp[256];

static void make_tmp(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/check_data.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void remove_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* tmp/name, written with `len` bytes of data (len < 0: strlen). */
static const char *write_tmp(const char *name, const void *data, long len)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 512, "%s/%s", tmp, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    size_t n = len < 0 ? strlen(data) : (size_t)len;
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return p;
}

/* The call must fail with `status` and a message containing each string. */
static void expect_error(flava_status got, flava_status want, int nparts, ...)
{
    const char *msg = flava_error_message();
    ck_assert_msg(got == want, "status %s, expected %s (message: %s)", flava_status_name(got),
                  flava_status_name(want), msg);
    va_list ap;
    va_start(ap, nparts);
    for (int i = 0; i < nparts; i++) {
        const char *part = va_arg(ap, const char *);
        ck_assert_msg(strstr(msg, part), "message '%s' lacks '%s'", msg, part);
    }
    va_end(ap);
}

/* ---------------------------------------------------------------- IDX */

START_TEST(test_idx_fashion_mnist_test_split)
{
    flava_idx_set s;
    ck_assert_int_eq(flava_idx_load(&s, FMNIST "/t10k-images-idx3-ubyte.gz",
                                    FMNIST "/t10k-labels-idx1-ubyte.gz"), FLAVA_OK);
    ck_assert_int_eq(s.n, 10000);
    ck_assert_int_eq(s.rows, 28);
    ck_assert_int_eq(s.cols, 28);
    /* numpy on the same files: first labels, per-class counts, pixel sums */
    int first[5] = {9, 2, 1, 1, 6}, counts[10] = {0};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(s.labels[i], first[i]);
    for (long i = 0; i < s.n; i++)
        counts[s.labels[i]]++;
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(counts[c], 1000);
    long long sum0 = 0, sum_last = 0, total = 0;
    for (int i = 0; i < 784; i++) {
        sum0 += s.images[i];
        sum_last += s.images[9999L * 784 + i];
    }
    for (long i = 0; i < s.n * 784; i++)
        total += s.images[i];
    ck_assert_int_eq(sum0, 33456);
    ck_assert_int_eq(sum_last, 24390);
    ck_assert_int_eq(total, 573469082LL);
    flava_idx_set_free(&s);
}
END_TEST

/* An IDX header + body written plain (gz = 0) or gzip (gz = 1). */
static const char *write_idx(const char *name, int dtype, int ndim, const int *dims, long body,
                             long extra, int gz)
{
    unsigned char buf[4096] = {0};
    long n = 0;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = (unsigned char)dtype;
    buf[n++] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) {
        buf[n++] = (unsigned char)(dims[d] >> 24);
        buf[n++] = (unsigned char)(dims[d] >> 16);
        buf[n++] = (unsigned char)(dims[d] >> 8);
        buf[n++] = (unsigned char)dims[d];
    }
    for (long i = 0; i < body + extra; i++)
        buf[n++] = (unsigned char)(i % 10);
    if (!gz)
        return write_tmp(name, buf, n);
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, buf, (unsigned)n), n);
    gzclose(f);
    return path;
}

START_TEST(test_idx_plain_and_gzip_agree)
{
    make_tmp();
    int dims[3] = {3, 4, 5};
    flava_idx a, b;
    ck_assert_int_eq(flava_idx_read(&a, write_idx("p.idx", 8, 3, dims, 60, 0, 0), 3), FLAVA_OK);
    ck_assert_int_eq(flava_idx_read(&b, write_idx("g.idx.gz", 8, 3, dims, 60, 0, 1), 3), FLAVA_OK);
    ck_assert_int_eq(a.dims[0], 3);
    ck_assert_int_eq(a.dims[2], 5);
    ck_assert_mem_eq(a.data, b.data, 60);
    ck_assert_int_eq(a.data[59], 9);
    flava_idx_free(&a);
    flava_idx_free(&b);
    remove_tmp();
}
END_TEST

START_TEST(test_idx_malformed)
{
    make_tmp();
    flava_idx a;
    flava_idx_set s;
    int d3[3] = {2, 2, 2}, d1[1] = {2}, d1b[1] = {3};
    const char *p = write_idx("bad_dtype", 0x0D, 3, d3, 8, 0, 0);
    expect_error(flava_idx_read(&a, p, 3), FLAVA_ERR_FORMAT, 3, "bad_dtype", "0x0d", "0x08");
    p = write_idx("labels_as_images", 8, 1, d1, 2, 0, 0);
    expect_error(flava_idx_read(&a, p, 3), FLAVA_ERR_FORMAT, 3, "labels_as_images",
                 "1 dimensions", "expected 3");
    p = write_idx("truncated.gz", 8, 3, d3, 5, 0, 1);
    expect_error(flava_idx_read(&a, p, 3), FLAVA_ERR_FORMAT, 3, "truncated.gz", "needs 8 bytes",
                 "ends after 5");
    p = write_idx("trailing", 8, 3, d3, 8, 3, 0);
    expect_error(flava_idx_read(&a, p, 3), FLAVA_ERR_FORMAT, 2, "trailing", "trailing bytes");
    p = write_tmp("magic", "\x01\x02\x08\x03", 4);
    expect_error(flava_idx_read(&a, p, 3), FLAVA_ERR_FORMAT, 2, "magic", "bad magic");
    p = write_tmp("empty", "", 0);
    expect_error(flava_idx_read(&a, p, 1), FLAVA_ERR_FORMAT, 2, "empty", "magic number");
    expect_error(flava_idx_read(&a, "/nonexistent/x.gz", 1), FLAVA_ERR_IO, 1, "/nonexistent/x.gz");
    /* a gzip stream cut in the middle */
    const char *g = write_idx("whole.gz", 8, 3, (int[3]){10, 20, 20}, 4000, 0, 1);
    FILE *f = fopen(g, "rb");
    unsigned char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    p = write_tmp("cut.gz", buf, (long)n / 2);
    ck_assert_int_ne(flava_idx_read(&a, p, 3), FLAVA_OK);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "cut.gz"));
    /* images and labels that do not belong together */
    char im[512];
    snprintf(im, sizeof im, "%s", write_idx("im", 8, 3, d3, 8, 0, 0));
    p = write_idx("lb3", 8, 1, d1b, 3, 0, 0);
    expect_error(flava_idx_load(&s, im, p), FLAVA_ERR_FORMAT, 3, "2 images", "3 labels", "lb3");
    unsigned char labels[] = {0, 0, 8, 1, 0, 0, 0, 2, 4, 12};
    p = write_tmp("lb_range", labels, sizeof labels);
    expect_error(flava_idx_load(&s, im, p), FLAVA_ERR_FORMAT, 3, "lb_range", "record 1",
                 "label 12");
    remove_tmp();
}
END_TEST

/* ---------------------------------------------------------------- images */

static void read_fixture(flava_image *img, const char *name)
{
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/fixtures/image/%s", name);
    ck_assert_msg(flava_image_read(img, test_path(path, sizeof path, rel)) == FLAVA_OK, "%s",
                  flava_error_message());
}

/* Counts differing bytes; the test wants none. */
static void expect_same_pixels(const uint8_t *got, const flava_image *want, const char *what)
{
    long n = (long)want->width * want->height * 3, diff = 0, worst = 0, at = 0;
    for (long i = 0; i < n; i++) {
        long d = labs((long)got[i] - want->rgb[i]);
        diff += d != 0;
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    ck_assert_msg(diff == 0, "%s: %ld of %ld bytes differ from PIL, worst by %ld at %ld", what,
                  diff, n, worst, at);
}

START_TEST(test_image_decode_matches_pil)
{
    static const char *pairs[][2] = {
        {"rgb96x80.jpg", "jpeg_decoded.png"},
        {"palette40x30.png", "palette_rgb.png"},
        {"rgba40x30.png", "rgba_rgb.png"},
    };
    for (int k = 0; k < 3; k++) {
        flava_image src, ref;
        read_fixture(&src, pairs[k][0]);
        read_fixture(&ref, pairs[k][1]);
        ck_assert_int_eq(src.width, ref.width);
        ck_assert_int_eq(src.height, ref.height);
        expect_same_pixels(src.rgb, &ref, pairs[k][0]);
        flava_image_free(&src);
        flava_image_free(&ref);
    }
    flava_image gray;
    read_fixture(&gray, "gray28.png");
    ck_assert_int_eq(gray.width, 28);
    long spread = 0;
    for (int i = 0; i < 28 * 28; i++) {
        ck_assert_int_eq(gray.rgb[3 * i], gray.rgb[3 * i + 1]);
        ck_assert_int_eq(gray.rgb[3 * i], gray.rgb[3 * i + 2]);
        spread += gray.rgb[3 * i] != gray.rgb[0];
    }
    ck_assert_int_gt(spread, 100); /* a real item, not a blank */
    flava_image_free(&gray);
}
END_TEST

START_TEST(test_image_resize_matches_pil)
{
    static const struct {
        const char *src, *ref;
        int size;
        flava_resample filter;
    } cases[] = {
        {"gray28.png", "gray28_bicubic224.png", 224, FLAVA_RESAMPLE_BICUBIC},      /* upsample */
        {"rgb320x256.png", "rgb_bicubic224.png", 224, FLAVA_RESAMPLE_BICUBIC},     /* down + up */
        {"rgb96x80.jpg", "jpeg_bicubic224.png", 224, FLAVA_RESAMPLE_BICUBIC},
        {"rgb320x256.png", "rgb_lanczos112.png", 112, FLAVA_RESAMPLE_LANCZOS},     /* downsample */
        {"gray28.png", "gray28_lanczos112.png", 112, FLAVA_RESAMPLE_LANCZOS},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        flava_image src, ref;
        read_fixture(&src, cases[k].src);
        read_fixture(&ref, cases[k].ref);
        int n = cases[k].size;
        uint8_t *out = malloc((size_t)n * n * 3);
        ck_assert_int_eq(flava_image_resize(out, n, n, src.rgb, src.width, src.height, 3,
                                            cases[k].filter), FLAVA_OK);
        expect_same_pixels(out, &ref, cases[k].ref);
        free(out);
        flava_image_free(&src);
        flava_image_free(&ref);
    }
}
END_TEST

/* HF's rescale + normalize of PIL's uint8 result, in double. */
static void normalise_ref(double *ref, const flava_image *pil, int codebook)
{
    int n = pil->width * pil->height;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < n; i++) {
            double x = pil->rgb[3 * i + c] / 255.0;
            ref[c * n + i] = codebook ? 0.8 * x + 0.1
                                      : (x - flava_image_mean[c]) / flava_image_std[c];
        }
}

START_TEST(test_image_preprocess_matches_hf)
{
    static const struct {
        const char *src, *ref;
        int crop, codebook;
    } cases[] = {
        {"gray28.png", "gray28_bicubic224.png", 0, 0},
        {"rgb320x256.png", "rgb_bicubic224.png", 0, 0},
        {"rgb320x256.png", "rgb_crop224.png", 1, 0},
        {"rgb96x80.jpg", "jpeg_bicubic224.png", 0, 0},
        {"rgb320x256.png", "rgb_lanczos112.png", 0, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        flava_image src, pil;
        read_fixture(&src, cases[k].src);
        read_fixture(&pil, cases[k].ref);
        int n = pil.width;
        float *out = malloc(sizeof(float) * 3 * n * n);
        double *ref = malloc(sizeof(double) * 3 * n * n);
        if (cases[k].codebook)
            ck_assert_int_eq(flava_image_codebook(out, &src, n), FLAVA_OK);
        else
            ck_assert_int_eq(flava_image_preprocess(out, &src, n, cases[k].crop), FLAVA_OK);
        normalise_ref(ref, &pil, cases[k].codebook);
        ck_assert_close(out, ref, 3L * n * n, 0.0, 1e-2, cases[k].ref);
        ck_assert_close(out, ref, 3L * n * n, 0.0, 1e-5, cases[k].ref); /* exact uint8 match */
        free(out);
        free(ref);
        flava_image_free(&src);
        flava_image_free(&pil);
    }
}
END_TEST

START_TEST(test_image_png_round_trip)
{
    make_tmp();
    uint8_t px[7 * 5 * 3];
    for (int i = 0; i < 7 * 5 * 3; i++)
        px[i] = (uint8_t)(i * 37);
    char path[512];
    snprintf(path, sizeof path, "%s/rgb.png", tmp);
    ck_assert_int_eq(flava_image_write_png(path, px, 7, 5, 3), FLAVA_OK);
    flava_image img;
    ck_assert_int_eq(flava_image_read(&img, path), FLAVA_OK);
    ck_assert_int_eq(img.width, 7);
    ck_assert_int_eq(img.height, 5);
    ck_assert_mem_eq(img.rgb, px, sizeof px);
    flava_image_free(&img);
    snprintf(path, sizeof path, "%s/gray.png", tmp);
    ck_assert_int_eq(flava_image_write_png(path, px, 5, 7, 1), FLAVA_OK);
    ck_assert_int_eq(flava_image_read(&img, path), FLAVA_OK);
    for (int i = 0; i < 35; i++)
        ck_assert_int_eq(img.rgb[3 * i + 1], px[i]);
    flava_image_free(&img);
    expect_error(flava_image_write_png(path, px, 5, 7, 2), FLAVA_ERR_ARG, 2, "gray.png",
                 "expected 1 or 3");
    remove_tmp();
}
END_TEST

static long file_bytes(const char *rel, unsigned char *buf, long cap)
{
    char path[1024];
    FILE *f = fopen(test_path(path, sizeof path, rel), "rb");
    ck_assert_ptr_nonnull(f);
    long n = (long)fread(buf, 1, (size_t)cap, f);
    fclose(f);
    return n;
}

START_TEST(test_image_malformed)
{
    make_tmp();
    static unsigned char buf[300000];
    flava_image img;
    long n = file_bytes("tests/fixtures/image/rgb320x256.png", buf, sizeof buf);
    const char *p = write_tmp("half.png", buf, n / 2);
    expect_error(flava_image_read(&img, p), FLAVA_ERR_FORMAT, 2, "half.png", "corrupt PNG");
    ck_assert_ptr_null(img.rgb);
    memcpy(buf + 40, "garbage!", 8); /* inside the IHDR chunk: CRC fails */
    p = write_tmp("crc.png", buf, n);
    expect_error(flava_image_read(&img, p), FLAVA_ERR_FORMAT, 2, "crc.png", "corrupt PNG");
    n = file_bytes("tests/fixtures/image/rgb96x80.jpg", buf, sizeof buf);
    p = write_tmp("half.jpg", buf, n / 2);
    expect_error(flava_image_read(&img, p), FLAVA_ERR_FORMAT, 2, "half.jpg", "corrupt JPEG");
    p = write_tmp("header.jpg", buf, 200);
    expect_error(flava_image_read(&img, p), FLAVA_ERR_FORMAT, 2, "header.jpg", "corrupt JPEG");
    p = write_tmp("text.png", "hello, not an image\n", -1);
    expect_error(flava_image_read(&img, p), FLAVA_ERR_FORMAT, 2, "text.png", "not a PNG or JPEG");
    p = write_tmp("empty.jpg", "", 0);
    expect_error(flava_image_read(&img, p), FLAVA_ERR_FORMAT, 1, "empty.jpg");
    expect_error(flava_image_read(&img, "/nonexistent/a.png"), FLAVA_ERR_IO, 1,
                 "/nonexistent/a.png");
    expect_error(flava_image_read(&img, tmp), FLAVA_ERR_IO, 2, tmp, "not a regular file");
    remove_tmp();
}
END_TEST

/* ---------------------------------------------------------------- image-text TSV */

static void write_png_tmp(const char *name)
{
    uint8_t px[4 * 4 * 3] = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    ck_assert_int_eq(flava_image_write_png(path, px, 4, 4, 3), FLAVA_OK);
}

START_TEST(test_imagetext_columns_by_name)
{
    make_tmp();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/img", tmp);
    ck_assert_int_eq(mkdir(dir, 0777), 0);
    write_png_tmp("img/a.png");
    write_png_tmp("img/b.png");
    const char *p = write_tmp("pairs.tsv", "id\ttitle\tfilepath\n1\ta red bag\timg/a.png\n"
                                           "2\ttwo shoes\timg/b.png\n", -1);
    flava_imagetext s;
    ck_assert_int_eq(flava_imagetext_load(&s, p, NULL, NULL), FLAVA_OK);
    ck_assert_int_eq(s.n, 2);
    char want[600];
    snprintf(want, sizeof want, "%s/img/b.png", tmp);
    ck_assert_str_eq(s.image_paths[1], want);
    ck_assert_str_eq(s.captions[0], "a red bag");
    flava_imagetext_free(&s);
    p = write_tmp("custom.tsv", "caption\timage\r\nthe first\timg/a.png\r\n", -1);
    ck_assert_int_eq(flava_imagetext_load(&s, p, "image", "caption"), FLAVA_OK);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.captions[0], "the first");
    flava_imagetext_free(&s);
    remove_tmp();
}
END_TEST

START_TEST(test_imagetext_malformed)
{
    make_tmp();
    write_png_tmp("a.png");
    flava_imagetext s;
    const char *p = write_tmp("nocol.tsv", "image\ttitle\na.png\tx\n", -1);
    expect_error(flava_imagetext_load(&s, p, NULL, NULL), FLAVA_ERR_FORMAT, 3, "nocol.tsv:1",
                 "'filepath'", "image column");
    expect_error(flava_imagetext_load(&s, p, "image", "text"), FLAVA_ERR_FORMAT, 2, "'text'",
                 "caption column");
    p = write_tmp("fields.tsv", "filepath\ttitle\na.png\tok\na.png\tone\textra\n", -1);
    expect_error(flava_imagetext_load(&s, p, NULL, NULL), FLAVA_ERR_FORMAT, 3, "fields.tsv:3",
                 "3 tab-separated fields", "expected 2");
    p = write_tmp("nocap.tsv", "filepath\ttitle\na.png\tok\na.png\t\n", -1);
    expect_error(flava_imagetext_load(&s, p, NULL, NULL), FLAVA_ERR_FORMAT, 2, "nocap.tsv:3",
                 "empty caption");
    p = write_tmp("noimg.tsv", "filepath\ttitle\nmissing.png\tok\n", -1);
    expect_error(flava_imagetext_load(&s, p, NULL, NULL), FLAVA_ERR_IO, 2, "noimg.tsv:2",
                 "missing.png");
    p = write_tmp("header_only.tsv", "filepath\ttitle\n", -1);
    expect_error(flava_imagetext_load(&s, p, NULL, NULL), FLAVA_ERR_FORMAT, 2, "header_only.tsv",
                 "no pairs");
    p = write_tmp("empty.tsv", "", 0);
    expect_error(flava_imagetext_load(&s, p, NULL, NULL), FLAVA_ERR_FORMAT, 2, "empty.tsv",
                 "header row");
    expect_error(flava_imagetext_load(&s, "/nonexistent.tsv", NULL, NULL), FLAVA_ERR_IO, 1,
                 "/nonexistent.tsv");
    remove_tmp();
}
END_TEST

/* ---------------------------------------------------------------- GLUE */

static void load_glue(flava_glue_set *s, const char *task, const char *split)
{
    flava_glue_task t;
    ck_assert_int_eq(flava_glue_task_from_name(&t, task), FLAVA_OK);
    char rel[128], dir[1024];
    snprintf(rel, sizeof rel, "tests/fixtures/glue/%s", flava_glue_task_info(t)->name);
    flava_status st = flava_glue_load(s, t, test_path(dir, sizeof dir, rel), split);
    ck_assert_msg(st == FLAVA_OK, "%s %s: %s", task, split, flava_error_message());
}

START_TEST(test_glue_every_task_and_split)
{
    /* expected counts, first example, last label, all hand-read from the fixtures */
    static const struct {
        const char *task, *split;
        long n;
        const char *a0, *b0;
        int last_label;
    } cases[] = {
        {"CoLA", "train", 3, "Our friends won't buy this analysis, let alone the next one we "
                             "propose.", NULL, 1},
        {"cola", "dev", 2, "The more we study verbs, the crazier they get.", NULL, 0},
        {"cola", "test", 2, "Bill whistled past the house.", NULL, -1},
        {"SST-2", "train", 3, "it 's a charming and often affecting journey . ", NULL, 1},
        {"sst2", "dev", 2, "a gorgeous , witty , seductive movie . ", NULL, 0},
        {"sst2", "test", 2, "uneasy mishmash of styles and genres .", NULL, -1},
        {"MRPC", "train", 2, "Amrozi accused his brother of deliberately distorting his "
                             "evidence.", "Referring to him as only \"the witness\", Amrozi "
                             "accused his brother of deliberately distorting his evidence.", 0},
        {"mrpc", "dev", 3, "PCCW's chief operating officer will take on the job.",
         "The chief operating officer of PCCW will take the job.", 1},
        {"mrpc", "test", 1, "A man is playing a guitar.", "A man plays the guitar.", -1},
        {"STS-B", "train", 4, "A plane is taking off.", "An air plane is taking off.", -1},
        {"stsb", "test", 1, "A girl is styling her hair.", "A girl is brushing her hair.", -1},
        {"QQP", "train", 2, "How is the life of a math student? Could you describe your own "
                            "experiences?", "Which level of prepration is enough for the exam "
                            "jlpt5?", 1},
        {"qqp", "dev", 3, "Why are African-Americans so beautiful?",
         "Why are hispanics so beautiful?", 1},
        {"qqp", "test", 1, "Why is saltwater taffy candy imported in Austria?",
         "Which is the best digital marketing institution in banglore?", -1},
        {"MNLI", "train", 3, "Conceptually cream skimming has two basic dimensions - product "
                             "and geography.", "Product and geography are what make cream "
                             "skimming work. ", 2},
        {"mnli", "dev_matched", 2, "The new rights are nice enough",
         "Everyone really likes the newest benefits ", 2},
        {"mnli", "dev_mismatched", 3, "Your gift is appreciated by each and every student who "
                                      "will benefit from your generosity.",
         "Hundreds of students will benefit from your generosity.", 0},
        {"mnli", "test_matched", 1, "Hierbas, ans seco, ans dulce, and frigola are just a few "
                                    "names worth keeping a look-out for.",
         "Hierbas is a name worth looking out for.", -1},
        {"mnli", "test_mismatched", 1, "What have you decided, what are you going to do?",
         "So what's your decision?", -1},
        {"QNLI", "train", 2, "When did the third Digimon series begin?", "Unlike the two seasons "
                             "before it and most of the seasons that followed, Digimon Tamers "
                             "takes a darker and more realistic approach to its story.", 0},
        {"qnli", "dev", 2, "What came into force after the new constitution was herald?",
         "As of that day, the new constitution heralding the Second Republic came into force.",
         1},
        {"qnli", "test", 1, "What organization is devoted to Jihad against Israel?",
         "For some decades prior to the First Palestine Intifada in 1987, the Muslim "
         "Brotherhood in Palestine took a \"quiescent\" stance towards Israel.", -1},
        {"RTE", "train", 2, "No Weapons of Mass Destruction Found in Iraq Yet.",
         "Weapons of Mass Destruction Found in Iraq.", 0},
        {"rte", "dev", 2, "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung "
                          "cancer at age 44.", "Christopher Reeve had an accident.", 0},
        {"rte", "test", 1, "Maude and Dora had seen the trains rushing across the prairie.",
         "Trains crossed the prairie.", -1},
        {"WNLI", "train", 3, "I stuck a pin through a carrot. When I pulled the pin out, it had "
                             "a hole.", "The carrot had a hole.", 0},
        {"wnli", "dev", 2, "The drain is clogged with hair. It has to be cleaned.",
         "The hair has to be cleaned.", 1},
        {"wnli", "test", 1, "The man lifted the boy onto his shoulders.",
         "The man lifted the boy onto the man's shoulders.", -1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        flava_glue_set s;
        load_glue(&s, cases[k].task, cases[k].split);
        ck_assert_msg(s.n == cases[k].n, "%s %s: %ld examples", cases[k].task, cases[k].split,
                      s.n);
        ck_assert_str_eq(s.text_a[0], cases[k].a0);
        if (cases[k].b0)
            ck_assert_str_eq(s.text_b[0], cases[k].b0);
        else
            ck_assert_ptr_null(s.text_b);
        if (cases[k].last_label >= 0)
            ck_assert_int_eq(s.labels[s.n - 1], cases[k].last_label);
        else if (s.task != FLAVA_GLUE_STSB || !s.has_labels)
            ck_assert_ptr_null(s.labels);
        ck_assert_int_eq(s.has_labels, strncmp(cases[k].split, "test", 4) != 0);
        flava_glue_free(&s);
    }
    flava_glue_set s;
    load_glue(&s, "stsb", "dev");
    float want[5] = {5.0f, 4.75f, 5.0f, 2.4f, 2.75f};
    for (int i = 0; i < 5; i++)
        ck_assert_float_eq(s.scores[i], want[i]);
    ck_assert_str_eq(s.text_b[4], "A man is playing a flute.");
    flava_glue_free(&s);
    const flava_glue_info *mnli = flava_glue_task_info(FLAVA_GLUE_MNLI);
    ck_assert_int_eq(mnli->num_labels, 3);
    ck_assert_str_eq(mnli->labels[1], "neutral");
}
END_TEST

START_TEST(test_glue_official_metrics)
{
    /* hand-computed: MRPC dev gold 1 0 1, predicted 1 1 1: tp 2 fp 1 -> F1 0.8, acc 2/3 */
    flava_glue_set s;
    double v[2];
    load_glue(&s, "mrpc", "dev");
    ck_assert_int_eq(flava_glue_score(v, &s, (int32_t[]){1, 1, 1}, NULL), FLAVA_OK);
    ck_assert_double_eq_tol(v[0], 0.8, 1e-12);
    ck_assert_double_eq_tol(v[1], 2.0 / 3, 1e-12);
    flava_glue_free(&s);
    /* CoLA dev gold 1 0; perfect -> MCC 1, inverted -> -1 */
    load_glue(&s, "cola", "dev");
    ck_assert_int_eq(flava_glue_score(v, &s, (int32_t[]){1, 0}, NULL), FLAVA_OK);
    ck_assert_double_eq_tol(v[0], 1.0, 1e-12);
    ck_assert_int_eq(flava_glue_score(v, &s, (int32_t[]){0, 1}, NULL), FLAVA_OK);
    ck_assert_double_eq_tol(v[0], -1.0, 1e-12);
    flava_glue_free(&s);
    /* STS-B dev: predicting the gold scores doubled keeps both correlations at 1 */
    load_glue(&s, "stsb", "dev");
    float pred[5];
    for (int i = 0; i < 5; i++)
        pred[i] = 2 * s.scores[i];
    ck_assert_int_eq(flava_glue_score(v, &s, NULL, pred), FLAVA_OK);
    ck_assert_double_eq_tol(v[0], 1.0, 1e-12);
    ck_assert_double_eq_tol(v[1], 1.0, 1e-12);
    expect_error(flava_glue_score(v, &s, (int32_t[]){0, 0, 0, 0, 0}, NULL), FLAVA_ERR_ARG, 1,
                 "score predictions");
    flava_glue_free(&s);
    load_glue(&s, "rte", "test");
    expect_error(flava_glue_score(v, &s, (int32_t[]){0}, NULL), FLAVA_ERR_ARG, 1, "no labels");
    flava_glue_free(&s);
}
END_TEST

static flava_status glue_tmp(flava_glue_set *s, flava_glue_task task, const char *split,
                             const char *text)
{
    char name[64];
    snprintf(name, sizeof name, "%s.tsv", split);
    write_tmp(name, text, -1);
    return flava_glue_load(s, task, tmp, split);
}

START_TEST(test_glue_malformed)
{
    make_tmp();
    flava_glue_set s;
    expect_error(glue_tmp(&s, FLAVA_GLUE_SST2, "train", "sentence\tlabel\ngood\t1\nbad\t2\n"),
                 FLAVA_ERR_FORMAT, 3, "train.tsv:3", "label '2'", "expected 0, 1");
    expect_error(glue_tmp(&s, FLAVA_GLUE_MNLI, "dev_matched",
                          "sentence1\tsentence2\tgold_label\na\tb\tentails\n"),
                 FLAVA_ERR_FORMAT, 3, "dev_matched.tsv:2", "'entails'",
                 "entailment, neutral, contradiction");
    expect_error(glue_tmp(&s, FLAVA_GLUE_QNLI, "dev",
                          "index\tquestion\tsentence\tlabel\n0\tq?\ts.\tentailment\n1\tq?\n"),
                 FLAVA_ERR_FORMAT, 3, "dev.tsv:3", "2 tab-separated fields", "expected 4");
    expect_error(glue_tmp(&s, FLAVA_GLUE_RTE, "dev", "index\tsentence1\tsentence2\tlabel\n"
                                                     "0\t\tx\tentailment\n"),
                 FLAVA_ERR_FORMAT, 3, "dev.tsv:2", "empty sentence", "column 2");
    /* a QNLI file read as RTE: the header names the wrong columns */
    expect_error(glue_tmp(&s, FLAVA_GLUE_RTE, "train", "index\tquestion\tsentence\tlabel\n"
                                                       "0\tq\ts\tentailment\n"),
                 FLAVA_ERR_FORMAT, 3, "train.tsv:1", "'sentence1'", "right task");
    /* CoLA train with a header row: its second field is not a label */
    expect_error(glue_tmp(&s, FLAVA_GLUE_COLA, "train", "src\tlabel\torig\tsentence\n"),
                 FLAVA_ERR_FORMAT, 2, "train.tsv:1", "label 'label'");
    expect_error(glue_tmp(&s, FLAVA_GLUE_COLA, "dev", "gj04\t1\t\tA fine sentence.\ngj04\t0\n"),
                 FLAVA_ERR_FORMAT, 2, "dev.tsv:2", "expected 4");
    expect_error(glue_tmp(&s, FLAVA_GLUE_STSB, "dev", "sentence1\tsentence2\tscore\n"
                                                      "a\tb\t7.5\n"),
                 FLAVA_ERR_FORMAT, 3, "dev.tsv:2", "score '7.5'", "0 to 5");
    expect_error(glue_tmp(&s, FLAVA_GLUE_WNLI, "test", "index\tsentence1\tsentence2\n"),
                 FLAVA_ERR_FORMAT, 2, "test.tsv", "no examples");
    /* a test split with the label column (flava data spam) is labelled and
     * its labels are checked; GLUE's own test layout is not */
    ck_assert_int_eq(glue_tmp(&s, FLAVA_GLUE_SST2, "test", "sentence\tlabel\nbuy now\t1\nhi\t0\n"),
                     FLAVA_OK);
    ck_assert(s.has_labels && s.n == 2 && s.labels[0] == 1 && s.labels[1] == 0);
    flava_glue_free(&s);
    ck_assert_int_eq(glue_tmp(&s, FLAVA_GLUE_SST2, "test", "index\tsentence\n0\tbuy now\n"),
                     FLAVA_OK);
    ck_assert(!s.has_labels && s.n == 1);
    flava_glue_free(&s);
    expect_error(glue_tmp(&s, FLAVA_GLUE_SST2, "test", "sentence\tlabel\nbuy now\tspam\n"),
                 FLAVA_ERR_FORMAT, 2, "test.tsv:2", "label 'spam'");
    expect_error(flava_glue_load(&s, FLAVA_GLUE_MNLI, tmp, "dev"), FLAVA_ERR_ARG, 2, "'dev'",
                 "dev_matched");
    expect_error(flava_glue_load(&s, FLAVA_GLUE_SST2, "/nonexistent", "dev"), FLAVA_ERR_IO, 1,
                 "/nonexistent/dev.tsv");
    flava_glue_task t;
    expect_error(flava_glue_task_from_name(&t, "squad"), FLAVA_ERR_ARG, 2, "'squad'", "cola");
    remove_tmp();
}
END_TEST

/* ---------------------------------------------------------------- metrics */

START_TEST(test_metrics_match_sklearn_scipy)
{
    char path[1024];
    FILE *f = fopen(test_path(path, sizeof path, "tests/fixtures/metrics.txt"), "r");
    ck_assert_ptr_nonnull(f);
    char name[32];
    double want;
    long n;
    int cases = 0;
    while (fscanf(f, "%31s %lf %ld", name, &want, &n) == 3) {
        float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
        int32_t *ia = malloc(sizeof(int32_t) * n), *ib = malloc(sizeof(int32_t) * n);
        for (long i = 0; i < n; i++)
            ck_assert_int_eq(fscanf(f, "%f", &a[i]), 1);
        for (long i = 0; i < n; i++)
            ck_assert_int_eq(fscanf(f, "%f", &b[i]), 1);
        for (long i = 0; i < n; i++) {
            ia[i] = (int32_t)a[i];
            ib[i] = (int32_t)b[i];
        }
        double got = NAN;
        if (!strcmp(name, "accuracy"))
            ck_assert_int_eq(flava_metric_accuracy(&got, ia, ib, n), FLAVA_OK);
        else if (!strcmp(name, "f1"))
            ck_assert_int_eq(flava_metric_f1(&got, ia, ib, n), FLAVA_OK);
        else if (!strcmp(name, "matthews"))
            ck_assert_int_eq(flava_metric_matthews(&got, ia, ib, n), FLAVA_OK);
        else if (!strcmp(name, "pearson"))
            ck_assert_int_eq(flava_metric_pearson(&got, a, b, n), FLAVA_OK);
        else if (!strcmp(name, "spearman"))
            ck_assert_int_eq(flava_metric_spearman(&got, a, b, n), FLAVA_OK);
        else
            ck_abort_msg("unknown metric '%s' in metrics.txt", name);
        ck_assert_msg(fabs(got - want) <= 1e-9, "%s over %ld: %.15g, sklearn/scipy %.15g", name,
                      n, got, want);
        free(a);
        free(b);
        free(ia);
        free(ib);
        cases++;
    }
    fclose(f);
    ck_assert_int_eq(cases, 13);
}
END_TEST

START_TEST(test_metrics_edge_cases)
{
    double v;
    /* ties ranked averagely: x ranks 1.5 1.5 3, y ranks 1 2 3 -> r = 0.8660254 */
    ck_assert_int_eq(flava_metric_spearman(&v, (float[]){1, 1, 2}, (float[]){1, 2, 3}, 3),
                     FLAVA_OK);
    ck_assert_double_eq_tol(v, sqrt(3.0) / 2, 1e-12);
    ck_assert_int_eq(flava_metric_pearson(&v, (float[]){1, 1, 1}, (float[]){1, 2, 3}, 3),
                     FLAVA_OK);
    ck_assert(isnan(v)); /* as scipy: undefined for a constant series */
    ck_assert_int_eq(flava_metric_f1(&v, (int32_t[]){0, 0}, (int32_t[]){0, 0}, 2), FLAVA_OK);
    ck_assert_double_eq(v, 0.0);
    expect_error(flava_metric_f1(&v, (int32_t[]){0, 2}, (int32_t[]){0, 1}, 2), FLAVA_ERR_ARG, 2,
                 "example 1", "binary");
    expect_error(flava_metric_accuracy(&v, NULL, NULL, 0), FLAVA_ERR_ARG, 1, "at least one");
    expect_error(flava_metric_pearson(&v, (float[]){1, NAN}, (float[]){1, 2}, 2),
                 FLAVA_ERR_NUMERIC, 1, "example 1");
}
END_TEST

/* ---------------------------------------------------------------- VQA */

START_TEST(test_vqa_normalize)
{
    /* expected outputs follow the official vqaEval.py rules by hand */
    static const char *cases[][2] = {
        {"Two", "2"},
        {"the dog.", "dog"},
        {"yes!", "yes"},
        {"red-and-white bus", "red and white bus"},   /* unspaced mark -> space */
        {"hello, world", "hello world"},              /* ", " -> removed */
        {"1,000 dogs", "1000 dogs"},                  /* digit,digit: all marks removed */
        {"3.5", "3.5"},                               /* period before a digit stays */
        {"  Ten\tdogs \n", "10 dogs"},
        {"none", "0"},
        {"dont know", "don't know"},
        {"An apple", "apple"},
        {"it's", "it's"},
        {"(left)", "left"},                           /* "(" and ")" not spaced -> spaces */
        {"a", ""},
        {"Im sure", "im sure"},                       /* the script's "Im" key never matches */
        {"youre right", "you're right"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *out;
        ck_assert_int_eq(flava_vqa_normalize(&out, cases[k][0]), FLAVA_OK);
        ck_assert_msg(!strcmp(out, cases[k][1]), "'%s' -> '%s', expected '%s'", cases[k][0], out,
                      cases[k][1]);
        free(out);
    }
}
END_TEST

/* questions/annotations JSON for two questions about images 7 and 9 */
static const char *qjson =
    "{\"data_subtype\": \"val2014\", \"questions\": ["
    "{\"image_id\": 7, \"question\": \"What color?\", \"question_id\": 70},"
    "{\"image_id\": 9, \"question\": \"How many?\", \"question_id\": 90}]}";

static void answers_json(char *out, size_t cap, const char *const *ten)
{
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < 10; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s{\"answer\": \"%s\", \"answer_id\": %d}",
                              i ? "," : "", ten[i], i + 1);
    snprintf(out + n, cap - n, "]");
}

static const char *write_annotations(const char *name, const char *const *a70,
                                     const char *const *a90, int iid90)
{
    char x[2048], y[2048], all[4500];
    answers_json(x, sizeof x, a70);
    answers_json(y, sizeof y, a90);
    snprintf(all, sizeof all, "{\"annotations\": [{\"question_id\": 90, \"image_id\": %d, "
             "\"answers\": %s}, {\"question_id\": 70, \"image_id\": 7, \"answers\": %s}]}",
             iid90, y, x);
    return write_tmp(name, all, -1);
}

static const char *const a70[10] = {"Red", "red", "red.", "blue", "blue", "green", "red",
                                    "white", "blue", "dark red"};
static const char *const a90[10] = {"two", "2", "2", "2", "three", "2", "2", "2", "2", "2"};

START_TEST(test_vqa_load_accuracy_vocab)
{
    make_tmp();
    write_png_tmp("7.png");
    write_png_tmp("9.png");
    write_png_tmp("COCO_val2014_000000000007.jpg");
    write_png_tmp("COCO_val2014_000000000009.jpg");
    char q[512]; /* write_tmp's buffers are reused */
    snprintf(q, sizeof q, "%s", write_tmp("q.json", qjson, -1));
    const char *a = write_annotations("a.json", a70, a90, 9);
    flava_vqa_set s;
    ck_assert_msg(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG) == FLAVA_OK, "%s",
                  flava_error_message());
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(s.q[1].question_id, 90);
    ck_assert_str_eq(s.q[0].question, "What color?");
    ck_assert_int_eq(s.q[0].n_answers, 10);
    ck_assert_str_eq(s.q[0].answers[2], "red");
    ck_assert_str_eq(s.q[1].answers[0], "2");
    char want[600];
    snprintf(want, sizeof want, "%s/9.png", tmp);
    ck_assert_str_eq(s.q[1].image_path, want);
    /* "red" 4 times: its 4 holders see 3 others (1), the other 6 see 4 (1) -> 1.0;
     * "blue" 3 times: 3 x 2/3 + 7 x 1 -> 0.9; "green" once: 9 x 1/3 -> 0.3;
     * "dark red": 0.3; "purple": 0 */
    double acc;
    static const struct {
        const char *answer;
        double acc;
    } accs[] = {{"Red", 1.0}, {"blue", 0.9}, {"green", 0.3}, {"dark red!", 0.3}, {"purple", 0}};
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(flava_vqa_accuracy(&acc, &s.q[0], accs[k].answer), FLAVA_OK);
        ck_assert_double_eq_tol(acc, accs[k].acc, 1e-12);
    }
    ck_assert_int_eq(flava_vqa_accuracy(&acc, &s.q[1], "Three"), FLAVA_OK);
    ck_assert_double_eq_tol(acc, 0.3, 1e-12);
    /* counts over all answers: 2 x10 (incl. "two"), red x4, blue x3, then 1 each: dark red,
     * green, 3, white -> top 5 is 2, red, blue, 3, dark red (ties by strcmp) */
    flava_vqa_vocab v, r;
    ck_assert_int_eq(flava_vqa_vocab_build(&v, &s, 5), FLAVA_OK);
    static const char *const top[5] = {"2", "red", "blue", "3", "dark red"};
    ck_assert_int_eq(v.n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(v.answers[i], top[i]);
    char vpath[512];
    snprintf(vpath, sizeof vpath, "%s/answers.txt", tmp);
    ck_assert_int_eq(flava_vqa_vocab_write(&v, vpath), FLAVA_OK);
    ck_assert_int_eq(flava_vqa_vocab_read(&r, vpath), FLAVA_OK);
    ck_assert_int_eq(r.n, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(flava_vqa_vocab_find(&r, top[i]), i);
    ck_assert_int_eq(flava_vqa_vocab_find(&r, "green"), -1);
    float scores[5];
    flava_vqa_soft_scores(scores, &r, &s.q[0]);
    double want_scores[5] = {0, 1.0, 0.9, 0, 0.3};
    ck_assert_close(scores, want_scores, 5, 0.0, 1e-6, "soft scores q70");
    flava_vqa_soft_scores(scores, &r, &s.q[1]);
    double want90[5] = {1.0, 0, 0, 0.3, 0};
    ck_assert_close(scores, want90, 5, 0.0, 1e-6, "soft scores q90");
    flava_vqa_vocab_free(&v);
    flava_vqa_vocab_free(&r);
    flava_vqa_free(&s);
    /* COCO file names, and test questions without annotations */
    ck_assert_int_eq(flava_vqa_load(&s, q, NULL, tmp, FLAVA_VQA_COCO), FLAVA_OK);
    ck_assert_ptr_nonnull(strstr(s.q[0].image_path, "/COCO_val2014_000000000007.jpg"));
    ck_assert_int_eq(s.q[0].n_answers, 0);
    expect_error(flava_vqa_accuracy(&acc, &s.q[0], "red"), FLAVA_ERR_ARG, 1, "no annotated");
    flava_vqa_free(&s);
    remove_tmp();
}
END_TEST

START_TEST(test_vqa_malformed)
{
    make_tmp();
    write_png_tmp("7.png");
    write_png_tmp("9.png");
    flava_vqa_set s;
    char q[512]; /* write_tmp's buffers are reused */
    snprintf(q, sizeof q, "%s", write_tmp("q.json", qjson, -1));
    const char *bad = write_tmp("bad.json", "{\"questions\": [\n{\"image_id\": 7,,}]}", -1);
    expect_error(flava_vqa_load(&s, bad, NULL, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 2,
                 "bad.json:2", "invalid JSON");
    bad = write_tmp("noarr.json", "{\"question\": []}", -1);
    expect_error(flava_vqa_load(&s, bad, NULL, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 2,
                 "noarr.json", "'questions'");
    bad = write_tmp("noid.json", "{\"questions\": [{\"image_id\": 7, \"question\": \"x\"}]}", -1);
    expect_error(flava_vqa_load(&s, bad, NULL, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 3,
                 "noid.json", "record 0", "'question_id'");
    bad = write_tmp("noimg.json", "{\"questions\": [{\"image_id\": 8, \"question\": \"x\", "
                                  "\"question_id\": 1}]}", -1);
    expect_error(flava_vqa_load(&s, bad, NULL, tmp, FLAVA_VQA_PNG), FLAVA_ERR_IO, 2,
                 "noimg.json", "8.png");
    expect_error(flava_vqa_load(&s, q, NULL, tmp, FLAVA_VQA_COCO), FLAVA_ERR_IO, 1,
                 "COCO_val2014_000000000007.jpg");
    bad = write_tmp("dup.json", "{\"questions\": [{\"image_id\": 7, \"question\": \"x\", "
                                "\"question_id\": 1}, {\"image_id\": 9, \"question\": \"y\", "
                                "\"question_id\": 1}]}", -1);
    const char *a = write_annotations("a.json", a70, a90, 9);
    expect_error(flava_vqa_load(&s, bad, a, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 2,
                 "question_id 1", "twice");
    a = write_annotations("mismatch.json", a70, a90, 8);
    expect_error(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 3,
                 "mismatch.json", "record 0", "image_id 8");
    const char *nine[10] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    a = write_annotations("empty_answer.json", a70, (nine[9] = "", nine), 9);
    expect_error(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 3,
                 "empty_answer.json", "question_id 90", "answer 10");
    a = write_tmp("nine.json", "{\"annotations\": [{\"question_id\": 70, \"image_id\": 7, "
                               "\"answers\": [{\"answer\": \"x\"}]}]}", -1);
    expect_error(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 2,
                 "nine.json", "10 answers");
    a = write_tmp("unknown.json", "{\"annotations\": [{\"question_id\": 71, \"image_id\": 7}]}",
                  -1);
    expect_error(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 2,
                 "unknown.json", "question_id 71 is not in the questions file");
    a = write_tmp("partial.json", "{\"annotations\": []}", -1);
    expect_error(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 2,
                 "partial.json", "question_id 70 has no annotation");
    flava_vqa_vocab v;
    const char *vp = write_tmp("dup.txt", "yes\nno\nyes\n", -1);
    expect_error(flava_vqa_vocab_read(&v, vp), FLAVA_ERR_FORMAT, 3, "dup.txt", "'yes'",
                 "lines 1 and 3");
    vp = write_tmp("blank.txt", "yes\n\nno\n", -1);
    expect_error(flava_vqa_vocab_read(&v, vp), FLAVA_ERR_FORMAT, 2, "blank.txt:2", "non-empty");
    remove_tmp();
}
END_TEST

/* The fixture of tests/reference/vqa_types_fixtures.py: its expected.json
 * (the official evaluation re-implemented in Python) parsed, and one of its
 * JSON files' path. */
static cJSON *vqa_types_expected(void)
{
    char path[512], *text;
    size_t n;
    test_path(path, sizeof path, "tests/fixtures/vqa_types/expected.json");
    ck_assert_msg(flava_file_read(&text, &n, path) == FLAVA_OK, "%s", flava_error_message());
    cJSON *e = cJSON_Parse(text);
    flava_free(text);
    ck_assert_ptr_nonnull(e);
    return e;
}

static const char *vqa_types_file(char *buf, size_t n, const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/fixtures/vqa_types/%s", name);
    return test_path(buf, n, rel);
}

static double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "expected.json lacks the number '%s'", key);
    return v->valuedouble;
}

START_TEST(test_vqa_answer_types_prior_predictions)
{
    cJSON *e = vqa_types_expected();
    char q[512], a[512], tq[512], ta[512];
    flava_vqa_set ev, tr;
    /* no image folder: the text-only load the prior baseline uses */
    ck_assert_msg(flava_vqa_load(&ev, vqa_types_file(q, sizeof q, "questions.json"),
                                 vqa_types_file(a, sizeof a, "annotations.json"), NULL,
                                 FLAVA_VQA_COCO) == FLAVA_OK, "%s", flava_error_message());
    ck_assert_msg(flava_vqa_load(&tr, vqa_types_file(tq, sizeof tq, "train_questions.json"),
                                 vqa_types_file(ta, sizeof ta, "train_annotations.json"), NULL,
                                 FLAVA_VQA_PNG) == FLAVA_OK, "%s", flava_error_message());
    ck_assert_ptr_null(ev.q[0].image_path);
    /* multiple_choice_answer normalised, or the most frequent of the ten */
    const cJSON *tops = cJSON_GetObjectItemCaseSensitive(e, "train_top_answers");
    ck_assert_int_eq(cJSON_GetArraySize(tops), tr.n);
    for (long i = 0; i < tr.n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%lld", (long long)tr.q[i].question_id);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(tops, id);
        ck_assert_msg(cJSON_IsString(t), "question %s", id);
        ck_assert_str_eq(tr.q[i].top_answer, t->valuestring);
    }
    flava_vqa_prior prior;
    ck_assert_msg(flava_vqa_prior_build(&prior, &tr) == FLAVA_OK, "%s", flava_error_message());
    const cJSON *want_prior = cJSON_GetObjectItemCaseSensitive(e, "prior");
    ck_assert_int_eq(prior.n, cJSON_GetArraySize(want_prior));
    for (int i = 0; i < prior.n; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(want_prior, prior.question_types[i]);
        ck_assert_msg(cJSON_IsString(t), "question type '%s'", prior.question_types[i]);
        ck_assert_str_eq(prior.answers[i], t->valuestring);
    }
    ck_assert_str_eq(prior.fallback,
                     cJSON_GetObjectItemCaseSensitive(e, "prior_fallback")->valuestring);
    /* the fixed predictions through the accuracy, the tally and the prior */
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(e, "questions");
    ck_assert_int_eq(cJSON_GetArraySize(qs), ev.n);
    const char *pred[16];
    flava_vqa_tally t = {0};
    double prior_sum = 0, acc;
    for (long i = 0; i < ev.n; i++) {
        const cJSON *w = cJSON_GetArrayItem(qs, (int)i);
        ck_assert_int_eq(ev.q[i].question_id, (int64_t)json_num(w, "question_id"));
        pred[i] = cJSON_GetObjectItemCaseSensitive(w, "prediction")->valuestring;
        ck_assert_int_eq(flava_vqa_accuracy(&acc, &ev.q[i], pred[i]), FLAVA_OK);
        ck_assert_double_eq_tol(acc, json_num(w, "accuracy"), 1e-12);
        ck_assert_int_eq(flava_vqa_tally_add(&t, &ev.q[i], acc), FLAVA_OK);
        const char *p = flava_vqa_prior_answer(&prior, &ev.q[i]);
        ck_assert_str_eq(p, cJSON_GetObjectItemCaseSensitive(w, "prior_answer")->valuestring);
        ck_assert_int_eq(flava_vqa_accuracy(&acc, &ev.q[i], p), FLAVA_OK);
        prior_sum += acc;
    }
    ck_assert_int_eq(t.n, ev.n);
    ck_assert_double_eq_tol(t.sum / (double)t.n, json_num(e, "vqa_accuracy"), 1e-12);
    ck_assert_double_eq_tol(prior_sum / (double)ev.n, json_num(e, "prior_accuracy"), 1e-12);
    ck_assert_int_eq(t.untyped, (long)json_num(e, "untyped"));
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(e, "answer_types");
    ck_assert_int_eq(t.ntypes, cJSON_GetArraySize(types));
    long typed = 0;
    for (int k = 0; k < t.ntypes; k++) {
        const cJSON *w = cJSON_GetArrayItem(types, k); /* sorted keys, as the tally */
        ck_assert_str_eq(t.type[k], w->string);
        ck_assert_int_eq(t.type_n[k], (long)json_num(w, "questions"));
        ck_assert_double_eq_tol(t.type_sum[k] / (double)t.type_n[k], json_num(w, "accuracy"),
                                1e-12);
        typed += t.type_n[k];
    }
    ck_assert_int_eq(typed + t.untyped, t.n);
    /* predictions.json: the official results format, read back */
    make_tmp();
    char path[512];
    snprintf(path, sizeof path, "%s/predictions.json", tmp);
    ck_assert_int_eq(flava_vqa_predictions_write(path, &ev, pred, ev.n), FLAVA_OK);
    char *text;
    size_t len;
    ck_assert_int_eq(flava_file_read(&text, &len, path), FLAVA_OK);
    cJSON *got = cJSON_Parse(text);
    flava_free(text);
    ck_assert(cJSON_IsArray(got));
    ck_assert_int_eq(cJSON_GetArraySize(got), ev.n);
    for (long i = 0; i < ev.n; i++) {
        const cJSON *g = cJSON_GetArrayItem(got, (int)i);
        ck_assert_int_eq(cJSON_GetArraySize(g), 2);
        ck_assert_int_eq((int64_t)json_num(g, "question_id"), ev.q[i].question_id);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(g, "answer")->valuestring, pred[i]);
    }
    cJSON_Delete(got);
    ck_assert_int_eq(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/predictions.json.tmp", tmp);
    ck_assert_int_ne(access(path, F_OK), 0); /* renamed into place */
    expect_error(flava_vqa_predictions_write(path, &ev, pred, ev.n + 1), FLAVA_ERR_ARG, 2,
                 "12 predictions", "11 questions");
    snprintf(path, sizeof path, "%s/missing/predictions.json", tmp);
    expect_error(flava_vqa_predictions_write(path, &ev, pred, ev.n), FLAVA_ERR_IO, 1,
                 "missing/predictions.json");
    remove_tmp();
    flava_vqa_prior_free(&prior);
    flava_vqa_free(&ev);
    flava_vqa_free(&tr);
    cJSON_Delete(e);
}
END_TEST

START_TEST(test_vqa_answer_types_errors)
{
    make_tmp();
    write_png_tmp("7.png");
    char q[512];
    snprintf(q, sizeof q, "%s", write_tmp("q.json", "{\"questions\": [{\"image_id\": 7, "
                                          "\"question\": \"x\", \"question_id\": 70}]}", -1));
    char ten[1024];
    answers_json(ten, sizeof ten, a70);
    char ann[2048];
    snprintf(ann, sizeof ann, "{\"annotations\": [{\"question_id\": 70, \"image_id\": 7, "
             "\"answer_type\": 3, \"answers\": %s}]}", ten);
    const char *a = write_tmp("numtype.json", ann, -1);
    flava_vqa_set s;
    expect_error(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 3,
                 "numtype.json", "question_id 70", "'answer_type' must be a non-empty string");
    snprintf(ann, sizeof ann, "{\"annotations\": [{\"question_id\": 70, \"image_id\": 7, "
             "\"question_type\": \"\", \"answers\": %s}]}", ten);
    a = write_tmp("emptytype.json", ann, -1);
    expect_error(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG), FLAVA_ERR_FORMAT, 2,
                 "emptytype.json", "'question_type'");
    /* neither type nor multiple_choice_answer: loads, untyped, top answer of the ten
     * ("red" 4 times) */
    snprintf(ann, sizeof ann, "{\"annotations\": [{\"question_id\": 70, \"image_id\": 7, "
             "\"answers\": %s}]}", ten);
    a = write_tmp("untyped.json", ann, -1);
    ck_assert_msg(flava_vqa_load(&s, q, a, tmp, FLAVA_VQA_PNG) == FLAVA_OK, "%s",
                  flava_error_message());
    ck_assert_ptr_null(s.q[0].answer_type);
    ck_assert_ptr_null(s.q[0].question_type);
    ck_assert_str_eq(s.q[0].top_answer, "red");
    flava_vqa_tally t = {0};
    ck_assert_int_eq(flava_vqa_tally_add(&t, &s.q[0], 0.5), FLAVA_OK);
    ck_assert_int_eq(t.ntypes, 0);
    ck_assert_int_eq(t.untyped, 1);
    /* at most FLAVA_VQA_MAX_TYPES answer types */
    char names[FLAVA_VQA_MAX_TYPES + 1][8];
    for (int k = 0; k <= FLAVA_VQA_MAX_TYPES; k++) {
        snprintf(names[k], sizeof names[k], "t%d", FLAVA_VQA_MAX_TYPES - k);
        s.q[0].answer_type = names[k];
        flava_status st = flava_vqa_tally_add(&t, &s.q[0], 1.0);
        if (k < FLAVA_VQA_MAX_TYPES)
            ck_assert_int_eq(st, FLAVA_OK);
        else
            expect_error(st, FLAVA_ERR_FORMAT, 3, "question_id 70", "'t0'", "yes/no");
    }
    ck_assert_str_eq(t.type[0], "t1"); /* inserted in strcmp order */
    ck_assert_str_eq(t.type[FLAVA_VQA_MAX_TYPES - 1], "t6");
    s.q[0].answer_type = NULL;
    /* the prior needs annotations */
    flava_vqa_free(&s);
    ck_assert_int_eq(flava_vqa_load(&s, q, NULL, tmp, FLAVA_VQA_PNG), FLAVA_OK);
    flava_vqa_prior p;
    expect_error(flava_vqa_prior_build(&p, &s), FLAVA_ERR_ARG, 2, "question_id 70",
                 "no annotation");
    flava_vqa_free(&s);
    remove_tmp();
}
END_TEST

/* ---------------------------------------------------------------- scenes */

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Reads a split the generator wrote back through the readers, and checks
 * captions, answers and pixels agree with each other. */
static void check_split(const char *split, long n_scenes, int size)
{
    char dir[512], p1[600], p2[600], imgdir[600];
    snprintf(dir, sizeof dir, "%s/%s", tmp, split);
    snprintf(p1, sizeof p1, "%s/captions.tsv", dir);
    flava_imagetext it;
    ck_assert_msg(flava_imagetext_load(&it, p1, NULL, NULL) == FLAVA_OK, "%s",
                  flava_error_message());
    ck_assert_int_eq(it.n, n_scenes);
    snprintf(p1, sizeof p1, "%s/questions.json", dir);
    snprintf(p2, sizeof p2, "%s/annotations.json", dir);
    snprintf(imgdir, sizeof imgdir, "%s/images", dir);
    flava_vqa_set vq;
    ck_assert_msg(flava_vqa_load(&vq, p1, p2, imgdir, FLAVA_VQA_PNG) == FLAVA_OK, "%s",
                  flava_error_message());
    ck_assert_int_eq(vq.n, 3 * n_scenes);
    for (long i = 0; i < it.n; i++) {
        flava_image img;
        ck_assert_int_eq(flava_image_read(&img, it.image_paths[i]), FLAVA_OK);
        ck_assert_int_eq(img.width, size);
        ck_assert_int_eq(img.height, size);
        /* "what is in the <cell>?": "nothing" iff that quarter is black and the caption
         * does not name the cell */
        const flava_vqa_question *q = &vq.q[3 * i];
        ck_assert_int_eq(q->image_id, i);
        static const char *cells[4] = {"top left", "top right", "bottom left", "bottom right"};
        int cell = -1;
        for (int c = 0; c < 4; c++)
            if (strstr(q->question, cells[c]) && (cell < 0 || strlen(cells[c]) > 8))
                cell = c;
        ck_assert_int_ge(cell, 0);
        long lit = 0;
        int h = size / 2;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < h; x++)
                lit += img.rgb[(((cell / 2) * h + y) * size + (cell % 2) * h + x) * 3] > 0;
        char in_cell[64];
        snprintf(in_cell, sizeof in_cell, "in the %s", cells[cell]);
        int empty = !strcmp(q->answers[0], "nothing");
        ck_assert_int_eq(empty, lit == 0);
        ck_assert_int_eq(empty, strstr(it.captions[i], in_cell) == NULL);
        char *caption;
        ck_assert_int_eq(flava_vqa_normalize(&caption, it.captions[i]), FLAVA_OK);
        if (!empty) /* answers are normalised ("t-shirt" -> "t shirt"): so compare so */
            ck_assert_ptr_nonnull(strstr(caption, q->answers[0]));
        free(caption);
        ck_assert(!strcmp(vq.q[3 * i + 1].answers[0], "yes") ||
                  !strcmp(vq.q[3 * i + 1].answers[0], "no"));
        int count = atoi(vq.q[3 * i + 2].answers[0]);
        ck_assert(count >= 0 && count <= 4);
        flava_image_free(&img);
    }
    snprintf(p1, sizeof p1, "%s/classes.txt", dir);
    ck_assert_int_eq(count_lines(p1), 10);
    flava_vqa_vocab v;
    ck_assert_int_eq(flava_vqa_vocab_build(&v, &vq, 100), FLAVA_OK);
    ck_assert_int_le(v.n, 1 + 10 + 2 + 5); /* nothing, ten items, yes/no, 0-4 */
    flava_vqa_vocab_free(&v);
    flava_vqa_free(&vq);
    flava_imagetext_free(&it);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[2][1 << 16];
    static int k;
    char *b = buf[k++ % 2];
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

START_TEST(test_scenes_read_back)
{
    make_tmp();
    flava_scenes_opts o = {.fashion_mnist_dir = FMNIST, .out_dir = tmp, .n_train = 12,
                           .n_test = 5, .size = 64, .questions = 3, .seed = 5};
    ck_assert_msg(flava_scenes_generate(&o) == FLAVA_OK, "%s", flava_error_message());
    check_split("train", 12, 64);
    check_split("test", 5, 64);
    char a[600], b[600], again_dir[600];
    snprintf(a, sizeof a, "%s/train/captions.tsv", tmp);
    char *first = strdup(slurp(a));
    /* a scene does not depend on how many are generated; another seed differs */
    o.n_train = 3;
    o.n_test = 0;
    snprintf(again_dir, sizeof again_dir, "%s/again", tmp);
    o.out_dir = again_dir;
    ck_assert_int_eq(flava_scenes_generate(&o), FLAVA_OK);
    snprintf(b, sizeof b, "%s/again/train/captions.tsv", tmp);
    char *again = slurp(b);
    ck_assert_int_eq(strncmp(first, again, strlen(again)), 0);
    o.seed = 6;
    ck_assert_int_eq(flava_scenes_generate(&o), FLAVA_OK);
    ck_assert_int_ne(strncmp(first, slurp(b), strlen(again)), 0);
    free(first);
    o.size = 57;
    expect_error(flava_scenes_generate(&o), FLAVA_ERR_ARG, 1, "even");
    o.size = 56;
    o.fashion_mnist_dir = tmp;
    expect_error(flava_scenes_generate(&o), FLAVA_ERR_IO, 1, "train-images-idx3-ubyte.gz");
    remove_tmp();
}
END_TEST

/* The quarter of a size x size one-item scene that holds the item: the one
 * equal to `want` (the item as drawn, half x half) while the other three
 * are black; -1 when none or several are. */
static int scene_cell(const uint8_t *pix, int size, const uint8_t *want)
{
    const int half = size / 2;
    int found = -1;
    for (int c = 0; c < 4; c++) {
        int same = 1, black = 1;
        for (int y = 0; y < half; y++)
            for (int x = 0; x < half; x++) {
                const uint8_t v = pix[((c / 2) * half + y) * size + (c % 2) * half + x];
                same &= v == want[y * half + x];
                black &= v == 0;
            }
        if (same && !black) {
            if (found >= 0)
                return -1;
            found = c;
        } else if (!black) {
            return -1;
        }
    }
    return found;
}

START_TEST(test_scenes_one_item)
{
    flava_idx_set items, sc, again;
    ck_assert_msg(flava_idx_load(&items, FMNIST "/t10k-images-idx3-ubyte.gz",
                                 FMNIST "/t10k-labels-idx1-ubyte.gz") == FLAVA_OK, "%s",
                  flava_error_message());
    /* 56 px: each item copied unscaled into its cell, black elsewhere */
    static const char *names[4] = {"top left", "top right", "bottom left", "bottom right"};
    for (int c = 0; c < 4; c++) {
        int idx;
        ck_assert_int_eq(flava_scenes_cell_index(&idx, names[c], "k"), FLAVA_OK);
        ck_assert_int_eq(idx, c);
        ck_assert_msg(flava_scenes_one_item(&sc, &items, 40, 56, idx, 0, "k") == FLAVA_OK, "%s",
                      flava_error_message());
        ck_assert_int_eq(sc.n, 40);
        ck_assert_int_eq(sc.rows, 56);
        ck_assert_int_eq(sc.cols, 56);
        long bad = 0;
        for (long i = 0; i < 40; i++) {
            ck_assert_int_eq(sc.labels[i], items.labels[i]);
            for (int y = 0; y < 56; y++)
                for (int x = 0; x < 56; x++) {
                    const int iy = y - (c / 2) * 28, ix = x - (c % 2) * 28;
                    const int want = iy >= 0 && iy < 28 && ix >= 0 && ix < 28
                                         ? items.images[i * 784 + iy * 28 + ix]
                                         : 0;
                    bad += sc.images[(i * 56 + y) * 56 + x] != want;
                }
        }
        ck_assert_msg(bad == 0, "cell %d: %ld pixels differ from the composition", c, bad);
        flava_idx_set_free(&sc);
    }
    /* 64 px: the item resized to 32 (the resize is checked against PIL) */
    ck_assert_int_eq(flava_scenes_one_item(&sc, &items, 8, 64, 2, 0, "k"), FLAVA_OK);
    uint8_t cell[32 * 32];
    for (long i = 0; i < 8; i++) {
        ck_assert_int_eq(flava_image_resize(cell, 32, 32, items.images + i * 784, 28, 28, 1,
                                            FLAVA_RESAMPLE_BICUBIC), FLAVA_OK);
        ck_assert_int_eq(scene_cell(sc.images + i * 64 * 64, 64, cell), 2);
    }
    flava_idx_set_free(&sc);

    /* seeded cells: each item in one cell, as the seed and its index decide,
     * the same whatever the number of items; about a quarter per cell */
    ck_assert_int_eq(flava_scenes_one_item(&sc, &items, 0, 56, FLAVA_SCENES_SEEDED_CELL, 7, "k"),
                     FLAVA_OK);
    ck_assert_int_eq(sc.n, items.n);
    long count[4] = {0}, unknown = 0;
    int *cells = malloc(sizeof(int) * (size_t)items.n);
    ck_assert_ptr_nonnull(cells);
    for (long i = 0; i < items.n; i++) {
        cells[i] = scene_cell(sc.images + i * 56 * 56, 56, items.images + i * 784);
        if (cells[i] < 0)
            unknown++;
        else
            count[cells[i]]++;
    }
    ck_assert_int_le(unknown, 5); /* only a blank item has no cell */
    for (int c = 0; c < 4; c++) /* 2500 +- 150: 3.5 standard deviations */
        ck_assert_msg(labs(count[c] - items.n / 4) < 150, "cell %d holds %ld of %lld items", c,
                      count[c], (long long)items.n);
    ck_assert_int_eq(flava_scenes_one_item(&again, &items, 300, 56, FLAVA_SCENES_SEEDED_CELL, 7,
                                           "k"), FLAVA_OK);
    ck_assert_int_eq(memcmp(again.images, sc.images, (size_t)300 * 56 * 56), 0);
    flava_idx_set_free(&again);
    ck_assert_int_eq(flava_scenes_one_item(&again, &items, 300, 56, FLAVA_SCENES_SEEDED_CELL, 8,
                                           "k"), FLAVA_OK);
    long moved = 0;
    for (long i = 0; i < 300; i++)
        moved += cells[i] >= 0 &&
                 scene_cell(again.images + i * 56 * 56, 56, items.images + i * 784) != cells[i];
    ck_assert_msg(moved > 150 && moved < 300, "another seed moved %ld of 300 items", moved);
    flava_idx_set_free(&again);
    free(cells);
    flava_idx_set_free(&sc);

    /* errors name the key and what is expected */
    int idx, list[4], n;
    expect_error(flava_scenes_cell_index(&idx, "middle", "zeroshot.scene_cells"),
                 FLAVA_ERR_CONFIG, 3, "zeroshot.scene_cells", "'middle'",
                 "top left, top right, bottom left or bottom right");
    const char *two[] = {"bottom right", "top left"}, *bad_list[] = {"top left", "Top right"};
    ck_assert_int_eq(flava_scenes_cell_list(list, &n, two, 2, "k"), FLAVA_OK);
    ck_assert(n == 2 && list[0] == 3 && list[1] == 0);
    expect_error(flava_scenes_cell_list(list, &n, bad_list, 2, "lp.cells"), FLAVA_ERR_CONFIG, 2,
                 "lp.cells", "'Top right'");
    expect_error(flava_scenes_cell_list(list, &n, two, 0, "lp.cells"), FLAVA_ERR_CONFIG, 2,
                 "lp.cells", "expected 1 to 4");
    const int64_t bad_size[] = {57, 54, 4098, -56};
    for (int k = 0; k < 4; k++)
        expect_error(flava_scenes_one_item(&sc, &items, 4, bad_size[k], 0, 0, "data.x.scene_size"),
                     FLAVA_ERR_CONFIG, 3, "data.x.scene_size", "even side", "28x28");
    ck_assert_int_eq(flava_scenes_check_size(4096, 28, 28, "k"), FLAVA_OK);
    expect_error(flava_scenes_check_size(60, 28, 31, "k"), FLAVA_ERR_CONFIG, 1, "28x31");
    expect_error(flava_scenes_one_item(&sc, &items, 4, 56, 4, 0, "k"), FLAVA_ERR_ARG, 1, "cell 4");
    expect_error(flava_scenes_one_item(&sc, &items, items.n + 1, 56, 0, 0, "k"), FLAVA_ERR_ARG, 0);
    flava_idx_set_free(&items);
}
END_TEST


/* ---------------------------------------------------------------- batch loader */

/* Collects every batch of `epochs` epochs: labels, and pixel_values of the
 * first sample of each batch. */
typedef struct run_log {
    int32_t labels[64];
    float pixels[8][3 * 32 * 32];
    long steps;
} run_log;

static void run_loader(run_log *log, const flava_idx_set *d, long n, int threads, int prefetch,
                       int epochs)
{
    flava_loader_source src = {.n = n, .idx = d};
    flava_loader_opts o = {.batch_size = 4, .image_size = 32, .codebook_size = 16,
                           .shuffle = 1, .prefetch = prefetch, .threads = threads, .seed = 11};
    flava_loader *l;
    ck_assert_msg(flava_loader_open(&l, &src, NULL, &o) == FLAVA_OK, "%s", flava_error_message());
    ck_assert_int_eq(flava_loader_batches_per_epoch(l), (n + 3) / 4);
    memset(log, 0, sizeof *log);
    long seen = 0;
    for (long b = 0; b < epochs * flava_loader_batches_per_epoch(l); b++) {
        const flava_batch *batch;
        long epoch, step;
        ck_assert_int_eq(flava_loader_next(l, &batch, &epoch, &step), FLAVA_OK);
        ck_assert_int_eq(step, b);
        ck_assert_int_eq(epoch, b / flava_loader_batches_per_epoch(l));
        ck_assert_int_eq(batch->B, b % 3 == 2 ? 2 : 4);
        ck_assert_ptr_null(batch->input_ids);
        memcpy(log->labels + seen, batch->class_labels, sizeof(int32_t) * batch->B);
        memcpy(log->pixels[b], batch->pixel_values, sizeof log->pixels[0]);
        /* every sample is exactly its item preprocessed on its own */
        for (int i = 0; i < batch->B; i++) {
            long k = -1;
            for (long j = 0; j < n && k < 0; j++) {
                uint8_t rgb[28 * 28 * 3];
                for (int p = 0; p < 28 * 28; p++)
                    rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = d->images[j * 784 + p];
                flava_image img = {28, 28, rgb};
                float want[3 * 32 * 32], cb[3 * 16 * 16];
                ck_assert_int_eq(flava_image_preprocess(want, &img, 32, 0), FLAVA_OK);
                ck_assert_int_eq(flava_image_codebook(cb, &img, 16), FLAVA_OK);
                if (!memcmp(want, batch->pixel_values + i * 3 * 32 * 32, sizeof want) &&
                    !memcmp(cb, batch->codebook_pixel_values + i * 3 * 16 * 16, sizeof cb))
                    k = j;
            }
            ck_assert_msg(k >= 0, "batch %ld sample %d matches no item", b, i);
            ck_assert_int_eq(batch->class_labels[i], d->labels[k]);
        }
        seen += batch->B;
    }
    log->steps = seen;
    flava_loader_close(l);
}

START_TEST(test_loader_images_shuffled_independent_of_threads)
{
    flava_idx_set d;
    ck_assert_int_eq(flava_idx_load(&d, FMNIST "/t10k-images-idx3-ubyte.gz",
                                    FMNIST "/t10k-labels-idx1-ubyte.gz"), FLAVA_OK);
    static run_log a, b;
    run_loader(&a, &d, 10, 2, 2, 2);
    run_loader(&b, &d, 10, 1, 1, 2);
    ck_assert_int_eq(a.steps, 20);
    ck_assert_mem_eq(a.labels, b.labels, sizeof a.labels);
    ck_assert_mem_eq(a.pixels, b.pixels, sizeof a.pixels);
    /* each epoch holds every sample once, in an order that changes */
    int want[10] = {0}, e0[10] = {0}, e1[10] = {0};
    for (int i = 0; i < 10; i++) {
        want[d.labels[i]]++;
        e0[a.labels[i]]++;
        e1[a.labels[10 + i]]++;
    }
    ck_assert_mem_eq(want, e0, sizeof want);
    ck_assert_mem_eq(want, e1, sizeof want);
    ck_assert_int_ne(memcmp(a.labels, a.labels + 10, 10 * sizeof(int32_t)), 0);
    flava_idx_set_free(&d);
}
END_TEST

/* A stand-in tokenizer: one id per byte, text_b's bytes typed 1. */
static flava_status byte_encode(void *self, int32_t *ids, int32_t *types, int *len, int max_len,
                                const char *a, const char *b)
{
    (void)self;
    int n = 0;
    for (const char *p = a; *p && n < max_len; p++, n++) {
        ids[n] = (unsigned char)*p;
        types[n] = 0;
    }
    for (const char *p = b ? b : ""; *p && n < max_len; p++, n++) {
        ids[n] = (unsigned char)*p;
        types[n] = 1;
    }
    *len = n;
    return FLAVA_OK;
}

START_TEST(test_loader_texts_glue_vqa)
{
    /* plain texts: padding, truncation, mask */
    char *texts[3] = {"ab", "cdefghij", "k"};
    flava_loader_source src = {.n = 3, .texts = texts};
    flava_text_encoder enc = {byte_encode, NULL, -7};
    flava_loader_opts o = {.batch_size = 3, .max_text_len = 5, .prefetch = 1, .threads = 2};
    flava_loader *l;
    ck_assert_int_eq(flava_loader_open(&l, &src, &enc, &o), FLAVA_OK);
    const flava_batch *batch;
    long epoch, step;
    ck_assert_int_eq(flava_loader_next(l, &batch, &epoch, &step), FLAVA_OK);
    ck_assert_ptr_null(batch->pixel_values);
    ck_assert_ptr_null(batch->class_labels);
    int32_t ids[15] = {'a', 'b', -7, -7, -7, 'c', 'd', 'e', 'f', 'g', 'k', -7, -7, -7, -7};
    float mask[15] = {1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
    ck_assert_mem_eq(batch->input_ids, ids, sizeof ids);
    ck_assert_mem_eq(batch->attention_mask, mask, sizeof mask);
    ck_assert_int_eq(flava_loader_next(l, &batch, &epoch, &step), FLAVA_OK);
    ck_assert_int_eq(epoch, 1); /* unshuffled: the same batch again */
    ck_assert_mem_eq(batch->input_ids, ids, sizeof ids);
    flava_loader_close(l);

    /* GLUE pairs: the second sentence typed 1; labels and STS-B scores */
    flava_glue_set rte, stsb;
    load_glue(&rte, "rte", "train");
    load_glue(&stsb, "stsb", "dev");
    o.max_text_len = 160; /* holds both sentences of the first RTE examples */
    o.batch_size = 2;
    src = (flava_loader_source){.glue = &rte};
    ck_assert_int_eq(flava_loader_open(&l, &src, &enc, &o), FLAVA_OK);
    ck_assert_int_eq(flava_loader_next(l, &batch, &epoch, &step), FLAVA_OK);
    for (int i = 0; i < 2; i++) {
        int la = (int)strlen(rte.text_a[i]), lb = (int)strlen(rte.text_b[i]), r = i * 160;
        ck_assert_int_lt(la + lb, 160);
        ck_assert_int_eq(batch->input_ids[r], rte.text_a[i][0]);
        ck_assert_int_eq(batch->input_ids[r + la], rte.text_b[i][0]);
        ck_assert_int_eq(batch->token_type_ids[r + la - 1], 0);
        ck_assert_int_eq(batch->token_type_ids[r + la], 1);
        ck_assert_float_eq(batch->attention_mask[r + la + lb - 1], 1.0f);
        ck_assert_float_eq(batch->attention_mask[r + la + lb], 0.0f);
        ck_assert_int_eq(batch->class_labels[i], rte.labels[i]);
    }
    ck_assert_ptr_null(batch->regression_targets);
    flava_loader_close(l);
    src = (flava_loader_source){.glue = &stsb};
    ck_assert_int_eq(flava_loader_open(&l, &src, &enc, &o), FLAVA_OK);
    ck_assert_int_eq(flava_loader_batches_per_epoch(l), 3);
    ck_assert_int_eq(flava_loader_next(l, &batch, &epoch, &step), FLAVA_OK);
    ck_assert_ptr_null(batch->class_labels);
    ck_assert_float_eq(batch->regression_targets[1], 4.75f);
    flava_loader_close(l);
    flava_glue_free(&rte);
    flava_glue_free(&stsb);

    /* VQA: image, question and soft scores over the answer vocabulary */
    make_tmp();
    write_png_tmp("7.png");
    write_png_tmp("9.png");
    char q[512];
    snprintf(q, sizeof q, "%s", write_tmp("q.json", qjson, -1));
    const char *a = write_annotations("a.json", a70, a90, 9);
    flava_vqa_set vq;
    flava_vqa_vocab v;
    ck_assert_int_eq(flava_vqa_load(&vq, q, a, tmp, FLAVA_VQA_PNG), FLAVA_OK);
    ck_assert_int_eq(flava_vqa_vocab_build(&v, &vq, 5), FLAVA_OK);
    src = (flava_loader_source){.vqa = &vq, .answers = &v};
    o.image_size = 8;
    o.max_text_len = 16;
    ck_assert_int_eq(flava_loader_open(&l, &src, &enc, &o), FLAVA_OK);
    ck_assert_int_eq(flava_loader_next(l, &batch, &epoch, &step), FLAVA_OK);
    ck_assert_int_eq(batch->input_ids[16], 'H'); /* "How many?" */
    float want[10];
    flava_vqa_soft_scores(want, &v, &vq.q[0]);
    flava_vqa_soft_scores(want + 5, &v, &vq.q[1]);
    ck_assert_mem_eq(batch->vqa_targets, want, sizeof want);
    /* the black test images normalise to -mean/std */
    ck_assert_float_eq_tol(batch->pixel_values[2 * 64], -flava_image_mean[2] / flava_image_std[2],
                           1e-6);
    flava_loader_close(l);
    flava_vqa_vocab_free(&v);
    flava_vqa_free(&vq);
    remove_tmp();
}
END_TEST

START_TEST(test_loader_errors)
{
    make_tmp();
    write_png_tmp("a.png");
    write_tmp("broken.png", "\x89PNG\r\n\x1a\n broken", 16);
    const char *p = write_tmp("pairs.tsv", "filepath\ttitle\na.png\tfine\nbroken.png\tbad\n"
                                           "a.png\tfine\n", -1);
    flava_imagetext pairs;
    ck_assert_int_eq(flava_imagetext_load(&pairs, p, NULL, NULL), FLAVA_OK);
    flava_loader_source src = {.n = pairs.n, .pairs = &pairs};
    flava_text_encoder enc = {byte_encode, NULL, 0};
    flava_loader_opts o = {.batch_size = 3, .image_size = 16, .max_text_len = 4, .prefetch = 2,
                           .threads = 2};
    flava_loader *l;
    ck_assert_int_eq(flava_loader_open(&l, &src, &enc, &o), FLAVA_OK);
    const flava_batch *batch;
    long epoch, step;
    for (int k = 0; k < 2; k++) /* and it stays failed */
        expect_error(flava_loader_next(l, &batch, &epoch, &step), FLAVA_ERR_FORMAT, 3,
                     "batch 0 (epoch 0), sample 1", "broken.png", "corrupt PNG");
    flava_loader_close(l);
    expect_error(flava_loader_open(&l, &src, NULL, &o), FLAVA_ERR_ARG, 1, "text encoder");
    o.threads = 0;
    expect_error(flava_loader_open(&l, &src, &enc, &o), FLAVA_ERR_ARG, 1, "threads 0");
    o.threads = 1;
    o.drop_last = 1;
    o.batch_size = 4;
    expect_error(flava_loader_open(&l, &src, &enc, &o), FLAVA_ERR_ARG, 1, "no full batch");
    char *one[1] = {"x"};
    flava_loader_source texts = {.n = 1, .texts = one};
    o.batch_size = 1;
    expect_error(flava_loader_open(&l, &texts, &enc, &o), FLAVA_ERR_ARG, 1, "no images");
    texts.pairs = &pairs;
    expect_error(flava_loader_open(&l, &texts, &enc, &o), FLAVA_ERR_ARG, 1, "2 data sets");
    src.n = 4;
    expect_error(flava_loader_open(&l, &src, &enc, &o), FLAVA_ERR_ARG, 1, "set of 3");
    flava_imagetext_free(&pairs);
    remove_tmp();
}
END_TEST

static Suite *make_data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("readers");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_idx_fashion_mnist_test_split);
    tcase_add_test(tc, test_idx_plain_and_gzip_agree);
    tcase_add_test(tc, test_idx_malformed);
    tcase_add_test(tc, test_image_decode_matches_pil);
    tcase_add_test(tc, test_image_resize_matches_pil);
    tcase_add_test(tc, test_image_preprocess_matches_hf);
    tcase_add_test(tc, test_image_png_round_trip);
    tcase_add_test(tc, test_image_malformed);
    tcase_add_test(tc, test_imagetext_columns_by_name);
    tcase_add_test(tc, test_imagetext_malformed);
    tcase_add_test(tc, test_glue_every_task_and_split);
    tcase_add_test(tc, test_glue_official_metrics);
    tcase_add_test(tc, test_glue_malformed);
    tcase_add_test(tc, test_metrics_match_sklearn_scipy);
    tcase_add_test(tc, test_metrics_edge_cases);
    tcase_add_test(tc, test_vqa_normalize);
    tcase_add_test(tc, test_vqa_load_accuracy_vocab);
    tcase_add_test(tc, test_vqa_malformed);
    tcase_add_test(tc, test_vqa_answer_types_prior_predictions);
    tcase_add_test(tc, test_vqa_answer_types_errors);
    tcase_add_test(tc, test_scenes_read_back);
    tcase_add_test(tc, test_scenes_one_item);
    tcase_add_test(tc, test_loader_images_shuffled_independent_of_threads);
    tcase_add_test(tc, test_loader_texts_glue_vqa);
    tcase_add_test(tc, test_loader_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return test_run(make_data_suite());
}
