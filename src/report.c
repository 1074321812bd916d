/* report.c - curves from metrics.jsonl to SVG (one panel per field) and a
 * Markdown table of each field's first, last, min and max. */
#include "report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_SERIES = 32, NAME_MAX_LEN = 96 };

typedef struct series {
    char name[NAME_MAX_LEN];
    double *step, *value;
    size_t n, cap;
} series;

typedef struct report {
    series s[MAX_SERIES];
    int count;
} report;

static void report_free(report *r)
{
    for (int i = 0; i < r->count; i++) {
        free(r->s[i].step);
        free(r->s[i].value);
    }
}

static flava_status series_add(report *r, const char *name, double step, double value,
                               const char *path, int line)
{
    series *s = NULL;
    for (int i = 0; i < r->count && !s; i++)
        if (!strcmp(r->s[i].name, name))
            s = &r->s[i];
    if (!s) {
        if (r->count == MAX_SERIES)
            return FLAVA_OK; /* the first MAX_SERIES fields are plotted; more would be unreadable */
        s = &r->s[r->count++];
        snprintf(s->name, sizeof s->name, "%s", name);
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        double *st = realloc(s->step, cap * sizeof *st);
        if (st)
            s->step = st;
        double *va = st ? realloc(s->value, cap * sizeof *va) : NULL;
        if (va)
            s->value = va;
        if (!st || !va)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "%s:%d: cannot grow series '%s'", path, line, name);
        s->cap = cap;
    }
    s->step[s->n] = step;
    s->value[s->n] = value;
    s->n++;
    return FLAVA_OK;
}

static flava_status read_metrics(report *r, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot open %s (is this a run directory?)", path);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    flava_status s = FLAVA_OK;
    while (s == FLAVA_OK && getline(&line, &cap, f) > 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        cJSON *obj = cJSON_Parse(line);
        const cJSON *step = obj ? cJSON_GetObjectItemCaseSensitive(obj, "step") : NULL;
        if (!cJSON_IsObject(obj) || !cJSON_IsNumber(step)) {
            s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s:%d: expected a JSON object with a numeric \"step\"",
                            path, lineno);
        } else {
            const cJSON *item;
            cJSON_ArrayForEach(item, obj)
            {
                if (item != step && cJSON_IsNumber(item) && isfinite(item->valuedouble) &&
                    (s = series_add(r, item->string, step->valuedouble, item->valuedouble, path,
                                    lineno)) != FLAVA_OK)
                    break;
            }
        }
        cJSON_Delete(obj);
    }
    free(line);
    fclose(f);
    if (s == FLAVA_OK && r->count == 0)
        s = FLAVA_ERROR(FLAVA_ERR_FORMAT, "%s holds no numeric metrics", path);
    return s;
}

static void range(const double *x, size_t n, double *lo, double *hi)
{
    *lo = *hi = x[0];
    for (size_t i = 1; i < n; i++) {
        *lo = x[i] < *lo ? x[i] : *lo;
        *hi = x[i] > *hi ? x[i] : *hi;
    }
    if (*hi - *lo < 1e-12 * (fabs(*hi) + 1)) { /* flat: give the axis some height */
        *lo -= 0.5;
        *hi += 0.5;
    }
}

/* One panel per series, two columns, each with its axes' extremes written. */
static void write_svg(FILE *f, const report *r)
{
    const int W = 420, H = 220, cols = 2, pad = 40;
    int rows = (r->count + cols - 1) / cols;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n", cols * W, rows * H);
    for (int i = 0; i < r->count; i++) {
        const series *s = &r->s[i];
        int x0 = (i % cols) * W + pad, y0 = (i / cols) * H + 20;
        int pw = W - pad - 20, ph = H - 60;
        double xlo, xhi, ylo, yhi;
        range(s->step, s->n, &xlo, &xhi);
        range(s->value, s->n, &ylo, &yhi);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s</text>\n", x0, y0 - 6, s->name);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n",
                x0, y0, pw, ph);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>\n", x0 - 3, y0 + 10, yhi);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>\n", x0 - 3, y0 + ph, ylo);
        fprintf(f, "<text x=\"%d\" y=\"%d\">%.0f</text>\n", x0, y0 + ph + 14, xlo);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.0f</text>\n", x0 + pw, y0 + ph + 14, xhi);
        fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
        for (size_t k = 0; k < s->n; k++)
            fprintf(f, "%s%.1f,%.1f", k ? " " : "", x0 + pw * (s->step[k] - xlo) / (xhi - xlo),
                    y0 + ph - ph * (s->value[k] - ylo) / (yhi - ylo));
        fprintf(f, "\"/>\n");
    }
    fprintf(f, "</svg>\n");
}

static void write_md(FILE *f, const report *r, const char *run_dir)
{
    fprintf(f, "# Run %s\n\n![curves](report.svg)\n\n", run_dir);
    fprintf(f, "| metric | points | first | last | min | max |\n|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < r->count; i++) {
        const series *s = &r->s[i];
        double mn = s->value[0], mx = s->value[0];
        for (size_t k = 1; k < s->n; k++) {
            mn = s->value[k] < mn ? s->value[k] : mn;
            mx = s->value[k] > mx ? s->value[k] : mx;
        }
        fprintf(f, "| %s | %zu | %.6g | %.6g | %.6g | %.6g |\n", s->name, s->n, s->value[0],
                s->value[s->n - 1], mn, mx);
    }
}

static flava_status write_file(const char *dir, const char *name, const report *r,
                               void (*writer)(FILE *, const report *, const char *))
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return FLAVA_ERROR(FLAVA_ERR_IO, "cannot write %s", path);
    writer(f, r, dir);
    if (fclose(f) != 0)
        return FLAVA_ERROR(FLAVA_ERR_IO, "writing %s failed (disk full?)", path);
    return FLAVA_OK;
}

static void svg_writer(FILE *f, const report *r, const char *dir)
{
    (void)dir;
    write_svg(f, r);
}

flava_status flava_report_write(const char *run_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    report r = {.count = 0};
    flava_status s = read_metrics(&r, path);
    if (s == FLAVA_OK)
        s = write_file(run_dir, "report.svg", &r, svg_writer);
    if (s == FLAVA_OK)
        s = write_file(run_dir, "report.md", &r, write_md);
    report_free(&r);
    return s;
}
