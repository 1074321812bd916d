/* tokenizer.h - one interface over both tokenizers: SentencePiece (a .model
 * file) and BERT WordPiece (a vocab.txt, or a folder holding one, as HF
 * publishes bert-base-uncased). Both must know [CLS], [SEP], [PAD], [MASK]
 * and an unknown token; models trained by flava_spm_train do.
 *
 * flava_tokenizer_encode lays a text or a pair out as the text encoder reads
 * it: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, token_type_ids 0 for the
 * first segment (with its [CLS] and [SEP]) and 1 for the second, attention
 * mask 1 on tokens and 0 on padding, truncated longest-first (as HF's
 * `truncation="longest_first"`: one token at a time from the end of the
 * longer part, from the second on a tie) and padded with [PAD] to max_len. */
#ifndef FLAVA_TOKENIZER_H
#define FLAVA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "clip_bpe.h"
#include "spm.h"
#include "status.h"
#include "wordpiece.h"

typedef enum flava_tokenizer_kind {
    FLAVA_TOKENIZER_WORDPIECE,
    FLAVA_TOKENIZER_SENTENCEPIECE,
    /* CLIP's byte-level BPE (clip_bpe.h): [CLS]/[SEP] are <|startoftext|>
     * and <|endoftext|>, padding and unknown pieces <|endoftext|> (as HF's
     * CLIPTokenizer), no [MASK] (mask_id -1); single texts only. Decoding
     * is not implemented (id_to_piece gives NULL). */
    FLAVA_TOKENIZER_CLIP_BPE,
} flava_tokenizer_kind;

typedef struct flava_tokenizer {
    flava_tokenizer_kind kind;
    flava_wordpiece *wp;  /* set for WordPiece */
    flava_spm *spm;       /* set for SentencePiece */
    flava_clip_bpe *bpe;  /* set for CLIP BPE */
    int32_t vocab_size;
    int32_t cls_id, sep_id, pad_id, mask_id, unk_id;
} flava_tokenizer;

/* path: a SentencePiece .model; CLIP's vocab.json (merges.txt beside
 * it) or a folder holding both; else a WordPiece vocab.txt or a folder
 * holding one. */
flava_status flava_tokenizer_load(flava_tokenizer **out, const char *path);
void flava_tokenizer_free(flava_tokenizer *tok);

/* The special ids in one array (cls, sep, pad, mask, unk): what MLM never
 * selects. */
enum { FLAVA_TOKENIZER_N_SPECIAL = 5 };
void flava_tokenizer_special_ids(int32_t *ids, const flava_tokenizer *tok);

const char *flava_tokenizer_id_to_piece(const flava_tokenizer *tok, int32_t id);

/* Plain token ids of a NUL-terminated UTF-8 text, no special tokens added;
 * special tokens written in the text ("a [MASK] b") are kept whole, as HF
 * does. ids: malloc'ed, release with free(). */
flava_status flava_tokenizer_tokenize(int32_t **ids, int64_t *n, const flava_tokenizer *tok,
                                      const char *text);

/* Text of ids; special tokens are left out when skip_special is set.
 * text: malloc'ed. */
flava_status flava_tokenizer_decode(char **text, const flava_tokenizer *tok, const int32_t *ids,
                                    int64_t n, int skip_special);

/* Fills max_len positions of each output (see above); b may be NULL.
 * *n_tokens (may be NULL) receives the count of non-padding positions. */
flava_status flava_tokenizer_encode(int32_t *input_ids, int32_t *token_type_ids,
                                    float *attention_mask, int64_t *n_tokens,
                                    const flava_tokenizer *tok, const char *a, const char *b,
                                    int64_t max_len);

/* The same layout without the padding: writes *len <= max_len positions.
 * Its signature is the batch loader's flava_text_encoder.encode, with self
 * a flava_tokenizer *. Safe to call from several threads at once: encoding
 * only reads the tokenizer. */
flava_status flava_tokenizer_encode_unpadded(void *self, int32_t *input_ids,
                                             int32_t *token_type_ids, int *len, int max_len,
                                             const char *a, const char *b);

#endif
