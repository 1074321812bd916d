/* unicode.h - the Unicode facts the tokenizers take from Python (Unicode
 * 14.0): character classes, str.lower() with its final-sigma rule, and
 * canonical decomposition (NFD), as queries over the tables that
 * data/gen_unicode.py generates into data/unicode_data.c; plus the tables
 * of html.unescape() that CLIP's text clean-up needs. */
#ifndef FLAVA_UNICODE_H
#define FLAVA_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Whether c lies in one of the n sorted, inclusive [first, last] ranges. */
int flava_uni_in_ranges(const uint32_t (*ranges)[2], size_t n, uint32_t c);
/* The row of a table of n rows of row_size bytes, sorted by their first
 * uint32_t, that starts with key; NULL if none. */
const uint32_t *flava_uni_lookup(const void *rows, size_t n, size_t row_size, uint32_t key);

/* The character classes: general categories L*, N*, P*, C* (Cc, Cf, Cn,
 * Co, Cs) and Mn; what Python's str.isspace() (and so re's \s and
 * str.split()) accepts; and the two properties of str.lower()'s
 * final-sigma rule, case-ignorable and cased-but-not-case-ignorable. */
typedef enum flava_uni_class {
    FLAVA_UNI_LETTER,
    FLAVA_UNI_NUMBER,
    FLAVA_UNI_PUNCT,
    FLAVA_UNI_CONTROL,
    FLAVA_UNI_NONSPACING,
    FLAVA_UNI_SPACE,
    FLAVA_UNI_CASE_IGNORABLE,
    FLAVA_UNI_CASED,
} flava_uni_class;
int flava_uni_is(flava_uni_class cls, uint32_t c);

/* str.lower() of s[i], s being the n code points around it that decide
 * Python's final-sigma rule: writes 1 or 2 code points (2 for U+0130) to
 * out and returns how many. */
int flava_uni_lower(uint32_t out[2], const uint32_t *s, size_t n, size_t i);

/* NFD of the single character c (Hangul syllables included): writes 1 to
 * FLAVA_UNI_MAX_DECOMP code points to out and returns how many. */
enum { FLAVA_UNI_MAX_DECOMP = 4 };
int flava_uni_decompose(uint32_t out[FLAVA_UNI_MAX_DECOMP], uint32_t c);

/* ---- the generated tables (data/unicode_data.c) ----
 * Range tables (one per flava_uni_class) are sorted, inclusive [first,
 * last] pairs; mapping tables are sorted by their first column. */
extern const uint32_t flava_uni_letter[][2];
extern const size_t flava_uni_letter_count;
extern const uint32_t flava_uni_number[][2];
extern const size_t flava_uni_number_count;
extern const uint32_t flava_uni_punct[][2];
extern const size_t flava_uni_punct_count;
extern const uint32_t flava_uni_control[][2];
extern const size_t flava_uni_control_count;
extern const uint32_t flava_uni_nonspacing[][2];
extern const size_t flava_uni_nonspacing_count;
extern const uint32_t flava_uni_space[][2];
extern const size_t flava_uni_space_count;
extern const uint32_t flava_uni_case_ignorable[][2];
extern const size_t flava_uni_case_ignorable_count;
extern const uint32_t flava_uni_cased[][2];
extern const size_t flava_uni_cased_count;
/* {cp, lower1, lower2}: str.lower() of each character it changes (lower2
 * 0 unless two characters, as for U+0130). Capital sigma's entry is its
 * non-final form. */
extern const uint32_t flava_uni_lower_map[][3];
extern const size_t flava_uni_lower_map_count;
/* {cp, d1, d2}: one level of canonical decomposition (d2 0 for a
 * singleton); Hangul syllables are decomposed algorithmically instead. */
extern const uint32_t flava_uni_decomp[][3];
extern const size_t flava_uni_decomp_count;

/* html.unescape(): numeric references it remaps ({number, cp}, sorted:
 * NUL, CR and the windows-1252 range 0x80-0x9F), the numbers it drops
 * (ranges), and the HTML5 named entities ({name, {cp1, cp2 or 0}}, sorted
 * by strcmp; a name without ';' is one HTML accepts without it). */
extern const uint32_t flava_html_charref[][2];
extern const size_t flava_html_charref_count;
extern const uint32_t flava_html_bad_charref[][2];
extern const size_t flava_html_bad_charref_count;
typedef struct flava_html_entity {
    const char *name;
    uint32_t cp[2];
} flava_html_entity;
extern const flava_html_entity flava_html5[];
extern const size_t flava_html5_count;

#endif
