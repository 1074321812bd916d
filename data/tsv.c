/* tsv.c - whole-file reading, the string buffer and the tab-separated line
 * reader. */
#include "tsv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

flava_status flava_strdup(char **out, const char *s)
{
    *out = strdup(s);
    if (!*out)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot copy a string of %zu bytes", strlen(s));
    return FLAVA_OK;
}

void flava_strbuf_add(flava_strbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

flava_status flava_file_read(char **data, size_t *n, const char *path)
{
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st = {0};
    flava_status s = FLAVA_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        s = FLAVA_ERROR(FLAVA_ERR_IO, "%s: not a regular file", path);
    long len = (long)st.st_size;
    if (s == FLAVA_OK)
        s = flava_alloc((void **)data, (size_t)len + 1, path);
    if (s == FLAVA_OK && fread(*data, 1, (size_t)len, f) != (size_t)len)
        s = FLAVA_ERROR(FLAVA_ERR_IO, "%s: short read of %ld bytes: %s", path, len,
                        ferror(f) ? strerror(errno) : "file changed while reading");
    fclose(f);
    if (s != FLAVA_OK) {
        flava_free(*data);
        *data = NULL;
        return s;
    }
    (*data)[len] = '\0';
    *n = (size_t)len;
    return FLAVA_OK;
}

flava_status flava_file_write_atomic(const char *path, const char *text)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    int failed = fputs(text, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
    failed |= fclose(f) != 0;
    if (failed || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return FLAVA_OK;
}

flava_status flava_tsv_open(flava_tsv *t, const char *path)
{
    memset(t, 0, sizeof *t);
    t->path = path;
    t->f = fopen(path, "r");
    if (!t->f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return FLAVA_OK;
}

flava_status flava_tsv_next(flava_tsv *t, int *more)
{
    errno = 0;
    ssize_t n = getline(&t->buf, &t->cap, t->f);
    if (n < 0) {
        *more = 0;
        t->nfields = 0;
        if (ferror(t->f))
            return FLAVA_ERROR(FLAVA_ERR_IO, "%s: read error after line %ld: %s", t->path,
                               t->line, strerror(errno));
        return FLAVA_OK;
    }
    *more = 1;
    t->line++;
    if ((size_t)n != strlen(t->buf))
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: NUL byte in a text line (binary file?)",
                           t->path, t->line);
    while (n > 0 && (t->buf[n - 1] == '\n' || t->buf[n - 1] == '\r'))
        t->buf[--n] = '\0';
    t->nfields = 0;
    char *p = t->buf;
    if (t->line == 1 && !strncmp(p, "\xef\xbb\xbf", 3))
        p += 3; /* a UTF-8 byte order mark (MRPC's raw files have one) */
    for (;;) {
        if (t->nfields == t->fields_cap) {
            int cap = t->fields_cap ? 2 * t->fields_cap : 16;
            char **f = realloc(t->fields, sizeof(char *) * cap);
            if (!f)
                return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s:%ld: too many fields", t->path, t->line);
            t->fields = f;
            t->fields_cap = cap;
        }
        t->fields[t->nfields++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return FLAVA_OK;
}

int flava_tsv_find(const flava_tsv *t, const char *name)
{
    for (int i = 0; i < t->nfields; i++)
        if (!strcmp(t->fields[i], name))
            return i;
    return -1;
}

void flava_tsv_close(flava_tsv *t)
{
    if (t->f)
        fclose(t->f);
    free(t->buf);
    free(t->fields);
    memset(t, 0, sizeof *t);
}
