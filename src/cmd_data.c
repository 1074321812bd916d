/* cmd_data.c - `flava data VERB ...`: data set generators, one verb each. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "scenes.h"

/* Parses an integer option value in [lo, hi]. */
static flava_status parse_long(long *out, const char *flag, const char *text, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (!text[0] || *end || errno || v < lo || v > hi)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s '%s': expected an integer from %ld to %ld", flag,
                           text, lo, hi);
    *out = v;
    return FLAVA_OK;
}

static void scenes_usage(void)
{
    printf("usage: flava data scenes --out DIR [--train N] [--test N] [--seed S] [--size PX]\n"
           "                         [--questions Q] [--fashion-mnist DIR]\n\n"
           "Composes Fashion-MNIST items into 2x2 grid scenes and writes, for each split,\n"
           "DIR/SPLIT/images/*.png, captions.tsv, questions.json, annotations.json and\n"
           "classes.txt. Defaults: --train 1000 --test 200 --seed 0 --size 56 --questions 3\n"
           "--fashion-mnist /usr/share/datasets/fashion-mnist\n");
}

static flava_status data_scenes(int argc, char **argv)
{
    flava_scenes_opts o = {
        .fashion_mnist_dir = "/usr/share/datasets/fashion-mnist",
        .n_train = 1000, .n_test = 200, .size = 56, .questions = 3, .seed = 0,
    };
    for (int i = 0; i < argc; i++) {
        const char *flag = argv[i];
        if (!strcmp(flag, "--help")) {
            scenes_usage();
            return FLAVA_OK;
        }
        if (i + 1 >= argc)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "scenes: %s needs a value (see --help)", flag);
        const char *val = argv[++i];
        long v;
        if (!strcmp(flag, "--out"))
            o.out_dir = val;
        else if (!strcmp(flag, "--fashion-mnist"))
            o.fashion_mnist_dir = val;
        else if (!strcmp(flag, "--train"))
            FLAVA_TRY(parse_long(&o.n_train, flag, val, 0, 10000000));
        else if (!strcmp(flag, "--test"))
            FLAVA_TRY(parse_long(&o.n_test, flag, val, 0, 10000000));
        else if (!strcmp(flag, "--seed")) {
            FLAVA_TRY(parse_long(&v, flag, val, 0, INT64_MAX));
            o.seed = (uint64_t)v;
        } else if (!strcmp(flag, "--size")) {
            FLAVA_TRY(parse_long(&v, flag, val, 56, 4096));
            o.size = (int)v;
        } else if (!strcmp(flag, "--questions")) {
            FLAVA_TRY(parse_long(&v, flag, val, 1, 3));
            o.questions = (int)v;
        } else
            return FLAVA_ERROR(FLAVA_ERR_ARG, "scenes: unknown option '%s' (see --help)", flag);
    }
    if (!o.out_dir)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "scenes: --out DIR is required (see --help)");
    return flava_scenes_generate(&o);
}

static const struct {
    const char *verb, *summary;
    flava_status (*run)(int argc, char **argv);
} verbs[] = {
    {"scenes", "Fashion-MNIST grid scenes with captions and VQA questions", data_scenes},
    {"spam", "SpamAssassin mails to SST-2 splits and a text corpus", flava_cmd_data_spam},
};

flava_status flava_cmd_data(int argc, char **argv)
{
    size_t n = sizeof verbs / sizeof verbs[0];
    if (argc >= 1 && !strcmp(argv[0], "--help")) {
        printf("usage: flava data VERB [ARGS...]\n\nverbs:\n");
        for (size_t i = 0; i < n; i++)
            printf("  %-8s %s\n", verbs[i].verb, verbs[i].summary);
        return FLAVA_OK;
    }
    for (size_t i = 0; argc >= 1 && i < n; i++)
        if (!strcmp(argv[0], verbs[i].verb))
            return verbs[i].run(argc - 1, argv + 1);
    char known[256] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 verbs[i].verb);
    return FLAVA_ERROR(FLAVA_ERR_ARG, "data: %s '%s', expected one of: %s",
                       argc ? "unknown verb" : "missing verb", argc ? argv[0] : "", known);
}
