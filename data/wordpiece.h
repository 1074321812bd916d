/* wordpiece.h - BERT's uncased WordPiece tokenizer (as bert-base-uncased,
 * what HF FLAVA checkpoints expect) over a vocab.txt, one token per line,
 * the line number (from 0) being the id.
 *
 * Text goes through BERT's basic tokenizer: control characters dropped,
 * whitespace normalised, CJK ideographs split off, lower-casing (as Python's
 * str.lower(), final sigma included), NFD with
 * nonspacing marks removed (all of Unicode, from Python's unicodedata tables),
 * punctuation split (ASCII symbol ranges and Unicode P*); then each word is
 * split greedily longest-match-first into pieces with `##` continuations,
 * [UNK] for a word over 100 characters or with no full match. Input is
 * UTF-8; invalid UTF-8 is an error naming the byte offset. Special tokens
 * written in the text (e.g. "[MASK]") are text here; flava_tokenizer_tokenize
 * keeps them whole. */
#ifndef FLAVA_WORDPIECE_H
#define FLAVA_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct flava_wordpiece flava_wordpiece;

flava_status flava_wordpiece_load(flava_wordpiece **out, const char *vocab_path);
void flava_wordpiece_free(flava_wordpiece *wp);

int32_t flava_wordpiece_vocab_size(const flava_wordpiece *wp);
int32_t flava_wordpiece_piece_to_id(const flava_wordpiece *wp, const char *piece); /* -1 if absent */
const char *flava_wordpiece_id_to_piece(const flava_wordpiece *wp, int32_t id);    /* NULL if out of range */

/* ids: malloc'ed, release with free(). `len` bytes of `text` are read. */
flava_status flava_wordpiece_encode(int32_t **ids, int64_t *n, const flava_wordpiece *wp,
                                    const char *text, size_t len);
/* Pieces joined by spaces with the `##` joins undone, as HF's BERT tokenizer
 * turns tokens back into a string. text: malloc'ed. */
flava_status flava_wordpiece_decode(char **text, const flava_wordpiece *wp, const int32_t *ids,
                                    int64_t n);

/* Strict UTF-8 decoding (no overlong forms, surrogates or values past
 * U+10FFFF). cps: malloc'ed, n code points. */
flava_status flava_utf8_decode(uint32_t **cps, size_t *n, const char *text, size_t len);
/* Writes the 1-4 UTF-8 bytes of code point c to out; returns how many. */
size_t flava_utf8_encode(char *out, uint32_t c);

#endif
