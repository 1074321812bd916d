/* cfg.h - run configuration: INI files (`[section]`, `key = value`) with
 * `-s section.key=value` overrides on top.
 *
 * (Named cfg, not config: "config.h" is autoconf's header.)
 *
 * Modules register the keys they know (a static table each: section, key,
 * type, default, one line of help) before anything is loaded. The file is
 * checked as it is read: an unknown section or key is an error naming the
 * file, the line and the nearest known key; a value of the wrong type names
 * the file, the line, the key and what was expected. Sections may be dotted
 * (`[data.scenes]`). A table may hold templates: keys of a pattern section
 * `data.*` exist in every section `data.NAME` a file names (user-named
 * sources), and a key `*` (type string) makes its section open: any key,
 * dots allowed (`[model]` takes HF FlavaConfig names such as
 * text_config.hidden_size, which the model checks). Comments start with # or ; at the beginning of a line
 * or after whitespace. Every value remembers where it was set, and a value
 * that was set but never read is reported (darknet's habit). */
#ifndef FLAVA_CFG_H
#define FLAVA_CFG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

typedef enum flava_cfg_type {
    FLAVA_CFG_INT,    /* int64 */
    FLAVA_CFG_FLOAT,  /* double, finite */
    FLAVA_CFG_STRING,
    FLAVA_CFG_BOOL,   /* true/false, yes/no, on/off, 1/0 */
    FLAVA_CFG_LIST,   /* comma-separated strings, possibly none */
} flava_cfg_type;

typedef struct flava_cfg_key {
    const char *section; /* "optim", "data.scenes" */
    const char *key;
    flava_cfg_type type;
    const char *def;     /* default, as it would be written; NULL: required */
    const char *help;
} flava_cfg_key;

typedef struct flava_cfg flava_cfg;

flava_status flava_cfg_create(flava_cfg **out);
void flava_cfg_free(flava_cfg *c);

/* Adds keys[n]; the table must outlive c (a static table). A key registered
 * twice or a default that does not parse as its type is FLAVA_ERR_ARG. */
flava_status flava_cfg_register(flava_cfg *c, const flava_cfg_key *keys, int n);

/* As flava_cfg_register, but entries of keys[] already registered (the
 * same table entries: a table shared by several tasks) are skipped. */
flava_status flava_cfg_register_shared(flava_cfg *c, const flava_cfg_key *keys, int n);

/* Reads an INI file; a key may appear once per file. */
flava_status flava_cfg_load(flava_cfg *c, const char *path);
/* One `section.key=value` override (the argument of -s); the last wins. */
flava_status flava_cfg_set(flava_cfg *c, const char *assignment);

/* Typed reads. Asking for an unregistered key or with the wrong type is
 * FLAVA_ERR_ARG (a bug); a required key that was not set is
 * FLAVA_ERR_CONFIG. A read marks the key as used. Strings and list items
 * stay valid until flava_cfg_free. */
flava_status flava_cfg_get_int(flava_cfg *c, const char *section, const char *key, int64_t *out);
flava_status flava_cfg_get_float(flava_cfg *c, const char *section, const char *key, double *out);
flava_status flava_cfg_get_bool(flava_cfg *c, const char *section, const char *key, bool *out);
flava_status flava_cfg_get_string(flava_cfg *c, const char *section, const char *key,
                                  const char **out);
flava_status flava_cfg_get_list(flava_cfg *c, const char *section, const char *key,
                                const char *const **items, int *n);

/* Where a key's value comes from: "run.cfg:12", "-s" or "default" (NULL for
 * an unregistered key), for callers that find a value out of range. */
const char *flava_cfg_where(const flava_cfg *c, const char *section, const char *key);

/* Prints a warning to f for every key set in a file or by -s but never
 * read; returns how many. */
int flava_cfg_warn_unread(const flava_cfg *c, FILE *f);

/* The sections made from pattern `X.*` ("X.NAME"), in order of
 * appearance, at most max into names[]; returns how many there are. */
int flava_cfg_sections(const flava_cfg *c, const char *pattern, const char **names, int max);
/* The keys set in an open section with their values and origins, at most
 * max; returns how many there are and marks them read. */
int flava_cfg_open_keys(flava_cfg *c, const char *section, const char **keys,
                        const char **values, const char **wheres, int max);

/* Every registered key by section: default, type and help (flava help config). */
void flava_cfg_describe(const flava_cfg *c, FILE *f);

/* The resolved configuration as INI, loadable again (for the run directory). */
flava_status flava_cfg_write(const flava_cfg *c, const char *path);

/* The resolved configuration as JSON, {"section": {"key": value}} with
 * typed values (lists as arrays of strings), for a checkpoint's
 * __metadata__; required keys not set are left out. *out is freed with free(). */
flava_status flava_cfg_to_json(const flava_cfg *c, char **out);

#endif
