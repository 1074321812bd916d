/* wordpiece.c - BERT's basic tokenizer and greedy WordPiece over a vocab. */
#include "wordpiece.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

enum { MAX_WORD_CHARS = 100 };

struct flava_wordpiece {
    char *arena;      /* every token, NUL-terminated, back to back */
    char **pieces;    /* id -> token */
    int32_t n;
    int32_t *table;   /* open addressing, -1 = empty */
    uint32_t mask;    /* table size - 1 */
    int32_t unk_id;
    char *path;
};

/* ---- Vocabulary hash ---------------------------------------------------- */

/* FNV-1a over an optional "##" prefix and the bytes. */
static uint32_t hash_piece(int cont, const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    if (cont)
        for (int i = 0; i < 2; i++)
            h = (h ^ (uint8_t)'#') * 16777619u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int piece_equals(const char *piece, int cont, const char *s, size_t len)
{
    if (cont) {
        if (piece[0] != '#' || piece[1] != '#')
            return 0;
        piece += 2;
    }
    return strncmp(piece, s, len) == 0 && piece[len] == '\0';
}

static int32_t lookup(const flava_wordpiece *wp, int cont, const char *s, size_t len)
{
    for (uint32_t i = hash_piece(cont, s, len) & wp->mask;; i = (i + 1) & wp->mask) {
        int32_t id = wp->table[i];
        if (id < 0)
            return -1;
        if (piece_equals(wp->pieces[id], cont, s, len))
            return id;
    }
}

static flava_status read_file(char **out, size_t *len, const char *path)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open vocabulary %s: %s", path, strerror(errno));
    flava_status s = FLAVA_OK;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *bigger = realloc(buf, cap *= 2);
        if (!bigger)
            free(buf);
        buf = bigger;
    }
    if (!buf)
        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot hold vocabulary %s in memory", path);
    else if (ferror(f))
        s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot read vocabulary %s: %s", path, strerror(errno));
    fclose(f);
    if (s != FLAVA_OK) {
        free(buf);
        return s;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return FLAVA_OK;
}

static flava_status build(flava_wordpiece *wp, size_t len)
{
    const char *path = wp->path;
    int32_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += wp->arena[i] == '\n';
    if (len > 0 && wp->arena[len - 1] != '\n')
        lines++;
    if (lines == 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "vocabulary %s is empty", path);
    FLAVA_TRY(flava_alloc((void **)&wp->pieces, (size_t)lines * sizeof(char *), "vocabulary"));
    uint32_t size = 16;
    while (size < 2u * (uint32_t)lines)
        size *= 2;
    FLAVA_TRY(flava_alloc((void **)&wp->table, size * sizeof(int32_t), "vocabulary hash"));
    memset(wp->table, 0xff, size * sizeof(int32_t));
    wp->mask = size - 1;
    char *p = wp->arena;
    for (int32_t id = 0; id < lines; id++) {
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        if (end > p && end[-1] == '\r')
            end--;
        *end = '\0';
        size_t plen = (size_t)(end - p);
        if (plen == 0)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%d: empty token", path, id + 1);
        if (strlen(p) != plen)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%d: NUL byte in token", path, id + 1);
        int cont = plen >= 2 && p[0] == '#' && p[1] == '#';
        const char *body = cont ? p + 2 : p;
        size_t blen = cont ? plen - 2 : plen;
        int32_t dup = lookup(wp, cont, body, blen);
        if (dup >= 0)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%d: token '%s' repeats line %d", path,
                               id + 1, p, dup + 1);
        uint32_t i = hash_piece(cont, body, blen) & wp->mask;
        while (wp->table[i] >= 0)
            i = (i + 1) & wp->mask;
        wp->pieces[id] = p;
        wp->table[i] = id;
        wp->n = id + 1;
        p = nl ? nl + 1 : end;
    }
    wp->unk_id = lookup(wp, 0, "[UNK]", 5);
    if (wp->unk_id < 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "vocabulary %s has no [UNK] token", path);
    return FLAVA_OK;
}

flava_status flava_wordpiece_load(flava_wordpiece **out, const char *vocab_path)
{
    *out = NULL;
    flava_wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp || !(wp->path = strdup(vocab_path))) {
        free(wp);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate the tokenizer for %s", vocab_path);
    }
    size_t len;
    flava_status s = read_file(&wp->arena, &len, vocab_path);
    if (s == FLAVA_OK)
        s = build(wp, len);
    if (s != FLAVA_OK) {
        flava_wordpiece_free(wp);
        return s;
    }
    *out = wp;
    return FLAVA_OK;
}

void flava_wordpiece_free(flava_wordpiece *wp)
{
    if (!wp)
        return;
    free(wp->arena);
    flava_free(wp->pieces);
    flava_free(wp->table);
    free(wp->path);
    free(wp);
}

int32_t flava_wordpiece_vocab_size(const flava_wordpiece *wp) { return wp->n; }

int32_t flava_wordpiece_piece_to_id(const flava_wordpiece *wp, const char *piece)
{
    return lookup(wp, 0, piece, strlen(piece));
}

const char *flava_wordpiece_id_to_piece(const flava_wordpiece *wp, int32_t id)
{
    return id >= 0 && id < wp->n ? wp->pieces[id] : NULL;
}

/* ---- UTF-8 -------------------------------------------------------------- */

flava_status flava_utf8_decode(uint32_t **cps, size_t *n, const char *text, size_t len)
{
    *cps = NULL;
    *n = 0;
    uint32_t *out = malloc((len + 1) * sizeof *out);
    if (!out)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot decode %zu bytes of text", len);
    const uint8_t *s = (const uint8_t *)text;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c = s[i];
        int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
        int ok = extra >= 0 && i + (size_t)extra < len;
        if (ok && extra > 0) {
            c &= 0x3Fu >> extra;
            for (int j = 1; j <= extra; j++) {
                ok &= (s[i + j] & 0xC0) == 0x80;
                c = (c << 6) | (s[i + j] & 0x3Fu);
            }
            ok &= c >= min_cp[extra] && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF);
        }
        if (!ok) {
            free(out);
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "invalid UTF-8 at byte offset %zu (byte 0x%02X)",
                               i, s[i]);
        }
        out[k++] = c;
        i += (size_t)extra + 1;
    }
    *cps = out;
    *n = k;
    return FLAVA_OK;
}

size_t flava_utf8_encode(char *out, uint32_t c)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---- Character classes -------------------------------------------------- */

/* BERT's CJK blocks: the ideographs are split into words of their own. */
static int is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Unicode P* plus the ASCII symbols BERT also splits at. */
static int is_punct(uint32_t c)
{
    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    return flava_uni_is(FLAVA_UNI_PUNCT, c);
}

/* HF's BERT drops every C* character but tab, newline and carriage return. */
static int is_control(uint32_t c)
{
    return c != '\t' && c != '\n' && c != '\r' && flava_uni_is(FLAVA_UNI_CONTROL, c);
}

/* Lower-cases w[i] (final sigma decided within the m code points of w),
 * decomposes (NFD) and drops nonspacing marks: writes 0 to 3 code points
 * into out and returns how many. */
static int fold(uint32_t *out, const uint32_t *w, size_t m, size_t i)
{
    uint32_t c = w[i];
    if (c < 0x80) {
        out[0] = c >= 'A' && c <= 'Z' ? c + 32 : c;
        return 1;
    }
    uint32_t low[2], d[FLAVA_UNI_MAX_DECOMP];
    int nl = flava_uni_lower(low, w, m, i), k = 0;
    for (int a = 0; a < nl; a++) {
        int nd = flava_uni_decompose(d, low[a]);
        for (int b = 0; b < nd; b++)
            if (!flava_uni_is(FLAVA_UNI_NONSPACING, d[b]))
                out[k++] = d[b];
    }
    return k;
}

/* ---- Encoding ------------------------------------------------------------ */

typedef struct id_list {
    int32_t *v;
    int64_t n, cap;
} id_list;

static flava_status push_id(id_list *l, int32_t id)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 64;
        int32_t *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot grow the token list to %lld",
                               (long long)cap);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return FLAVA_OK;
}

/* Greedy longest-match-first over one punctuation-free word of m code
 * points; buf holds at least 4 * MAX_WORD_CHARS bytes. */
static flava_status wordpiece_word(id_list *out, const flava_wordpiece *wp, const uint32_t *w,
                                   size_t m, char *buf)
{
    if (m > MAX_WORD_CHARS)
        return push_id(out, wp->unk_id);
    size_t off[MAX_WORD_CHARS + 1];
    off[0] = 0;
    for (size_t i = 0; i < m; i++)
        off[i + 1] = off[i] + flava_utf8_encode(buf + off[i], w[i]);
    int64_t first = out->n;
    for (size_t start = 0; start < m;) {
        int32_t id = -1;
        size_t end = m;
        for (; end > start; end--)
            if ((id = lookup(wp, start > 0, buf + off[start], off[end] - off[start])) >= 0)
                break;
        if (id < 0) {
            out->n = first; /* no full match: the whole word is unknown */
            return push_id(out, wp->unk_id);
        }
        FLAVA_TRY(push_id(out, id));
        start = end;
    }
    return FLAVA_OK;
}

/* Splits a folded whitespace-free word at punctuation, each mark being a
 * word of its own, and runs WordPiece over the pieces. */
static flava_status split_word(id_list *out, const flava_wordpiece *wp, const uint32_t *w, size_t m,
                               char *buf)
{
    size_t start = 0;
    for (size_t i = 0; i <= m; i++) {
        if (i < m && !is_punct(w[i]))
            continue;
        if (i > start)
            FLAVA_TRY(wordpiece_word(out, wp, w + start, i - start, buf));
        if (i < m)
            FLAVA_TRY(wordpiece_word(out, wp, w + i, 1, buf));
        start = i + 1;
    }
    return FLAVA_OK;
}

/* Folds one whitespace-delimited word (raw code points, controls already
 * dropped) and hands it on to punctuation splitting and WordPiece. */
static flava_status fold_word(id_list *out, const flava_wordpiece *wp, const uint32_t *raw,
                              size_t m, uint32_t *word, char *buf)
{
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        k += (size_t)fold(word + k, raw, m, i);
    return split_word(out, wp, word, k, buf);
}

static flava_status encode_cps(id_list *out, const flava_wordpiece *wp, const uint32_t *cps,
                               size_t n, uint32_t *raw, uint32_t *word, char *buf)
{
    size_t m = 0;
    for (size_t i = 0; i <= n; i++) {
        uint32_t c = i < n ? cps[i] : ' ';
        if (c == 0 || c == 0xFFFD || is_control(c))
            continue;
        /* str.isspace(); its C* members are already gone as controls */
        int space = flava_uni_is(FLAVA_UNI_SPACE, c);
        if (space || is_cjk(c)) {
            if (m > 0)
                FLAVA_TRY(fold_word(out, wp, raw, m, word, buf));
            m = 0;
            if (!space)
                FLAVA_TRY(fold_word(out, wp, &c, 1, word, buf));
            continue;
        }
        raw[m++] = c;
    }
    return FLAVA_OK;
}

flava_status flava_wordpiece_encode(int32_t **ids, int64_t *n, const flava_wordpiece *wp,
                                    const char *text, size_t len)
{
    *ids = NULL;
    *n = 0;
    uint32_t *cps;
    size_t ncp;
    FLAVA_TRY(flava_utf8_decode(&cps, &ncp, text, len));
    id_list out = {.v = malloc(64 * sizeof(int32_t)), .cap = 64};
    uint32_t *raw = malloc((ncp + 1) * sizeof *raw), *word = malloc((3 * ncp + 3) * sizeof *word);
    char *buf = malloc(4 * MAX_WORD_CHARS);
    flava_status s = FLAVA_OK;
    if (!out.v || !raw || !word || !buf)
        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot tokenize %zu characters", ncp);
    if (s == FLAVA_OK)
        s = encode_cps(&out, wp, cps, ncp, raw, word, buf);
    free(cps);
    free(raw);
    free(word);
    free(buf);
    if (s != FLAVA_OK) {
        free(out.v);
        return s;
    }
    *ids = out.v;
    *n = out.n;
    return FLAVA_OK;
}

flava_status flava_wordpiece_decode(char **text, const flava_wordpiece *wp, const int32_t *ids,
                                    int64_t n)
{
    *text = NULL;
    size_t total = 1;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= wp->n)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "token %lld: id %d is outside the vocabulary of "
                               "%s (size %d)", (long long)i, ids[i], wp->path, wp->n);
        total += strlen(wp->pieces[ids[i]]) + 1;
    }
    char *out = malloc(total);
    if (!out)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate %zu bytes of text", total);
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *p = wp->pieces[ids[i]];
        if (k > 0 && p[0] == '#' && p[1] == '#' && p[2])
            p += 2; /* a continuation joins the previous piece */
        else if (k > 0)
            out[k++] = ' ';
        size_t l = strlen(p);
        memcpy(out + k, p, l);
        k += l;
    }
    out[k] = '\0';
    *text = out;
    return FLAVA_OK;
}
