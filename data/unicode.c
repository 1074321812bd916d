/* unicode.c - queries over the generated Unicode tables; see unicode.h. */
#include "unicode.h"

#include <stdlib.h>

static int cmp_range(const void *key, const void *row)
{
    uint32_t k = *(const uint32_t *)key;
    const uint32_t *r = row;
    return k < r[0] ? -1 : k > r[1];
}

/* Rows of the mapping tables start with the code point they map. */
static int cmp_first(const void *key, const void *row)
{
    uint32_t k = *(const uint32_t *)key, r = *(const uint32_t *)row;
    return k < r ? -1 : k > r;
}

int flava_uni_in_ranges(const uint32_t (*ranges)[2], size_t n, uint32_t c)
{
    return bsearch(&c, ranges, n, sizeof *ranges, cmp_range) != NULL;
}

const uint32_t *flava_uni_lookup(const void *rows, size_t n, size_t row_size, uint32_t key)
{
    return bsearch(&key, rows, n, row_size, cmp_first);
}

/* The range table of each class, in flava_uni_class order. */
static const struct {
    const uint32_t (*ranges)[2];
    const size_t *count;
} classes[] = {
    {flava_uni_letter, &flava_uni_letter_count},
    {flava_uni_number, &flava_uni_number_count},
    {flava_uni_punct, &flava_uni_punct_count},
    {flava_uni_control, &flava_uni_control_count},
    {flava_uni_nonspacing, &flava_uni_nonspacing_count},
    {flava_uni_space, &flava_uni_space_count},
    {flava_uni_case_ignorable, &flava_uni_case_ignorable_count},
    {flava_uni_cased, &flava_uni_cased_count},
};

int flava_uni_is(flava_uni_class cls, uint32_t c)
{
    return flava_uni_in_ranges(classes[cls].ranges, *classes[cls].count, c);
}

/* Capital sigma at i is final when a cased letter precedes it and none
 * follows it, case-ignorable characters skipped (Python's rule). */
static int final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && flava_uni_is(FLAVA_UNI_CASE_IGNORABLE, s[j - 1]))
        j--;
    if (j == 0 || !flava_uni_is(FLAVA_UNI_CASED, s[j - 1]))
        return 0;
    for (j = i + 1; j < n && flava_uni_is(FLAVA_UNI_CASE_IGNORABLE, s[j]); j++)
        ;
    return j == n || !flava_uni_is(FLAVA_UNI_CASED, s[j]);
}

int flava_uni_lower(uint32_t out[2], const uint32_t *s, size_t n, size_t i)
{
    uint32_t c = s[i];
    if (c == 0x3A3 && final_sigma(s, n, i)) {
        out[0] = 0x3C2;
        return 1;
    }
    const uint32_t *m = flava_uni_lookup(flava_uni_lower_map, flava_uni_lower_map_count,
                                         sizeof *flava_uni_lower_map, c);
    if (!m) {
        out[0] = c;
        return 1;
    }
    out[0] = m[1];
    out[1] = m[2];
    return out[1] ? 2 : 1;
}

/* Appends the full decomposition of c at out + k; returns the new count.
 * Each level is canonically ordered already (gen_unicode.py checks the
 * result against NFD), so no reordering is needed. */
static int decompose_into(uint32_t *out, int k, uint32_t c)
{
    const uint32_t *m = flava_uni_lookup(flava_uni_decomp, flava_uni_decomp_count,
                                         sizeof *flava_uni_decomp, c);
    if (!m) {
        out[k] = c;
        return k + 1;
    }
    k = decompose_into(out, k, m[1]);
    return m[2] ? decompose_into(out, k, m[2]) : k;
}

int flava_uni_decompose(uint32_t out[FLAVA_UNI_MAX_DECOMP], uint32_t c)
{
    if (c >= 0xAC00 && c <= 0xD7A3) { /* Hangul syllable: L V (T) jamo */
        uint32_t s = c - 0xAC00;
        out[0] = 0x1100 + s / 588;
        out[1] = 0x1161 + (s % 588) / 28;
        out[2] = 0x11A7 + s % 28;
        return s % 28 ? 3 : 2;
    }
    return decompose_into(out, 0, c);
}
