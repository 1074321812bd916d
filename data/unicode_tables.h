/* unicode_tables.h - the Unicode classes BERT's tokenizer needs, generated
 * from Python's unicodedata by data/gen_unicode_tables.py. Range tables are
 * sorted, inclusive [first, last] pairs. */
#ifndef FLAVA_UNICODE_TABLES_H
#define FLAVA_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* Punctuation: Unicode P* plus the ASCII symbol ranges BERT counts. */
extern const uint32_t flava_uni_punct[][2];
extern const size_t flava_uni_punct_count;
/* Whitespace: Zs, Zl, Zp plus tab, newline, carriage return (what is left
 * of Python's str.isspace() once control characters are gone). */
extern const uint32_t flava_uni_space[][2];
extern const size_t flava_uni_space_count;
/* Control: every C* category (Cc, Cf, Cn, Co, Cs, as HF's BERT tokenizer
 * counts them) except tab, newline, carriage return. */
extern const uint32_t flava_uni_control[][2];
extern const size_t flava_uni_control_count;
/* Characters that lower-casing + NFD + dropping Mn removes entirely. */
extern const uint32_t flava_uni_fold_drop[][2];
extern const size_t flava_uni_fold_drop_count;
/* Case_Ignorable, and Cased characters that are not case-ignorable: the
 * context of Python's final-sigma rule. */
extern const uint32_t flava_uni_case_ignorable[][2];
extern const size_t flava_uni_case_ignorable_count;
extern const uint32_t flava_uni_cased[][2];
extern const size_t flava_uni_cased_count;
/* {cp, out1, out2, out3}: what lower-casing + NFD + dropping Mn turns cp
 * into (unused outputs are 0), sorted by cp. Hangul syllables are not listed. */
extern const uint32_t flava_uni_fold_map[][4];
extern const size_t flava_uni_fold_map_count;

#endif
