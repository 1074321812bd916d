/* clip_unicode.h - the Unicode and HTML facts CLIP's text clean-up and
 * pre-tokeniser need, generated from Python by data/gen_clip_unicode.py.
 * Range tables are sorted, inclusive [first, last] pairs. */
#ifndef FLAVA_CLIP_UNICODE_H
#define FLAVA_CLIP_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* \p{L} and \p{N}: every L* and N* category. */
extern const uint32_t flava_clip_letter[][2];
extern const size_t flava_clip_letter_count;
extern const uint32_t flava_clip_number[][2];
extern const size_t flava_clip_number_count;
/* What Python's str.isspace() (and so re's \s) accepts. */
extern const uint32_t flava_clip_space[][2];
extern const size_t flava_clip_space_count;
/* The two properties of str.lower()'s final-sigma rule: case-ignorable,
 * and cased but not case-ignorable. */
extern const uint32_t flava_clip_case_ignorable[][2];
extern const size_t flava_clip_case_ignorable_count;
extern const uint32_t flava_clip_cased[][2];
extern const size_t flava_clip_cased_count;
/* {cp, lower1, lower2}: str.lower() of each character it changes (lower2
 * 0 unless two characters, as for U+0130), sorted by cp. Capital sigma's
 * entry is its non-final form. */
extern const uint32_t flava_clip_lower[][3];
extern const size_t flava_clip_lower_count;

/* html.unescape(): numeric references it remaps ({number, cp}, sorted:
 * NUL, CR and the windows-1252 range 0x80-0x9F), the numbers it drops
 * (ranges), and the HTML5 named entities ({name, {cp1, cp2 or 0}}, sorted
 * by strcmp; a name without ';' is one HTML accepts without it). */
extern const uint32_t flava_clip_charref[][2];
extern const size_t flava_clip_charref_count;
extern const uint32_t flava_clip_bad_charref[][2];
extern const size_t flava_clip_bad_charref_count;
typedef struct flava_clip_entity {
    const char *name;
    uint32_t cp[2];
} flava_clip_entity;
extern const flava_clip_entity flava_clip_html5[];
extern const size_t flava_clip_html5_count;

#endif
