/* status.h - status codes and the error message that goes with them.
 *
 * Every fallible function returns a flava_status. On failure it records one
 * message (thread-local) saying what was wrong and where: the file, line,
 * tensor or key involved and what was expected. Only main() prints it and
 * exits. */
#ifndef FLAVA_STATUS_H
#define FLAVA_STATUS_H

#include <stddef.h>

typedef enum flava_status {
    FLAVA_OK = 0,
    FLAVA_ERR_ARG,         /* a bad argument from the caller */
    FLAVA_ERR_IO,          /* open, read, write or rename failed */
    FLAVA_ERR_FORMAT,      /* a file's content is malformed */
    FLAVA_ERR_SHAPE,       /* a tensor's shape or dtype is not the expected one */
    FLAVA_ERR_CONFIG,      /* a config section, key or value is wrong */
    FLAVA_ERR_NOMEM,       /* an allocation failed */
    FLAVA_ERR_DNNL,        /* a oneDNN call failed */
    FLAVA_ERR_NUMERIC,     /* NaN or Inf where a number was expected */
    FLAVA_ERR_INTERRUPTED, /* the user asked to stop (SIGINT) */
} flava_status;

/* Records the message (printf-style) with the source place that raised it
 * and returns `status`, so that `return FLAVA_ERROR(...)` reads naturally. */
flava_status flava_error_set(flava_status status, const char *src_file, int src_line,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define FLAVA_ERROR(status, ...) flava_error_set((status), __FILE__, __LINE__, __VA_ARGS__)

/* Prefixes the current message with more context ("reading X: ..."). */
void flava_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *flava_error_message(void);  /* "" when no error was recorded */
const char *flava_error_where(void);    /* "src/file.c:123" of the raiser */
void flava_error_clear(void);
const char *flava_status_name(flava_status status);

/* Propagate a failure unchanged. */
#define FLAVA_TRY(call)                         \
    do {                                        \
        flava_status flava_try_s_ = (call);     \
        if (flava_try_s_ != FLAVA_OK)           \
            return flava_try_s_;                \
    } while (0)

/* 64-byte aligned, zeroed allocation; `what` names the buffer in the error. */
flava_status flava_alloc(void **out, size_t nbytes, const char *what);
void flava_free(void *p);

#endif
