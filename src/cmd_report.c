/* cmd_report.c - `flava report RUN_DIR`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report.h"

flava_status flava_cmd_report(int argc, char **argv)
{
    if (argc != 1 || !strcmp(argv[0], "--help")) {
        if (argc == 1) {
            printf("usage: flava report RUN_DIR\n\nWrites RUN_DIR/report.svg (loss and metric curves)\n"
                   "and RUN_DIR/report.md (a summary table) from RUN_DIR/metrics.jsonl.\n");
            return FLAVA_OK;
        }
        return FLAVA_ERROR(FLAVA_ERR_ARG, "usage: flava report RUN_DIR");
    }
    FLAVA_TRY(flava_report_write(argv[0]));
    printf("wrote %s/report.svg and %s/report.md\n", argv[0], argv[0]);
    return FLAVA_OK;
}
