/* results.c - RUN_DIR/results.json, what `flava sweep` collects. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "task.h"
#include "tsv.h"

flava_status flava_results_write(const char *run_dir, const char *command, const char *task,
                                 const char *dataset, const char *metric,
                                 const char *const *names, const double *values, int n,
                                 double wall_seconds)
{
    if (flava_dist_rank() != 0) /* rank 0 writes for the run */
        return FLAVA_OK;
    int found = 0;
    for (int i = 0; i < n; i++)
        found |= !strcmp(names[i], metric);
    if (!found)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "results: the metric '%s' is not among the %d metrics",
                           metric, n);
    cJSON *root = cJSON_CreateObject(), *metrics = NULL;
    int ok = root && cJSON_AddStringToObject(root, "command", command) &&
             cJSON_AddStringToObject(root, "task", task) &&
             cJSON_AddStringToObject(root, "dataset", dataset) &&
             cJSON_AddStringToObject(root, "metric", metric);
    for (int i = 0; ok && i < n; i++)
        if (!strcmp(names[i], metric))
            ok = cJSON_AddNumberToObject(root, "value", values[i]) != NULL;
    ok = ok && (metrics = cJSON_AddObjectToObject(root, "metrics")) != NULL;
    for (int i = 0; ok && i < n; i++)
        ok = cJSON_AddNumberToObject(metrics, names[i], values[i]) != NULL;
    ok = ok && cJSON_AddNumberToObject(root, "wall_seconds", wall_seconds);
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "results: cannot build the JSON");
    flava_strbuf line = {0};
    flava_strbuf_add(&line, text, strlen(text));
    flava_strbuf_add(&line, "\n", 1);
    free(text);
    if (line.oom) {
        free(line.p);
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "results: cannot build the JSON");
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/results.json", run_dir);
    flava_status s = flava_file_write_atomic(path, line.p);
    free(line.p);
    return s;
}
