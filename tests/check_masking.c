/* check_masking.c - MLM corruption statistics, BEiT block masks against the
 * Python rendering of BEiT's algorithm, ITM negatives. */
#include "testutil.h"

#include <string.h>

#include "masking.h"

/* ---- MLM ------------------------------------------------------------------ */

enum { T = 128, VOCAB = 1000, PAD = 0, UNK = 1, CLS = 2, SEP = 3, MASK = 4 };
static const int32_t specials[] = {PAD, UNK, CLS, SEP, MASK};

static const flava_mlm_config mlm_cfg = {
    .mask_prob = 0.15, .mask_id = MASK, .vocab_size = VOCAB, .special_ids = specials,
    .n_special = 5};

/* [CLS] words (some [UNK]) [SEP] then padding; `len` real positions. Every
 * other padded position holds a word id: the attention mask alone must keep
 * it out. */
static void make_sequence(int32_t *ids, float *att, int len, flava_rng *r)
{
    for (int t = 0; t < T; t++) {
        int word = t < len - 1 || (t >= len && t % 2);
        ids[t] = t == 0 ? CLS : t == len - 1 ? SEP : t >= len && !word ? PAD
                 : flava_rng_below(r, 20) == 0 ? UNK : 5 + (int32_t)flava_rng_below(r, VOCAB - 5);
        att[t] = t < len ? 1.0f : 0.0f;
    }
}

START_TEST(test_mlm_reproducible)
{
    int32_t ids[T], m1[T], m2[T], l1[T], l2[T];
    float att[T];
    flava_rng r, a, b;
    flava_rng_init(&r, 7, 0);
    make_sequence(ids, att, 100, &r);
    flava_rng_init(&a, 42, 3);
    flava_rng_init(&b, 42, 3);
    ck_assert_int_eq(flava_mlm_mask(m1, l1, NULL, ids, att, T, &mlm_cfg, &a), FLAVA_OK);
    ck_assert_int_eq(flava_mlm_mask(m2, l2, NULL, ids, att, T, &mlm_cfg, &b), FLAVA_OK);
    ck_assert_mem_eq(m1, m2, sizeof m1);
    ck_assert_mem_eq(l1, l2, sizeof l1);
    flava_rng_init(&b, 43, 3);
    ck_assert_int_eq(flava_mlm_mask(m2, l2, NULL, ids, att, T, &mlm_cfg, &b), FLAVA_OK);
    ck_assert_int_ne(memcmp(l1, l2, sizeof l1), 0);
}
END_TEST

START_TEST(test_mlm_statistics)
{
    int32_t ids[T], masked[T], labels[T];
    float att[T];
    flava_rng data, r;
    flava_rng_init(&data, 1, 0);
    flava_rng_init(&r, 2, 0);
    long candidates = 0, selected = 0, to_mask = 0, to_random = 0, kept = 0;
    for (int s = 0; s < 2000; s++) {
        int len = 20 + (int)flava_rng_below(&data, T - 20);
        make_sequence(ids, att, len, &data);
        int64_t n_sel;
        ck_assert_int_eq(flava_mlm_mask(masked, labels, &n_sel, ids, att, T, &mlm_cfg, &r),
                         FLAVA_OK);
        int64_t count = 0;
        for (int t = 0; t < T; t++) {
            int special = att[t] == 0.0f || ids[t] < 5;
            candidates += !special;
            if (labels[t] == FLAVA_IGNORE_INDEX) {
                ck_assert_int_eq(masked[t], ids[t]);
                continue;
            }
            ck_assert_msg(!special, "sequence %d position %d (id %d, attention %g) selected", s,
                          t, ids[t], att[t]);
            ck_assert_int_eq(labels[t], ids[t]);
            ck_assert(masked[t] >= 0 && masked[t] < VOCAB);
            count++;
            to_mask += masked[t] == MASK;
            to_random += masked[t] != MASK && masked[t] != ids[t];
            kept += masked[t] == ids[t];
        }
        ck_assert_int_eq(count, n_sel);
        selected += count;
    }
    double p = (double)selected / candidates;
    double fm = (double)to_mask / selected, fr = (double)to_random / selected,
           fk = (double)kept / selected;
    /* ~190k candidates, ~28k selected: the bands are > 4 standard deviations */
    ck_assert_msg(p > 0.145 && p < 0.155, "selected fraction %.4f", p);
    ck_assert_msg(fm > 0.79 && fm < 0.81, "[MASK] fraction %.4f", fm);
    ck_assert_msg(fr > 0.093 && fr < 0.107, "random fraction %.4f", fr);
    ck_assert_msg(fk > 0.093 && fk < 0.107, "kept fraction %.4f", fk);
}
END_TEST

START_TEST(test_mlm_at_least_one)
{
    /* three candidates: with p = 0.15 about 61% of draws select none */
    int32_t ids[T], masked[T], labels[T];
    float att[T];
    for (int t = 0; t < T; t++) {
        ids[t] = t == 0 ? CLS : t <= 3 ? 10 + t : t == 4 ? SEP : PAD;
        att[t] = t <= 4;
    }
    flava_rng r;
    flava_rng_init(&r, 5, 0);
    int hits[4] = {0};
    for (int s = 0; s < 3000; s++) {
        int64_t n;
        ck_assert_int_eq(flava_mlm_mask(masked, labels, &n, ids, att, T, &mlm_cfg, &r), FLAVA_OK);
        ck_assert_int_ge(n, 1);
        for (int t = 1; t <= 3; t++)
            hits[t] += labels[t] != FLAVA_IGNORE_INDEX;
    }
    for (int t = 1; t <= 3; t++) /* each position equally likely (~0.15 + 0.61/3) */
        ck_assert_msg(hits[t] > 1000 && hits[t] < 1300, "position %d selected %d times", t,
                      hits[t]);
    /* no candidates: nothing selected */
    for (int t = 1; t <= 3; t++)
        ids[t] = UNK;
    int64_t n;
    ck_assert_int_eq(flava_mlm_mask(masked, labels, &n, ids, att, T, &mlm_cfg, &r), FLAVA_OK);
    ck_assert_int_eq(n, 0);
    for (int t = 0; t < T; t++)
        ck_assert_int_eq(labels[t], FLAVA_IGNORE_INDEX);
    flava_mlm_config bad = mlm_cfg;
    bad.mask_prob = 1.5;
    ck_assert_int_eq(flava_mlm_mask(masked, labels, &n, ids, att, T, &bad, &r), FLAVA_ERR_ARG);
}
END_TEST

/* ---- MIM ------------------------------------------------------------------ */

START_TEST(test_mim_defaults_scale)
{
    flava_mim_config c = flava_mim_default_config(14, 14);
    ck_assert_int_eq(c.num_masked, 75);
    ck_assert_int_eq(c.min_block, 16);
    ck_assert_int_eq(c.attempts, 10);
    ck_assert_double_eq(c.min_aspect, 0.3);
    c = flava_mim_default_config(7, 7);
    ck_assert_int_eq(c.num_masked, 19);
    ck_assert_int_eq(c.min_block, 4);
    c = flava_mim_default_config(28, 28);
    ck_assert_int_eq(c.num_masked, 300);
    ck_assert_int_eq(c.min_block, 64);
    c = flava_mim_default_config(2, 2);
    ck_assert_int_eq(c.min_block, 1);
}
END_TEST

START_TEST(test_mim_matches_reference)
{
    char path[4096];
    FILE *f = fopen(test_path(path, sizeof path, "tests/fixtures/tok/mim_masks.txt"), "r");
    ck_assert_ptr_nonnull(f);
    char line[4096], bits[1024];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        int h, w, num, min_block, seed, count;
        ck_assert_int_eq(sscanf(line, "%d %d %d %d %d %d %1023s", &h, &w, &num, &min_block, &seed,
                                &count, bits), 7);
        flava_mim_config c = flava_mim_default_config(h, w);
        ck_assert_int_eq(c.num_masked, num);
        ck_assert_int_eq(c.min_block, min_block);
        uint8_t mask[1024];
        int n;
        flava_rng r;
        flava_rng_init(&r, (uint64_t)seed, 0);
        ck_assert_int_eq(flava_mim_mask(mask, &n, &c, &r), FLAVA_OK);
        ck_assert_msg(n == count, "%dx%d seed %d: %d masked, reference %d", h, w, seed, n, count);
        int sum = 0;
        for (int i = 0; i < h * w; i++) {
            ck_assert_msg(mask[i] == bits[i] - '0', "%dx%d seed %d: patch %d", h, w, seed, i);
            sum += mask[i];
        }
        ck_assert_int_eq(sum, n);
        ck_assert_int_le(n, num);
        rows++;
    }
    fclose(f);
    ck_assert_int_eq(rows, 24);
}
END_TEST

START_TEST(test_mim_statistics)
{
    flava_mim_config c = flava_mim_default_config(14, 14);
    uint8_t m1[196], m2[196];
    flava_rng r;
    flava_rng_init(&r, 11, 0);
    long total = 0, exact = 0;
    const int trials = 1000;
    for (int s = 0; s < trials; s++) {
        int n;
        ck_assert_int_eq(flava_mim_mask(m1, &n, &c, &r), FLAVA_OK);
        ck_assert_int_le(n, 75);
        ck_assert_int_ge(n, c.min_block - 4); /* the first block alone, up to rounding */
        total += n;
        exact += n == 75;
    }
    /* BEiT's generator falls short when the last blocks find no place:
     * over 10000 draws the mean is 74.47 and 66.7% reach 75 exactly */
    double mean = (double)total / trials;
    ck_assert_msg(mean > 74.0 && mean <= 75, "mean masked %.2f", mean);
    ck_assert_msg(exact > trials * 55 / 100, "exactly 75 in %ld of %d", exact, trials);
    flava_rng a, b;
    flava_rng_init(&a, 3, 9);
    flava_rng_init(&b, 3, 9);
    ck_assert_int_eq(flava_mim_mask(m1, NULL, &c, &a), FLAVA_OK);
    ck_assert_int_eq(flava_mim_mask(m2, NULL, &c, &b), FLAVA_OK);
    ck_assert_mem_eq(m1, m2, sizeof m1);
    c.num_masked = 197;
    ck_assert_int_eq(flava_mim_mask(m1, NULL, &c, &a), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "197 masked"));
}
END_TEST

/* ---- ITM ------------------------------------------------------------------ */

START_TEST(test_itm_negatives)
{
    enum { B = 8, BATCHES = 20000 };
    int32_t idx[B], lab[B];
    flava_rng r;
    flava_rng_init(&r, 4, 0);
    long swapped = 0, to[B] = {0};
    for (int k = 0; k < BATCHES; k++) {
        ck_assert_int_eq(flava_itm_negatives(idx, lab, B, 0.5, &r), FLAVA_OK);
        for (int i = 0; i < B; i++) {
            ck_assert(idx[i] >= 0 && idx[i] < B);
            ck_assert_int_eq(lab[i], idx[i] == i);
            swapped += lab[i] == 0;
        }
        if (lab[0] == 0)
            to[idx[0]]++;
    }
    double frac = (double)swapped / (B * BATCHES);
    ck_assert_msg(frac > 0.49 && frac < 0.51, "swapped fraction %.4f", frac);
    ck_assert_int_eq(to[0], 0);
    for (int j = 1; j < B; j++) /* ~10000 / 7 each */
        ck_assert_msg(to[j] > 1250 && to[j] < 1600, "sample 0 took caption %d %ld times", j, to[j]);
    ck_assert_int_eq(flava_itm_negatives(idx, lab, 1, 1.0, &r), FLAVA_OK);
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(lab[0], 1);
    ck_assert_int_eq(flava_itm_negatives(idx, lab, B, 1.0, &r), FLAVA_OK);
    for (int i = 0; i < B; i++)
        ck_assert(lab[i] == 0 && idx[i] != i);
    ck_assert_int_eq(flava_itm_negatives(idx, lab, B, -0.1, &r), FLAVA_ERR_ARG);
}
END_TEST

static Suite *make_masking_suite(void)
{
    Suite *s = suite_create("masking");
    TCase *tc = tcase_create("mlm");
    tcase_add_test(tc, test_mlm_reproducible);
    tcase_add_test(tc, test_mlm_statistics);
    tcase_add_test(tc, test_mlm_at_least_one);
    suite_add_tcase(s, tc);
    tc = tcase_create("mim");
    tcase_add_test(tc, test_mim_defaults_scale);
    tcase_add_test(tc, test_mim_matches_reference);
    tcase_add_test(tc, test_mim_statistics);
    suite_add_tcase(s, tc);
    tc = tcase_create("itm");
    tcase_add_test(tc, test_itm_negatives);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_masking_suite()); }
