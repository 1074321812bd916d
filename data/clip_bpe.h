/* clip_bpe.h - CLIP's tokeniser (HF CLIPTokenizer, OpenAI's
 * simple_tokenizer): byte-level BPE read from HF's vocab.json and
 * merges.txt.
 *
 * A text is cleaned as CLIP cleans it, without ftfy (not available here):
 * html.unescape twice (HTML5 named entities and numeric references,
 * exactly as Python's html module), runs of whitespace (str.isspace)
 * collapsed to one space and the ends stripped, then str.lower() (with its
 * final-sigma rule). It is then split by CLIP's pattern
 *   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * with the Unicode classes of Python's unicodedata 14.0 (all scripts); each
 * piece is UTF-8 encoded, its bytes mapped to CLIP's printable characters,
 * "</w>" appended to its last one, and merged pair by pair, the pair of
 * lowest merges.txt rank first. A literal <|startoftext|> or <|endoftext|>
 * in the text is that special token; a piece missing from the vocabulary
 * becomes <|endoftext|>, HF's unknown token.
 *
 * Not done (ftfy's share of the clean-up): mojibake repair, NFC
 * normalisation, curly-quote, ligature and full-width folding. Texts that
 * need those tokenise differently from OpenAI's/HF's with ftfy installed. */
#ifndef FLAVA_CLIP_BPE_H
#define FLAVA_CLIP_BPE_H

#include <stdint.h>

#include "status.h"

enum { FLAVA_CLIP_CONTEXT_LENGTH = 77 };

typedef struct flava_clip_bpe flava_clip_bpe;

/* Reads HF's vocab.json (token -> id, ids 0..count-1 each once, with
 * <|startoftext|> and <|endoftext|>) and merges.txt (an optional
 * "#version" first line, then one "a b" pair per line, rank = order). */
flava_status flava_clip_bpe_load(flava_clip_bpe **out, const char *vocab_json,
                                 const char *merges_txt);
void flava_clip_bpe_free(flava_clip_bpe *bpe);

int32_t flava_clip_bpe_vocab_size(const flava_clip_bpe *bpe);
int32_t flava_clip_bpe_sot_id(const flava_clip_bpe *bpe);
int32_t flava_clip_bpe_eot_id(const flava_clip_bpe *bpe);

/* The clean-up above of a NUL-terminated UTF-8 text; *out is malloc'ed
 * UTF-8. Invalid UTF-8 is FLAVA_ERR_FORMAT naming the byte offset. */
flava_status flava_clip_bpe_clean(char **out, const char *text);

/* The token ids of a text, without <|startoftext|>/<|endoftext|> around
 * them; *ids is malloc'ed (release with free()). */
flava_status flava_clip_bpe_tokenize(int32_t **ids, int64_t *n, const flava_clip_bpe *bpe,
                                     const char *text);

/* The text encoder's input, as clip.tokenize(truncate=True) and HF's
 * tokenizer(padding="max_length", truncation=True): <|startoftext|> ids
 * <|endoftext|>, cut to context_length keeping <|endoftext|> last, padded
 * with pad_id (HF pads with <|endoftext|>, OpenAI's clip.tokenize with 0);
 * attention_mask 1 on tokens, 0 on padding. *n_tokens (may be NULL) gets
 * the number of non-padding positions. */
flava_status flava_clip_bpe_encode(int32_t *input_ids, float *attention_mask, int64_t *n_tokens,
                                   const flava_clip_bpe *bpe, const char *text,
                                   int64_t context_length, int32_t pad_id);

#endif
