/* cmd_tokenizer.c - `flava tokenizer train|encode|decode`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "spm.h"
#include "tokenizer.h"

static const char usage_text[] =
    "usage: flava tokenizer train --input FILE [--input FILE ...] --out PREFIX\n"
    "                             [--vocab-size N] [--type unigram|bpe] [--max-sentences N]\n"
    "       flava tokenizer encode --model M [--text TEXT [--pair TEXT]] [--max-len N] [--pieces]\n"
    "       flava tokenizer decode --model M [--keep-special] [ID ...]\n"
    "\n"
    "train   SentencePiece from text files (one sentence a line); writes PREFIX.model\n"
    "        with [UNK]=0 [CLS]=1 [SEP]=2 [PAD]=3 [MASK]=4 (vocab size 8000, unigram)\n"
    "encode  M is a SentencePiece .model or a BERT vocab.txt (or a folder with one).\n"
    "        Without --text, encodes each line of standard input. Prints the ids (or\n"
    "        pieces) of each text; with --max-len, the model inputs\n"
    "        [CLS] a [SEP] (b [SEP]) padded: input_ids, token_type_ids, attention_mask.\n"
    "decode  ids from the arguments, or one sequence per line of standard input;\n"
    "        special tokens are dropped unless --keep-special.\n";

static flava_status parse_int(int *out, const char *opt, const char *value, int lo)
{
    char *end;
    errno = 0;
    long v = value ? strtol(value, &end, 10) : 0;
    if (!value || errno || *end || end == value || v < lo || v > 1 << 30)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s expects an integer >= %d, got '%s'", opt, lo,
                           value ? value : "");
    *out = (int)v;
    return FLAVA_OK;
}

static flava_status need_value(int i, int argc, char **argv)
{
    if (i + 1 >= argc)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "%s needs a value", argv[i]);
    return FLAVA_OK;
}

static flava_status cmd_train(int argc, char **argv)
{
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (!inputs)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot parse arguments");
    flava_spm_train_opts o = {.inputs = inputs, .kind = FLAVA_SPM_UNIGRAM, .vocab_size = 8000};
    flava_status s = FLAVA_OK;
    for (int i = 0; i < argc && s == FLAVA_OK; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--input") && strcmp(a, "--out") && strcmp(a, "--vocab-size") &&
            strcmp(a, "--type") && strcmp(a, "--max-sentences")) {
            s = FLAVA_ERROR(FLAVA_ERR_ARG, "tokenizer train: unknown argument '%s'", a);
            break;
        }
        if ((s = need_value(i, argc, argv)) != FLAVA_OK)
            break;
        const char *v = argv[++i];
        if (!strcmp(a, "--input"))
            inputs[o.n_inputs++] = v;
        else if (!strcmp(a, "--out"))
            o.model_prefix = v;
        else if (!strcmp(a, "--vocab-size"))
            s = parse_int(&o.vocab_size, a, v, 8);
        else if (!strcmp(a, "--max-sentences"))
            s = parse_int(&o.max_sentences, a, v, 0);
        else if (!strcmp(v, "unigram") || !strcmp(v, "bpe"))
            o.kind = !strcmp(v, "bpe") ? FLAVA_SPM_BPE : FLAVA_SPM_UNIGRAM;
        else
            s = FLAVA_ERROR(FLAVA_ERR_ARG, "--type expects unigram or bpe, got '%s'", v);
    }
    if (s == FLAVA_OK && (o.n_inputs == 0 || !o.model_prefix))
        s = FLAVA_ERROR(FLAVA_ERR_ARG, "tokenizer train needs --input and --out");
    if (s == FLAVA_OK && (s = flava_spm_train(&o)) == FLAVA_OK)
        printf("wrote %s.model and %s.vocab\n", o.model_prefix, o.model_prefix);
    free(inputs);
    return s;
}

static void print_ids(const int32_t *ids, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
}

typedef struct encode_args {
    const char *model, *text, *pair;
    int max_len, pieces;
} encode_args;

static flava_status encode_one(const flava_tokenizer *tok, const encode_args *a, const char *text)
{
    if (a->max_len > 0) {
        size_t n = (size_t)a->max_len;
        int32_t *ids = malloc(n * sizeof *ids), *types = malloc(n * sizeof *types);
        float *mask = malloc(n * sizeof *mask);
        flava_status s = ids && types && mask ? FLAVA_OK
                         : FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate %zu positions", n);
        if (s == FLAVA_OK)
            s = flava_tokenizer_encode(ids, types, mask, NULL, tok, text, a->pair, a->max_len);
        if (s == FLAVA_OK) {
            printf("input_ids:");
            for (size_t i = 0; i < n; i++)
                printf(" %d", ids[i]);
            printf("\ntoken_type_ids:");
            for (size_t i = 0; i < n; i++)
                printf(" %d", types[i]);
            printf("\nattention_mask:");
            for (size_t i = 0; i < n; i++)
                printf(" %d", (int)mask[i]);
            printf("\n");
        }
        free(ids);
        free(types);
        free(mask);
        return s;
    }
    int32_t *ids;
    int64_t n;
    FLAVA_TRY(flava_tokenizer_tokenize(&ids, &n, tok, text));
    if (a->pieces) {
        for (int64_t i = 0; i < n; i++)
            printf("%s%s", i ? " " : "", flava_tokenizer_id_to_piece(tok, ids[i]));
        printf("\n");
    } else {
        print_ids(ids, n);
    }
    free(ids);
    return FLAVA_OK;
}

/* Calls fn on each line of standard input, without its newline. */
static flava_status each_stdin_line(flava_status (*fn)(const flava_tokenizer *, const void *,
                                                        const char *),
                                    const flava_tokenizer *tok, const void *arg)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    flava_status s = FLAVA_OK;
    while (s == FLAVA_OK && (len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if ((s = fn(tok, arg, line)) != FLAVA_OK)
            flava_error_context("standard input line %ld", lineno);
    }
    free(line);
    return s;
}

static flava_status encode_line(const flava_tokenizer *tok, const void *arg, const char *line)
{
    return encode_one(tok, arg, line);
}

static flava_status cmd_encode(int argc, char **argv)
{
    encode_args a = {0};
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--pieces")) {
            a.pieces = 1;
            continue;
        }
        if (strcmp(o, "--model") && strcmp(o, "--text") && strcmp(o, "--pair") &&
            strcmp(o, "--max-len"))
            return FLAVA_ERROR(FLAVA_ERR_ARG, "tokenizer encode: unknown argument '%s'", o);
        FLAVA_TRY(need_value(i, argc, argv));
        const char *v = argv[++i];
        if (!strcmp(o, "--model"))
            a.model = v;
        else if (!strcmp(o, "--text"))
            a.text = v;
        else if (!strcmp(o, "--pair"))
            a.pair = v;
        else
            FLAVA_TRY(parse_int(&a.max_len, o, v, 2));
    }
    if (!a.model)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "tokenizer encode needs --model");
    if (a.pair && (!a.text || !a.max_len))
        return FLAVA_ERROR(FLAVA_ERR_ARG, "--pair goes with --text and --max-len");
    flava_tokenizer *tok;
    FLAVA_TRY(flava_tokenizer_load(&tok, a.model));
    flava_status s = a.text ? encode_one(tok, &a, a.text) : each_stdin_line(encode_line, tok, &a);
    flava_tokenizer_free(tok);
    return s;
}

static flava_status parse_ids(int32_t *ids, int64_t *n, char **words, int count,
                              const flava_tokenizer *tok)
{
    *n = 0;
    for (int i = 0; i < count; i++) {
        int v;
        FLAVA_TRY(parse_int(&v, "an id", words[i], 0));
        if (v >= tok->vocab_size)
            return FLAVA_ERROR(FLAVA_ERR_ARG, "id %d is outside the vocabulary (size %d)", v,
                               tok->vocab_size);
        ids[(*n)++] = v;
    }
    return FLAVA_OK;
}

static flava_status decode_words(const flava_tokenizer *tok, char **words, int count, int keep)
{
    int32_t *ids = malloc(((size_t)count + 1) * sizeof *ids);
    if (!ids)
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot hold %d ids", count);
    int64_t n;
    char *text = NULL;
    flava_status s = parse_ids(ids, &n, words, count, tok);
    if (s == FLAVA_OK && (s = flava_tokenizer_decode(&text, tok, ids, n, !keep)) == FLAVA_OK)
        printf("%s\n", text);
    free(text);
    free(ids);
    return s;
}

static flava_status decode_line(const flava_tokenizer *tok, const void *arg, const char *line)
{
    char *copy = strdup(line);
    char **words = malloc((strlen(line) / 2 + 2) * sizeof *words);
    flava_status s = FLAVA_OK;
    if (!copy || !words)
        s = FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot split a line of ids");
    int count = 0;
    char *save = NULL;
    for (char *w = copy ? strtok_r(copy, " \t", &save) : NULL; w && s == FLAVA_OK;
         w = strtok_r(NULL, " \t", &save))
        words[count++] = w;
    if (s == FLAVA_OK)
        s = decode_words(tok, words, count, *(const int *)arg);
    free(words);
    free(copy);
    return s;
}

static flava_status cmd_decode(int argc, char **argv)
{
    const char *model = NULL;
    int keep = 0, first_id = argc;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--keep-special")) {
            keep = 1;
        } else if (!strcmp(argv[i], "--model")) {
            FLAVA_TRY(need_value(i, argc, argv));
            model = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return FLAVA_ERROR(FLAVA_ERR_ARG, "tokenizer decode: unknown argument '%s'", argv[i]);
        } else {
            first_id = i;
            break;
        }
    }
    if (!model)
        return FLAVA_ERROR(FLAVA_ERR_ARG, "tokenizer decode needs --model");
    flava_tokenizer *tok;
    FLAVA_TRY(flava_tokenizer_load(&tok, model));
    flava_status s = first_id < argc ? decode_words(tok, argv + first_id, argc - first_id, keep)
                                     : each_stdin_line(decode_line, tok, &keep);
    flava_tokenizer_free(tok);
    return s;
}

flava_status flava_cmd_tokenizer(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help")) {
        fputs(usage_text, argc < 1 ? stderr : stdout);
        return argc < 1 ? FLAVA_ERROR(FLAVA_ERR_ARG, "tokenizer needs train, encode or decode")
                        : FLAVA_OK;
    }
    if (!strcmp(argv[0], "train"))
        return cmd_train(argc - 1, argv + 1);
    if (!strcmp(argv[0], "encode"))
        return cmd_encode(argc - 1, argv + 1);
    if (!strcmp(argv[0], "decode"))
        return cmd_decode(argc - 1, argv + 1);
    return FLAVA_ERROR(FLAVA_ERR_ARG, "tokenizer: unknown verb '%s' (train, encode, decode)",
                       argv[0]);
}
