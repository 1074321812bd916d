/* cmd_info.c - `flava info FILE`: what a safetensors file holds. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "family.h"
#include "safetensors.h"

static const char info_usage[] =
    "usage: flava info FILE.safetensors\n"
    "Lists the metadata, the model family of a checkpoint (its config's\n"
    "model_type: flava, clip or align), every tensor (name, dtype, shape,\n"
    "elements), then the total number of elements (parameters) and data bytes.\n";

/* "family: NAME" when the metadata config names a model_type. */
static void print_family(const flava_st *st)
{
    const char *config = flava_st_meta(st, "config");
    cJSON *root = config ? cJSON_Parse(config) : NULL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(type)) {
        const flava_family_ops *ops;
        if (flava_family_find(&ops, type->valuestring) == FLAVA_OK)
            printf("family: %s\n", ops->name);
        else
            printf("family: none of flava, clip, align (model_type %s)\n", type->valuestring);
    }
    cJSON_Delete(root);
}

flava_status flava_cmd_info(int argc, char **argv)
{
    if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        fputs(info_usage, stdout);
        return FLAVA_OK;
    }
    if (argc != 1)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "expected one file\n%s", info_usage);
    flava_st *st;
    FLAVA_TRY(flava_st_read(&st, argv[0]));
    printf("%s\n", flava_st_path(st));
    int nmeta = flava_st_meta_count(st);
    printf("metadata: %d key%s\n", nmeta, nmeta == 1 ? "" : "s");
    for (int i = 0; i < nmeta; i++) {
        const flava_st_kv *kv = flava_st_meta_get(st, i);
        printf("  %s = %s\n", kv->key, kv->value);
    }
    print_family(st);
    int n = flava_st_count(st);
    int width = 4;
    for (int i = 0; i < n; i++) {
        int len = (int)strlen(flava_st_get(st, i)->name);
        width = len > width ? len : width;
    }
    printf("tensors: %d\n  %-*s  %-5s  %-20s  %s\n", n, width, "name", "dtype", "shape", "elements");
    long long total = 0, bytes = 0;
    for (int i = 0; i < n; i++) {
        const flava_st_tensor *t = flava_st_get(st, i);
        char shape[160];
        flava_st_format_shape(shape, sizeof shape, t->ndim, t->shape);
        long long numel = (long long)flava_st_numel(t);
        printf("  %-*s  %-5s  %-20s  %lld\n", width, t->name, flava_dtype_name(t->dtype), shape, numel);
        total += numel;
        bytes += (long long)t->nbytes;
    }
    printf("total: %d tensors, %lld parameters, %lld bytes\n", n, total, bytes);
    flava_st_free(st);
    return FLAVA_OK;
}
