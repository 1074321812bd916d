/* status.c - the thread-local error message behind flava_status. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_MAX = 2048 };

static _Thread_local char error_msg[MSG_MAX];
static _Thread_local char error_where[256];

flava_status flava_error_set(flava_status status, const char *src_file, int src_line,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_msg, sizeof error_msg, fmt, ap);
    va_end(ap);
    snprintf(error_where, sizeof error_where, "%s:%d", src_file, src_line);
    return status;
}

void flava_error_context(const char *fmt, ...)
{
    char old[MSG_MAX];
    memcpy(old, error_msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(error_msg, sizeof error_msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 3 >= sizeof error_msg)
        return; /* the prefix alone fills the buffer */
    size_t used = (size_t)n;
    error_msg[used++] = ':';
    error_msg[used++] = ' ';
    size_t len = strnlen(old, sizeof error_msg - used - 1);
    memcpy(error_msg + used, old, len);
    error_msg[used + len] = '\0';
}

const char *flava_error_message(void) { return error_msg; }
const char *flava_error_where(void) { return error_where; }

void flava_error_clear(void)
{
    error_msg[0] = '\0';
    error_where[0] = '\0';
}

const char *flava_status_name(flava_status status)
{
    switch (status) {
    case FLAVA_OK: return "ok";
    case FLAVA_ERR_ARG: return "bad argument";
    case FLAVA_ERR_IO: return "I/O error";
    case FLAVA_ERR_FORMAT: return "malformed input";
    case FLAVA_ERR_SHAPE: return "shape mismatch";
    case FLAVA_ERR_CONFIG: return "config error";
    case FLAVA_ERR_NOMEM: return "out of memory";
    case FLAVA_ERR_DNNL: return "oneDNN error";
    case FLAVA_ERR_NUMERIC: return "numeric error";
    case FLAVA_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

flava_status flava_alloc(void **out, size_t nbytes, const char *what)
{
    *out = NULL;
    size_t rounded = (nbytes + 63) / 64 * 64;
    if (rounded == 0)
        rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (!p)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate %zu bytes for %s", nbytes, what);
    memset(p, 0, rounded);
    *out = p;
    return FLAVA_OK;
}

void flava_free(void *p) { free(p); }
