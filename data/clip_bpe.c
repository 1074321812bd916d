/* clip_bpe.c - CLIP's byte-level BPE tokeniser; see clip_bpe.h for what it
 * does. Texts are handled as arrays of code points through clean-up and
 * splitting; each piece then becomes a byte-mapped UTF-8 string whose
 * symbols are adjacent spans, so a merge only widens a span. */
#include "clip_bpe.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tsv.h"
#include "unicode.h"
#include "wordpiece.h"

/* ---- growable arrays ---- */

static flava_status grow(void **p, size_t *cap, size_t need, size_t elem, const char *what)
{
    if (need <= *cap)
        return FLAVA_OK;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(*p, cap2 * elem);
    if (!q)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "CLIP tokeniser: cannot grow %s to %zu entries",
                           what, cap2);
    *p = q;
    *cap = cap2;
    return FLAVA_OK;
}

typedef struct cpvec {
    uint32_t *v;
    size_t n, cap;
} cpvec;

typedef struct idvec {
    int32_t *v;
    size_t n, cap;
} idvec;

/* Appends one 4-byte element (a code point or an id). */
static flava_status push4(void **v, size_t *n, size_t *cap, const void *x, const char *what)
{
    FLAVA_TRY(grow(v, cap, *n + 1, 4, what));
    memcpy((char *)*v + 4 * (*n)++, x, 4);
    return FLAVA_OK;
}

static flava_status cp_push(cpvec *a, uint32_t c)
{
    return push4((void **)&a->v, &a->n, &a->cap, &c, "a code point buffer");
}

static flava_status id_push(idvec *a, int32_t id)
{
    return push4((void **)&a->v, &a->n, &a->cap, &id, "the token ids");
}

typedef struct bytevec {
    char *v;
    size_t n, cap;
} bytevec;

static flava_status bytes_push(bytevec *a, const char *s, size_t len)
{
    FLAVA_TRY(grow((void **)&a->v, &a->cap, a->n + len + 1, 1, "a string buffer"));
    memcpy(a->v + a->n, s, len);
    a->n += len;
    a->v[a->n] = '\0';
    return FLAVA_OK;
}

/* ---- UTF-8 ---- */

static flava_status utf8_decode(cpvec *out, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; s[i];) {
        unsigned b = s[i];
        uint32_t c;
        int len;
        unsigned lo = 0x80, hi = 0xBF; /* the second byte's range */
        if (b < 0x80) {
            c = b, len = 1;
        } else if (b >= 0xC2 && b <= 0xDF) {
            c = b & 0x1F, len = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            c = b & 0x0F, len = 3;
            lo = b == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
            hi = b == 0xED ? 0x9F : 0xBF; /* no surrogates */
        } else if (b >= 0xF0 && b <= 0xF4) {
            c = b & 0x07, len = 4;
            lo = b == 0xF0 ? 0x90 : 0x80;
            hi = b == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
        } else {
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "invalid UTF-8 at byte offset %zu (0x%02X)", i,
                               b);
        }
        for (int k = 1; k < len; k++) {
            unsigned t = s[i + k];
            if (t < (k == 1 ? lo : 0x80) || t > (k == 1 ? hi : 0xBF))
                return FLAVA_ERROR(FLAVA_ERR_FORMAT,
                                   "invalid UTF-8 at byte offset %zu (0x%02X: a %d-byte "
                                   "sequence with a bad byte 0x%02X at offset %zu)",
                                   i, b, len, t, i + k);
            c = c << 6 | (t & 0x3F);
        }
        FLAVA_TRY(cp_push(out, c));
        i += (size_t)len;
    }
    return FLAVA_OK;
}

/* Appends the 1-4 bytes of c. */
static flava_status utf8_push(bytevec *out, uint32_t c)
{
    char b[4];
    return bytes_push(out, b, flava_utf8_encode(b, c));
}

/* ---- html.unescape ---- */

static int cmp_entity(const void *key, const void *row)
{
    return strcmp(key, ((const flava_html_entity *)row)->name);
}

static const flava_html_entity *entity(const char *name)
{
    return bsearch(name, flava_html5, flava_html5_count, sizeof *flava_html5,
                   cmp_entity);
}

static flava_status push_entity(cpvec *out, const flava_html_entity *e)
{
    FLAVA_TRY(cp_push(out, e->cp[0]));
    return e->cp[1] ? cp_push(out, e->cp[1]) : FLAVA_OK;
}

/* A numeric reference &#N; as Python resolves it: remapped, U+FFFD for
 * surrogates and beyond U+10FFFF, dropped (returns 0) for the numbers
 * HTML forbids, else the character itself. */
static int charref(uint32_t *out, uint32_t num)
{
    const uint32_t *m = flava_uni_lookup(flava_html_charref, flava_html_charref_count,
                                         sizeof *flava_html_charref, num);
    if (m)
        *out = m[1];
    else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
        *out = 0xFFFD;
    else if (flava_uni_in_ranges(flava_html_bad_charref, flava_html_bad_charref_count, num))
        return 0;
    else
        *out = num;
    return 1;
}

static int hex_value(uint32_t c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (int)((c | 0x20) - 'a' + 10);
    return -1;
}

/* Python's html pattern: &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?).
 * Returns how many code points after in[i] ('&') it consumed, 0 if none. */
static flava_status unescape_at(size_t *used, cpvec *out, const uint32_t *in, size_t n, size_t i)
{
    *used = 0;
    size_t j = i + 1;
    if (j < n && in[j] == '#') {
        int hex = j + 2 < n && (in[j + 1] | 0x20) == 'x' && hex_value(in[j + 2]) >= 0;
        size_t k = j + 1 + (size_t)hex;
        uint32_t num = 0;
        size_t start = k;
        for (; k < n && hex_value(in[k]) >= 0 && (hex || in[k] <= '9'); k++) {
            uint64_t v = (uint64_t)num * (hex ? 16 : 10) + (uint64_t)hex_value(in[k]);
            num = v > 0x110000 ? 0x110000 : (uint32_t)v; /* saturates past U+10FFFF */
        }
        if (k == start)
            return FLAVA_OK;
        if (k < n && in[k] == ';')
            k++;
        uint32_t c;
        if (charref(&c, num))
            FLAVA_TRY(cp_push(out, c));
        *used = k - i - 1;
        return FLAVA_OK;
    }
    /* a name: up to 32 characters, then an optional ';' */
    char name[34];
    size_t len = 0, ascii = 0;
    for (; j < n && len < 32; j++, len++) {
        uint32_t c = in[j];
        if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' ||
            c == '#' || c == ';')
            break;
        if (ascii == len && c < 0x80)
            name[ascii++] = (char)c;
    }
    if (len == 0)
        return FLAVA_OK;
    if (j < n && in[j] == ';') {
        if (ascii == len)
            name[ascii++] = ';';
        len++;
    }
    name[ascii] = '\0';
    const flava_html_entity *e = ascii == len ? entity(name) : NULL;
    if (e) {
        FLAVA_TRY(push_entity(out, e));
        *used = len;
        return FLAVA_OK;
    }
    /* else the longest prefix of 2 or more characters that is an entity
     * HTML accepts without ';' (html5 lists those without the ';') */
    for (size_t x = ascii < len ? ascii : len - 1; x >= 2; x--) {
        name[x] = '\0';
        if ((e = entity(name))) {
            FLAVA_TRY(push_entity(out, e));
            *used = x;
            return FLAVA_OK;
        }
    }
    return FLAVA_OK;
}

static flava_status html_unescape(cpvec *out, const cpvec *in)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        size_t used = 0;
        if (in->v[i] == '&')
            FLAVA_TRY(unescape_at(&used, out, in->v, in->n, i));
        if (used)
            i += used;
        else
            FLAVA_TRY(cp_push(out, in->v[i]));
    }
    return FLAVA_OK;
}

/* ---- whitespace and case ---- */

/* re.sub(r"\s+", " ", text).strip() */
static flava_status whitespace_clean(cpvec *out, const cpvec *in)
{
    out->n = 0;
    int gap = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (flava_uni_is(FLAVA_UNI_SPACE, in->v[i])) {
            gap = out->n > 0;
            continue;
        }
        if (gap)
            FLAVA_TRY(cp_push(out, ' '));
        gap = 0;
        FLAVA_TRY(cp_push(out, in->v[i]));
    }
    return FLAVA_OK;
}

/* str.lower() */
static flava_status lower(cpvec *out, const cpvec *in)
{
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t low[2];
        int k = flava_uni_lower(low, in->v, in->n, i);
        FLAVA_TRY(cp_push(out, low[0]));
        if (k == 2)
            FLAVA_TRY(cp_push(out, low[1]));
    }
    return FLAVA_OK;
}

/* The whole clean-up into `out`, with `tmp` as scratch. */
static flava_status clean(cpvec *out, cpvec *tmp, const char *text)
{
    out->n = tmp->n = 0;
    FLAVA_TRY(utf8_decode(out, text));
    FLAVA_TRY(html_unescape(tmp, out));
    FLAVA_TRY(html_unescape(out, tmp));
    FLAVA_TRY(whitespace_clean(tmp, out));
    return lower(out, tmp);
}

flava_status flava_clip_bpe_clean(char **out, const char *text)
{
    cpvec a = {0}, b = {0};
    bytevec s = {0};
    *out = NULL;
    flava_status st = clean(&a, &b, text);
    st = st == FLAVA_OK ? bytes_push(&s, "", 0) : st; /* "" for an empty text */
    for (size_t i = 0; st == FLAVA_OK && i < a.n; i++)
        st = utf8_push(&s, a.v[i]);
    free(a.v);
    free(b.v);
    if (st != FLAVA_OK) {
        free(s.v);
        return st;
    }
    *out = s.v;
    return FLAVA_OK;
}

/* ---- string -> int32 map (open addressing, keys in one arena) ---- */

typedef struct strmap_entry {
    size_t off, len;
    int32_t val;
} strmap_entry;

typedef struct strmap {
    char *keys; /* the arena */
    size_t keys_n, keys_cap;
    strmap_entry *ent;
    size_t n, cap;
    int32_t *slot; /* index into ent, -1 empty */
    size_t mask;
} strmap;

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static flava_status strmap_init(strmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < 2 * expected)
        cap *= 2;
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "CLIP tokeniser: cannot allocate a %zu-slot table",
                           cap);
    memset(m->slot, 0xFF, cap * sizeof *m->slot);
    m->mask = cap - 1;
    return FLAVA_OK;
}

static void strmap_free(strmap *m)
{
    free(m->keys);
    free(m->ent);
    free(m->slot);
}

/* The slot holding `key`, or the empty slot where it would go. */
static size_t strmap_slot(const strmap *m, const char *key, size_t len)
{
    size_t i = hash(key, len) & m->mask;
    for (; m->slot[i] >= 0; i = (i + 1) & m->mask) {
        const strmap_entry *e = &m->ent[m->slot[i]];
        if (e->len == len && memcmp(m->keys + e->off, key, len) == 0)
            break;
    }
    return i;
}

static int32_t strmap_get(const strmap *m, const char *key, size_t len)
{
    int32_t k = m->slot[strmap_slot(m, key, len)];
    return k < 0 ? -1 : m->ent[k].val;
}

/* Adds key -> val; *dup is set (and nothing added) if the key is there. */
static flava_status strmap_add(strmap *m, const char *key, size_t len, int32_t val, int *dup)
{
    if (2 * (m->n + 1) > m->mask + 1 || m->n >= INT32_MAX)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "CLIP tokeniser: more entries than announced (%zu)",
                           m->n);
    size_t i = strmap_slot(m, key, len);
    *dup = m->slot[i] >= 0;
    if (*dup)
        return FLAVA_OK;
    FLAVA_TRY(grow((void **)&m->keys, &m->keys_cap, m->keys_n + len, 1, "the key arena"));
    FLAVA_TRY(grow((void **)&m->ent, &m->cap, m->n + 1, sizeof *m->ent, "the key table"));
    memcpy(m->keys + m->keys_n, key, len);
    m->ent[m->n] = (strmap_entry){m->keys_n, len, val};
    m->keys_n += len;
    m->slot[i] = (int32_t)m->n++;
    return FLAVA_OK;
}

/* ---- loading ---- */

struct flava_clip_bpe {
    strmap vocab;  /* byte-mapped token -> id */
    strmap merges; /* "a b" -> rank */
    int32_t sot, eot;
    char byte_char[256][3]; /* CLIP's printable stand-in of each byte, UTF-8 */
};

/* A whole text file; a NUL byte would end the text early, so it is refused. */
static flava_status read_text(char **out, size_t *len, const char *path)
{
    FLAVA_TRY(flava_file_read(out, len, path));
    if (strlen(*out) != *len) {
        flava_free(*out);
        *out = NULL;
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: contains a NUL byte", path);
    }
    return FLAVA_OK;
}

static flava_status load_vocab(flava_clip_bpe *t, const char *path)
{
    char *text;
    size_t len;
    FLAVA_TRY(read_text(&text, &len, path));
    cJSON *root = cJSON_ParseWithLength(text, len);
    flava_free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: expected a JSON object of token -> id", path);
    }
    int count = cJSON_GetArraySize(root);
    unsigned char *seen = calloc((size_t)count + 1, 1);
    flava_status st = seen ? strmap_init(&t->vocab, (size_t)count)
                           : FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s: cannot allocate", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (st != FLAVA_OK)
            break;
        double v = cJSON_GetNumberValue(e);
        if (!cJSON_IsNumber(e) || !(v >= 0 && v < count) || v != (double)(int32_t)v) {
            st = FLAVA_ERROR(FLAVA_ERR_FORMAT,
                             "%s: token \"%s\": expected an integer id in [0, %d)", path,
                             e->string, count);
            break;
        }
        int32_t id = (int32_t)v;
        int dup;
        st = strmap_add(&t->vocab, e->string, strlen(e->string), id, &dup);
        if (st == FLAVA_OK && dup)
            st = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: token \"%s\" listed twice", path, e->string);
        if (st == FLAVA_OK && seen[id]++)
            st = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: id %d given to \"%s\" and another token",
                             path, id, e->string);
    }
    cJSON_Delete(root);
    free(seen);
    FLAVA_TRY(st);
    const char *special[2] = {"<|startoftext|>", "<|endoftext|>"};
    int32_t *ids[2] = {&t->sot, &t->eot};
    for (int k = 0; k < 2; k++)
        if ((*ids[k] = strmap_get(&t->vocab, special[k], strlen(special[k]))) < 0)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: has no %s token", path, special[k]);
    return FLAVA_OK;
}

static int ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static flava_status load_merges(flava_clip_bpe *t, const char *path)
{
    char *text;
    size_t len;
    FLAVA_TRY(read_text(&text, &len, path));
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    flava_status st = strmap_init(&t->merges, lines);
    bytevec key = {0};
    int32_t rank = 0;
    char *line = text;
    for (size_t no = 1; st == FLAVA_OK && line; no++) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        char *next = end ? end + 1 : NULL;
        if (no == 1 && strncmp(line, "#version", 8) == 0) {
            line = next;
            continue;
        }
        /* the whitespace-separated fields: exactly two */
        char *field[3];
        int nf = 0;
        for (char *p = line; *p && nf < 3;) {
            while (ascii_space(*p))
                p++;
            if (!*p)
                break;
            field[nf++] = p;
            while (*p && !ascii_space(*p))
                p++;
            if (*p)
                *p++ = '\0';
        }
        if (nf != 0 && nf != 2) {
            st = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s line %zu: expected two symbols \"a b\"",
                             path, no);
        } else if (nf == 2) {
            key.n = 0;
            st = bytes_push(&key, field[0], strlen(field[0]));
            st = st == FLAVA_OK ? bytes_push(&key, " ", 1) : st;
            st = st == FLAVA_OK ? bytes_push(&key, field[1], strlen(field[1])) : st;
            int dup = 0;
            st = st == FLAVA_OK ? strmap_add(&t->merges, key.v, key.n, rank++, &dup) : st;
            if (st == FLAVA_OK && dup)
                st = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s line %zu: the pair \"%s\" is listed twice",
                                 path, no, key.v);
        }
        line = next;
    }
    free(key.v);
    flava_free(text);
    return st;
}

/* bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the
 * others, in order, for U+0100 on. */
static void byte_map(flava_clip_bpe *t)
{
    int next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        int c = printable ? b : next++;
        if (c < 0x80) {
            t->byte_char[b][0] = (char)c, t->byte_char[b][1] = '\0';
        } else {
            t->byte_char[b][0] = (char)(0xC0 | c >> 6);
            t->byte_char[b][1] = (char)(0x80 | (c & 0x3F));
            t->byte_char[b][2] = '\0';
        }
    }
}

flava_status flava_clip_bpe_load(flava_clip_bpe **out, const char *vocab_json,
                                 const char *merges_txt)
{
    *out = NULL;
    flava_clip_bpe *t = calloc(1, sizeof *t);
    if (!t)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "CLIP tokeniser: cannot allocate");
    byte_map(t);
    flava_status st = load_vocab(t, vocab_json);
    if (st == FLAVA_OK)
        st = load_merges(t, merges_txt);
    if (st != FLAVA_OK) {
        flava_clip_bpe_free(t);
        return st;
    }
    *out = t;
    return FLAVA_OK;
}

void flava_clip_bpe_free(flava_clip_bpe *bpe)
{
    if (!bpe)
        return;
    strmap_free(&bpe->vocab);
    strmap_free(&bpe->merges);
    free(bpe);
}

int32_t flava_clip_bpe_vocab_size(const flava_clip_bpe *bpe) { return (int32_t)bpe->vocab.n; }
int32_t flava_clip_bpe_sot_id(const flava_clip_bpe *bpe) { return bpe->sot; }
int32_t flava_clip_bpe_eot_id(const flava_clip_bpe *bpe) { return bpe->eot; }

/* ---- splitting and BPE ---- */

/* Scratch of one encoding: the piece as byte-mapped UTF-8 + "</w>", its
 * symbols as [start, end) spans, and the pair key being looked up. */
typedef struct bpe_work {
    bytevec word, key;
    size_t (*span)[2];
    size_t nspan, cap;
} bpe_work;

/* The merge rank of the symbols at k and k+1, or -1. */
static flava_status pair_rank(int32_t *rank, const flava_clip_bpe *t, bpe_work *w, size_t k)
{
    const char *s = w->word.v;
    w->key.n = 0;
    FLAVA_TRY(bytes_push(&w->key, s + w->span[k][0], w->span[k][1] - w->span[k][0]));
    FLAVA_TRY(bytes_push(&w->key, " ", 1));
    FLAVA_TRY(bytes_push(&w->key, s + w->span[k + 1][0], w->span[k + 1][1] - w->span[k + 1][0]));
    *rank = strmap_get(&t->merges, w->key.v, w->key.n);
    return FLAVA_OK;
}

/* BPE of one piece (code points p[0..n)), its ids appended to `ids`. */
static flava_status bpe_piece(idvec *ids, const flava_clip_bpe *t, bpe_work *w,
                              const uint32_t *p, size_t n)
{
    bytevec utf8 = {0};
    flava_status st = FLAVA_OK;
    for (size_t i = 0; st == FLAVA_OK && i < n; i++)
        st = utf8_push(&utf8, p[i]);
    w->word.n = 0;
    w->nspan = 0;
    for (size_t i = 0; st == FLAVA_OK && i < utf8.n; i++) {
        const char *c = t->byte_char[(unsigned char)utf8.v[i]];
        st = grow((void **)&w->span, &w->cap, w->nspan + 1, sizeof *w->span, "the BPE symbols");
        if (st == FLAVA_OK) {
            w->span[w->nspan][0] = w->word.n;
            st = bytes_push(&w->word, c, strlen(c));
            w->span[w->nspan++][1] = w->word.n;
        }
    }
    free(utf8.v);
    FLAVA_TRY(st);
    FLAVA_TRY(bytes_push(&w->word, "</w>", 4));
    w->span[w->nspan - 1][1] = w->word.n;

    for (;;) {
        int32_t best = -1, r;
        for (size_t k = 0; k + 1 < w->nspan; k++) {
            FLAVA_TRY(pair_rank(&r, t, w, k));
            if (r >= 0 && (best < 0 || r < best))
                best = r;
        }
        if (best < 0)
            break;
        /* merge every occurrence of that pair, left to right */
        size_t m = 0;
        for (size_t k = 0; k < w->nspan; k++) {
            r = -1;
            if (k + 1 < w->nspan)
                FLAVA_TRY(pair_rank(&r, t, w, k));
            w->span[m][0] = w->span[k][0];
            w->span[m][1] = w->span[r == best ? ++k : k][1];
            m++;
        }
        w->nspan = m;
    }
    for (size_t k = 0; k < w->nspan; k++) {
        int32_t id = strmap_get(&t->vocab, w->word.v + w->span[k][0],
                                w->span[k][1] - w->span[k][0]);
        FLAVA_TRY(id_push(ids, id >= 0 ? id : t->eot));
    }
    return FLAVA_OK;
}

/* True if s[i..] starts with the ASCII text `lit`. */
static int starts_with(const uint32_t *s, size_t n, size_t i, const char *lit)
{
    for (size_t k = 0; lit[k]; k++)
        if (i + k >= n || s[i + k] != (unsigned char)lit[k])
            return 0;
    return 1;
}

/* What no branch of CLIP's pattern matches: whitespace, and U+0345 (the
 * regex module's IGNORECASE keeps it out of \p{L} and of its complement). */
static int unmatched(uint32_t c) { return c == 0x345 || flava_uni_is(FLAVA_UNI_SPACE, c); }

/* The length of CLIP's pattern matched at s[i], 0 where nothing matches;
 * *special gets the id of a special token matched. */
static size_t match_at(int32_t *special, const flava_clip_bpe *t, const uint32_t *s, size_t n,
                       size_t i)
{
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    *special = -1;
    if (starts_with(s, n, i, "<|startoftext|>")) {
        *special = t->sot;
        return 15;
    }
    if (starts_with(s, n, i, "<|endoftext|>")) {
        *special = t->eot;
        return 13;
    }
    for (size_t k = 0; k < sizeof contractions / sizeof *contractions; k++)
        if (starts_with(s, n, i, contractions[k]))
            return strlen(contractions[k]);
    /* IGNORECASE: the long s folds to s, the only such case after lower() */
    if (i + 1 < n && s[i] == '\'' && s[i + 1] == 0x17F)
        return 2;
    if (unmatched(s[i]))
        return 0;
    size_t j = i;
    if (flava_uni_is(FLAVA_UNI_LETTER, s[i])) {
        while (j < n && flava_uni_is(FLAVA_UNI_LETTER, s[j]))
            j++;
        return j - i;
    }
    if (flava_uni_is(FLAVA_UNI_NUMBER, s[i]))
        return 1;
    while (j < n && !unmatched(s[j]) && !flava_uni_is(FLAVA_UNI_LETTER, s[j]) &&
           !flava_uni_is(FLAVA_UNI_NUMBER, s[j]))
        j++;
    return j - i;
}

flava_status flava_clip_bpe_tokenize(int32_t **ids, int64_t *n, const flava_clip_bpe *bpe,
                                     const char *text)
{
    *ids = NULL;
    *n = 0;
    cpvec s = {0}, tmp = {0};
    idvec out = {0};
    bpe_work w = {0};
    flava_status st = clean(&s, &tmp, text);
    for (size_t i = 0; st == FLAVA_OK && i < s.n;) {
        int32_t special;
        size_t len = match_at(&special, bpe, s.v, s.n, i);
        if (len == 0) {
            i++;
            continue;
        }
        st = special >= 0 ? id_push(&out, special) : bpe_piece(&out, bpe, &w, s.v + i, len);
        i += len;
    }
    free(s.v);
    free(tmp.v);
    free(w.word.v);
    free(w.key.v);
    free(w.span);
    if (st != FLAVA_OK) {
        free(out.v);
        return st;
    }
    size_t count = out.n;
    if (!out.v && (st = id_push(&out, 0)) != FLAVA_OK) /* a valid pointer for no tokens */
        return st;
    *ids = out.v;
    *n = (int64_t)count;
    return FLAVA_OK;
}

flava_status flava_clip_bpe_encode(int32_t *input_ids, float *attention_mask, int64_t *n_tokens,
                                   const flava_clip_bpe *bpe, const char *text,
                                   int64_t context_length, int32_t pad_id)
{
    if (context_length < 2)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "CLIP encode: context length %lld, expected >= 2",
                           (long long)context_length);
    if (pad_id < 0 || pad_id >= flava_clip_bpe_vocab_size(bpe))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "CLIP encode: pad id %d outside the vocabulary [0, %d)",
                           pad_id, flava_clip_bpe_vocab_size(bpe));
    int32_t *ids;
    int64_t n;
    FLAVA_TRY(flava_clip_bpe_tokenize(&ids, &n, bpe, text));
    int64_t keep = n < context_length - 2 ? n : context_length - 2;
    input_ids[0] = bpe->sot;
    memcpy(input_ids + 1, ids, (size_t)keep * sizeof *ids);
    input_ids[keep + 1] = bpe->eot;
    free(ids);
    for (int64_t i = 0; i < context_length; i++) {
        if (i >= keep + 2)
            input_ids[i] = pad_id;
        attention_mask[i] = i < keep + 2 ? 1.0f : 0.0f;
    }
    if (n_tokens)
        *n_tokens = keep + 2;
    return FLAVA_OK;
}
