/* cli.h - the subcommands of the `flava` program. Each takes the arguments
 * after its name and returns a status; only main() prints errors and exits. */
#ifndef FLAVA_CLI_H
#define FLAVA_CLI_H

#include "status.h"

typedef struct flava_command {
    const char *name;
    const char *summary;
    flava_status (*run)(int argc, char **argv);
} flava_command;

flava_status flava_cmd_data(int argc, char **argv); /* data VERB: generators, converters */
flava_status flava_cmd_forward(int argc, char **argv);
flava_status flava_cmd_info(int argc, char **argv);
flava_status flava_cmd_report(int argc, char **argv);
flava_status flava_cmd_data(int argc, char **argv); /* data VERB: generators */
flava_status flava_cmd_tokenizer(int argc, char **argv);
flava_status flava_cmd_data_spam(int argc, char **argv); /* `flava data spam`, wired by cmd_data.c */
flava_status flava_cmd_sweep(int argc, char **argv);

flava_status flava_cmd_pretrain(int argc, char **argv); /* src/cmd_run.c, with the four below */
flava_status flava_cmd_finetune(int argc, char **argv);
flava_status flava_cmd_eval(int argc, char **argv);
flava_status flava_cmd_bench(int argc, char **argv);
flava_status flava_cmd_help(int argc, char **argv);

#endif
