/* tokenizer.c - WordPiece or SentencePiece behind one interface, and the
 * [CLS] a [SEP] b [SEP] layout with truncation and padding. */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int32_t piece_id(const flava_tokenizer *tok, const char *piece)
{
    return tok->kind == FLAVA_TOKENIZER_WORDPIECE ? flava_wordpiece_piece_to_id(tok->wp, piece)
                                                  : flava_spm_piece_to_id(tok->spm, piece);
}

static flava_status find_specials(flava_tokenizer *tok, const char *path)
{
    static const char *names[] = {"[CLS]", "[SEP]", "[PAD]", "[MASK]"};
    int32_t *slots[] = {&tok->cls_id, &tok->sep_id, &tok->pad_id, &tok->mask_id};
    for (int i = 0; i < 4; i++)
        if ((*slots[i] = piece_id(tok, names[i])) < 0)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "tokenizer %s has no %s token", path, names[i]);
    /* SentencePiece models not trained here may call it <unk>. */
    tok->unk_id = piece_id(tok, "[UNK]");
    if (tok->unk_id < 0 && tok->kind == FLAVA_TOKENIZER_SENTENCEPIECE)
        tok->unk_id = piece_id(tok, "<unk>");
    if (tok->unk_id < 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "tokenizer %s has no [UNK] token", path);
    return FLAVA_OK;
}

/* CLIP's files: path is vocab.json or a folder holding it, merges.txt
 * beside it. 1 when they are there. */
static int clip_files(char *vocab, char *merges, size_t cap, const char *path)
{
    struct stat st;
    const int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir)
        snprintf(vocab, cap, "%s/vocab.json", path);
    else if (ends_with(path, "vocab.json"))
        snprintf(vocab, cap, "%s", path);
    else
        return 0;
    const char *slash = strrchr(vocab, '/');
    snprintf(merges, cap, "%.*smerges.txt", slash ? (int)(slash - vocab + 1) : 0, vocab);
    return stat(vocab, &st) == 0 && stat(merges, &st) == 0;
}

static flava_status load_clip_bpe(flava_tokenizer *tok, const char *vocab, const char *merges)
{
    tok->kind = FLAVA_TOKENIZER_CLIP_BPE;
    FLAVA_TRY(flava_clip_bpe_load(&tok->bpe, vocab, merges));
    tok->vocab_size = flava_clip_bpe_vocab_size(tok->bpe);
    tok->cls_id = flava_clip_bpe_sot_id(tok->bpe);
    tok->sep_id = tok->pad_id = tok->unk_id = flava_clip_bpe_eot_id(tok->bpe);
    tok->mask_id = -1;
    return FLAVA_OK;
}

flava_status flava_tokenizer_load(flava_tokenizer **out, const char *path)
{
    *out = NULL;
    flava_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate a tokenizer");
    flava_status s;
    struct stat st;
    char vocab_json[4096], merges[4096];
    if (clip_files(vocab_json, merges, sizeof vocab_json, path)) {
        s = load_clip_bpe(tok, vocab_json, merges);
    } else if (ends_with(path, ".model")) {
        tok->kind = FLAVA_TOKENIZER_SENTENCEPIECE;
        s = flava_spm_load(&tok->spm, path);
        if (s == FLAVA_OK)
            tok->vocab_size = flava_spm_vocab_size(tok->spm);
    } else {
        tok->kind = FLAVA_TOKENIZER_WORDPIECE;
        char vocab[4096];
        int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        if (is_dir && snprintf(vocab, sizeof vocab, "%s/vocab.txt", path) >= (int)sizeof vocab)
            s = FLAVA_ERROR(FLAVA_ERR_ARG, "path too long: %s", path);
        else
            s = flava_wordpiece_load(&tok->wp, is_dir ? vocab : path);
        if (s == FLAVA_OK)
            tok->vocab_size = flava_wordpiece_vocab_size(tok->wp);
    }
    if (s == FLAVA_OK && tok->kind != FLAVA_TOKENIZER_CLIP_BPE)
        s = find_specials(tok, path);
    if (s != FLAVA_OK) {
        flava_tokenizer_free(tok);
        return s;
    }
    *out = tok;
    return FLAVA_OK;
}

void flava_tokenizer_free(flava_tokenizer *tok)
{
    if (!tok)
        return;
    flava_wordpiece_free(tok->wp);
    flava_spm_free(tok->spm);
    flava_clip_bpe_free(tok->bpe);
    free(tok);
}

void flava_tokenizer_special_ids(int32_t *ids, const flava_tokenizer *tok)
{
    ids[0] = tok->cls_id;
    ids[1] = tok->sep_id;
    ids[2] = tok->pad_id;
    ids[3] = tok->mask_id;
    ids[4] = tok->unk_id;
}

const char *flava_tokenizer_id_to_piece(const flava_tokenizer *tok, int32_t id)
{
    switch (tok->kind) {
    case FLAVA_TOKENIZER_WORDPIECE:
        return flava_wordpiece_id_to_piece(tok->wp, id);
    case FLAVA_TOKENIZER_SENTENCEPIECE:
        return flava_spm_id_to_piece(tok->spm, id);
    default:
        return NULL;
    }
}

/* WordPiece text with special tokens written out ("the [MASK] sat"), as HF
 * keeps its special tokens whole: the pieces between them are tokenized. */
static flava_status wordpiece_with_specials(int32_t **ids, int64_t *n, const flava_tokenizer *tok,
                                            const char *text, size_t len)
{
    static const char *names[] = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"};
    int32_t special[FLAVA_TOKENIZER_N_SPECIAL];
    flava_tokenizer_special_ids(special, tok);
    int32_t *out = malloc((len + 1) * sizeof *out); /* at most one id per byte */
    if (!out)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot tokenize %zu bytes", len);
    int64_t k = 0;
    flava_status s = FLAVA_OK;
    const char *p = text, *end = text + len;
    while (s == FLAVA_OK && p < end) {
        const char *hit = end;
        int which = -1;
        for (int i = 0; i < FLAVA_TOKENIZER_N_SPECIAL; i++) {
            const char *h = strstr(p, names[i]);
            if (h && h < hit)
                hit = h, which = i;
        }
        int32_t *piece;
        int64_t np;
        s = flava_wordpiece_encode(&piece, &np, tok->wp, p, (size_t)(hit - p));
        if (s == FLAVA_OK) {
            memcpy(out + k, piece, (size_t)np * sizeof *piece);
            k += np;
            free(piece);
        }
        if (which >= 0)
            out[k++] = special[which];
        p = which >= 0 ? hit + strlen(names[which]) : end;
    }
    if (s != FLAVA_OK) {
        free(out);
        return s;
    }
    *ids = out;
    *n = k;
    return FLAVA_OK;
}

flava_status flava_tokenizer_tokenize(int32_t **ids, int64_t *n, const flava_tokenizer *tok,
                                      const char *text)
{
    *ids = NULL;
    *n = 0;
    size_t len = strlen(text);
    /* Checked here for the whole text, so both kinds fail alike and the
     * offset counts from the start of the text. */
    uint32_t *cps;
    size_t ncp;
    FLAVA_TRY(flava_utf8_decode(&cps, &ncp, text, len));
    free(cps);
    if (tok->kind == FLAVA_TOKENIZER_WORDPIECE)
        return wordpiece_with_specials(ids, n, tok, text, len);
    if (tok->kind == FLAVA_TOKENIZER_CLIP_BPE)
        return flava_clip_bpe_tokenize(ids, n, tok->bpe, text);
    /* SentencePiece matches the special tokens itself (user symbols). */
    return flava_spm_encode_ids(ids, n, tok->spm, text);
}

static int is_special(const flava_tokenizer *tok, int32_t id)
{
    return id == tok->cls_id || id == tok->sep_id || id == tok->pad_id || id == tok->mask_id;
}

flava_status flava_tokenizer_decode(char **text, const flava_tokenizer *tok, const int32_t *ids,
                                    int64_t n, int skip_special)
{
    if (tok->kind == FLAVA_TOKENIZER_CLIP_BPE)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "decoding CLIP BPE ids is not implemented");
    int32_t *kept = malloc((size_t)(n > 0 ? n : 1) * sizeof *kept);
    if (!kept)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot decode %lld ids", (long long)n);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (!skip_special || !is_special(tok, ids[i]))
            kept[k++] = ids[i];
    flava_status s = tok->kind == FLAVA_TOKENIZER_WORDPIECE
                         ? flava_wordpiece_decode(text, tok->wp, kept, k)
                         : flava_spm_decode(text, tok->spm, kept, k);
    free(kept);
    return s;
}

/* [CLS] a [SEP] (b [SEP]) truncated longest-first into max_len positions;
 * *n receives how many were written. */
static flava_status lay_out(int32_t *input_ids, int32_t *token_type_ids, int64_t *n,
                            const flava_tokenizer *tok, const char *a, const char *b,
                            int64_t max_len)
{
    if (b && tok->kind == FLAVA_TOKENIZER_CLIP_BPE)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "CLIP BPE encodes single texts, not pairs");
    int64_t specials = b ? 3 : 2;
    if (max_len < specials)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "text length %lld cannot hold the %lld special tokens "
                           "of a %s", (long long)max_len, (long long)specials,
                           b ? "pair" : "single text");
    int32_t *ia = NULL, *ib = NULL;
    int64_t na = 0, nb = 0;
    flava_status s = flava_tokenizer_tokenize(&ia, &na, tok, a);
    if (s == FLAVA_OK && b)
        s = flava_tokenizer_tokenize(&ib, &nb, tok, b);
    if (s != FLAVA_OK) {
        free(ia);
        return s;
    }
    while (na + nb > max_len - specials) {
        if (na > nb)
            na--;
        else
            nb--;
    }
    int64_t t = 0;
    input_ids[t] = tok->cls_id, token_type_ids[t++] = 0;
    for (int64_t i = 0; i < na; i++)
        input_ids[t] = ia[i], token_type_ids[t++] = 0;
    input_ids[t] = tok->sep_id, token_type_ids[t++] = 0;
    if (b) {
        for (int64_t i = 0; i < nb; i++)
            input_ids[t] = ib[i], token_type_ids[t++] = 1;
        input_ids[t] = tok->sep_id, token_type_ids[t++] = 1;
    }
    *n = t;
    free(ia);
    free(ib);
    return FLAVA_OK;
}

flava_status flava_tokenizer_encode(int32_t *input_ids, int32_t *token_type_ids,
                                    float *attention_mask, int64_t *n_tokens,
                                    const flava_tokenizer *tok, const char *a, const char *b,
                                    int64_t max_len)
{
    int64_t t;
    FLAVA_TRY(lay_out(input_ids, token_type_ids, &t, tok, a, b, max_len));
    for (int64_t i = 0; i < max_len; i++) {
        attention_mask[i] = i < t ? 1.0f : 0.0f;
        if (i >= t)
            input_ids[i] = tok->pad_id, token_type_ids[i] = 0;
    }
    if (n_tokens)
        *n_tokens = t;
    return FLAVA_OK;
}

flava_status flava_tokenizer_encode_unpadded(void *self, int32_t *input_ids,
                                             int32_t *token_type_ids, int *len, int max_len,
                                             const char *a, const char *b)
{
    int64_t t;
    FLAVA_TRY(lay_out(input_ids, token_type_ids, &t, self, a, b, max_len));
    *len = (int)t;
    return FLAVA_OK;
}
