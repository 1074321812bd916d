/* tsv.h - text helpers shared by the data readers and writers: whole files
 * (read, and written atomically), a growable string buffer, and a
 * line-at-a-time tab-separated reader that knows where it is, so every
 * reader built on it can name the file and line of a bad record. Fields are
 * split on tabs only, with no quoting (GLUE's files contain bare quotes
 * that are part of the text). */
#ifndef FLAVA_DATA_TSV_H
#define FLAVA_DATA_TSV_H

#include <stdio.h>

#include "status.h"

typedef struct flava_tsv {
    FILE *f;
    const char *path;
    long line;     /* 1-based number of the current line */
    char *buf;
    size_t cap;
    int nfields;
    char **fields; /* point into buf; valid until the next call */
    int fields_cap;
} flava_tsv;

flava_status flava_tsv_open(flava_tsv *t, const char *path);
/* Reads and splits the next line; *more = 0 at the end of the file. */
flava_status flava_tsv_next(flava_tsv *t, int *more);
/* Index of the field equal to `name` in the current line, -1 if none. */
int flava_tsv_find(const flava_tsv *t, const char *name);
void flava_tsv_close(flava_tsv *t);

/* Reads a whole file into a flava_alloc'ed buffer with a NUL after the
 * last byte (so text can be parsed in place); *n excludes the NUL. */
flava_status flava_file_read(char **data, size_t *n, const char *path);

/* Writes text to path through path.tmp (flushed and fsynced) and a rename,
 * so that readers see the old file or the whole new one, never a part. */
flava_status flava_file_write_atomic(const char *path, const char *text);

/* strdup that reports failure as a status. */
flava_status flava_strdup(char **out, const char *s);

/* A growable NUL-terminated buffer for text built from many small pieces.
 * Start from {0}; p stays NULL until the first append. A failed allocation
 * sets oom and makes later appends no-ops, so the caller checks once at the
 * end; the caller frees p. */
typedef struct flava_strbuf {
    char *p;
    size_t n, cap; /* n excludes the NUL */
    int oom;
} flava_strbuf;

void flava_strbuf_add(flava_strbuf *b, const char *s, size_t n);

#endif
