/* imagetext.c - the image-text pairs TSV reader. */
#include "imagetext.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsv.h"

void flava_imagetext_free(flava_imagetext *set)
{
    for (long i = 0; i < set->n; i++) {
        free(set->image_paths[i]);
        free(set->captions[i]);
    }
    free(set->image_paths);
    free(set->captions);
    memset(set, 0, sizeof *set);
}

/* dir of `path` (with its slash) + rel, or rel itself when absolute. */
static flava_status resolve(char **out, const char *path, const char *rel)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = rel[0] == '/' || !slash ? 0 : (size_t)(slash - path + 1);
    *out = malloc(dlen + strlen(rel) + 1);
    if (!*out)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate an image path");
    memcpy(*out, path, dlen);
    strcpy(*out + dlen, rel);
    return FLAVA_OK;
}

static flava_status add_pair(flava_imagetext *set, long *cap, const flava_tsv *t, int ic, int cc)
{
    const char *img = t->fields[ic], *cap_text = t->fields[cc];
    if (!img[0])
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: empty image path in column %d",
                           t->path, t->line, ic + 1);
    if (!cap_text[0])
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: empty caption in column %d", t->path,
                           t->line, cc + 1);
    if (set->n == *cap) {
        long c = *cap ? 2 * *cap : 256;
        char **a = realloc(set->image_paths, sizeof(char *) * c);
        if (a)
            set->image_paths = a;
        char **b = a ? realloc(set->captions, sizeof(char *) * c) : NULL;
        if (!b)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s:%ld: cannot grow the pair list", t->path,
                               t->line);
        set->captions = b;
        *cap = c;
    }
    char *path;
    FLAVA_TRY(resolve(&path, t->path, img));
    if (access(path, R_OK) != 0) {
        flava_status s = FLAVA_ERROR(FLAVA_ERR_IO, "%s:%ld: image '%s' cannot be read: %s",
                                     t->path, t->line, path, strerror(errno));
        free(path);
        return s;
    }
    char *caption;
    flava_status s = flava_strdup(&caption, cap_text);
    if (s != FLAVA_OK) {
        free(path);
        return s;
    }
    set->image_paths[set->n] = path;
    set->captions[set->n] = caption;
    set->n++;
    return FLAVA_OK;
}

static flava_status read_pairs(flava_imagetext *set, flava_tsv *t, const char *image_key,
                               const char *caption_key)
{
    int more;
    FLAVA_TRY(flava_tsv_next(t, &more));
    if (!more)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: empty file, expected a header row naming the "
                           "columns '%s' and '%s'", t->path, image_key, caption_key);
    int ic = flava_tsv_find(t, image_key), cc = flava_tsv_find(t, caption_key);
    if (ic < 0 || cc < 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:1: header has no column '%s' (expected the "
                           "%s column name among the tab-separated header fields)", t->path,
                           ic < 0 ? image_key : caption_key, ic < 0 ? "image" : "caption");
    int nf = t->nfields;
    long cap = 0;
    for (;;) {
        FLAVA_TRY(flava_tsv_next(t, &more));
        if (!more)
            break;
        if (t->nfields != nf)
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%ld: %d tab-separated fields, expected %d "
                               "as in the header", t->path, t->line, t->nfields, nf);
        FLAVA_TRY(add_pair(set, &cap, t, ic, cc));
    }
    if (set->n == 0)
        return FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s: no pairs after the header, expected at least "
                           "one", t->path);
    return FLAVA_OK;
}

flava_status flava_imagetext_load(flava_imagetext *set, const char *tsv_path, const char *image_key,
                                  const char *caption_key)
{
    memset(set, 0, sizeof *set);
    flava_tsv t;
    FLAVA_TRY(flava_tsv_open(&t, tsv_path));
    flava_status s = read_pairs(set, &t, image_key ? image_key : FLAVA_IMAGETEXT_IMAGE_KEY,
                                caption_key ? caption_key : FLAVA_IMAGETEXT_CAPTION_KEY);
    flava_tsv_close(&t);
    if (s != FLAVA_OK)
        flava_imagetext_free(set);
    return s;
}
