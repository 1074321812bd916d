/* imagetext.h - image-text pairs from a TSV with a header row, the layout
 * OpenCLIP reads (--csv-separator '\t'): the image and caption columns are
 * chosen by name, image paths are relative to the TSV's folder. */
#ifndef FLAVA_DATA_IMAGETEXT_H
#define FLAVA_DATA_IMAGETEXT_H

#include "status.h"

#define FLAVA_IMAGETEXT_IMAGE_KEY "filepath"  /* OpenCLIP's --csv-img-key default */
#define FLAVA_IMAGETEXT_CAPTION_KEY "title"   /* OpenCLIP's --csv-caption-key default */

typedef struct flava_imagetext {
    long n;
    char **image_paths; /* resolved against the TSV's folder */
    char **captions;
} flava_imagetext;

/* Reads every pair; checks the header names both columns, every line has
 * the header's field count, every caption is non-empty and every image file
 * exists. NULL keys select the defaults. */
flava_status flava_imagetext_load(flava_imagetext *set, const char *tsv_path, const char *image_key,
                                  const char *caption_key);
void flava_imagetext_free(flava_imagetext *set);

#endif
