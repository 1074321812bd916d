/* spm.h - SentencePiece through a C API. The only C++ in the tree sits
 * behind these functions (spm_wrapper.cc); every exception and every
 * SentencePiece status becomes a flava_status with a message.
 *
 * Models trained here reserve the special tokens as user-defined symbols so
 * their ids are fixed: [UNK]=0, [CLS]=1, [SEP]=2, [PAD]=3, [MASK]=4, with no
 * BOS/EOS. Arrays handed out by the encoders are malloc'ed: release ids and
 * text with free(), pieces with flava_spm_pieces_free(). */
#ifndef FLAVA_SPM_H
#define FLAVA_SPM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "status.h" /* inside the block: status.h has no C++ guards */

typedef struct flava_spm flava_spm;

typedef enum flava_spm_kind { FLAVA_SPM_UNIGRAM, FLAVA_SPM_BPE } flava_spm_kind;

typedef struct flava_spm_train_opts {
    const char *const *inputs; /* text files, one sentence per line */
    int n_inputs;
    const char *model_prefix;  /* writes <prefix>.model and <prefix>.vocab */
    flava_spm_kind kind;
    int vocab_size;
    int max_sentences;         /* lines sampled for training; 0 = all */
} flava_spm_train_opts;

flava_status flava_spm_train(const flava_spm_train_opts *opts);

flava_status flava_spm_load(flava_spm **out, const char *path);
void flava_spm_free(flava_spm *spm);

int32_t flava_spm_vocab_size(const flava_spm *spm);
/* Id of a piece, or -1 when the model does not have it. */
int32_t flava_spm_piece_to_id(const flava_spm *spm, const char *piece);
/* The piece of an id; NULL when out of range. Valid while the model lives. */
const char *flava_spm_id_to_piece(const flava_spm *spm, int32_t id);

flava_status flava_spm_encode_ids(int32_t **ids, int64_t *n, const flava_spm *spm,
                                  const char *text);
flava_status flava_spm_encode_pieces(char ***pieces, int64_t *n, const flava_spm *spm,
                                     const char *text);
void flava_spm_pieces_free(char **pieces, int64_t n);
flava_status flava_spm_decode(char **text, const flava_spm *spm, const int32_t *ids, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
