/* report.h - `flava report RUN_DIR`: an SVG of the loss and metric curves
 * and a Markdown summary, from the run's metrics.jsonl.
 *
 * metrics.jsonl holds one JSON object per line, each with an integer "step"
 * and any number of numeric fields ("loss", "loss_info.mlm", "lr",
 * "eval.accuracy", ...); non-numeric fields are ignored. */
#ifndef FLAVA_REPORT_H
#define FLAVA_REPORT_H

#include "status.h"

/* Reads RUN_DIR/metrics.jsonl, writes RUN_DIR/report.svg and
 * RUN_DIR/report.md. */
flava_status flava_report_write(const char *run_dir);

#endif
