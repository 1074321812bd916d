/* check_tokenizers.c - SentencePiece against the Python package, WordPiece
 * against hand-checked ids, the [CLS] a [SEP] b [SEP] layout. */
#include "testutil.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "spm.h"
#include "tokenizer.h"
#include "wordpiece.h"

#define FIX "tests/fixtures/tok/"

static char *read_lines(const char *rel, char ***lines, int *n)
{
    char path[4096];
    FILE *f = fopen(test_path(path, sizeof path, rel), "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)len, f), len);
    buf[len] = '\0';
    fclose(f);
    *n = 0;
    *lines = malloc(((size_t)len + 1) * sizeof(char *));
    for (char *p = buf; *p;) {
        char *nl = strchr(p, '\n');
        (*lines)[(*n)++] = p;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    return buf;
}

/* ---- SentencePiece -------------------------------------------------------- */

/* Every line of spm_texts.txt encoded (ids, pieces) and decoded as the
 * Python package did into `expected`. */
static void check_against_python(const flava_spm *sp, const char *expected)
{
    char **texts, **expect;
    int nt, ne;
    char *b1 = read_lines(FIX "spm_texts.txt", &texts, &nt);
    char *b2 = read_lines(expected, &expect, &ne);
    ck_assert_int_eq(ne, 3 * nt);
    for (int i = 0; i < nt; i++) {
        int32_t *ids;
        int64_t n;
        ck_assert_int_eq(flava_spm_encode_ids(&ids, &n, sp, texts[i]), FLAVA_OK);
        char got[4096] = "";
        for (int64_t k = 0; k < n; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", k ? " " : "", ids[k]);
        ck_assert_msg(strcmp(got, expect[3 * i]) == 0, "%s text %d ids: got '%s', python '%s'",
                      expected, i, got, expect[3 * i]);
        char **pieces;
        int64_t np;
        ck_assert_int_eq(flava_spm_encode_pieces(&pieces, &np, sp, texts[i]), FLAVA_OK);
        ck_assert_int_eq(np, n);
        got[0] = '\0';
        for (int64_t k = 0; k < np; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", k ? "\t" : "", pieces[k]);
        ck_assert_msg(strcmp(got, expect[3 * i + 1]) == 0, "%s text %d pieces: got '%s', "
                      "python '%s'", expected, i, got, expect[3 * i + 1]);
        char *dec;
        ck_assert_int_eq(flava_spm_decode(&dec, sp, ids, n), FLAVA_OK);
        ck_assert_str_eq(dec, expect[3 * i + 2]);
        free(dec);
        free(ids);
        flava_spm_pieces_free(pieces, np);
    }
    free(texts);
    free(expect);
    free(b1);
    free(b2);
}

START_TEST(test_spm_matches_python)
{
    char path[4096];
    flava_spm *sp;
    ck_assert_int_eq(flava_spm_load(&sp, test_path(path, sizeof path, FIX "spm_unigram.model")),
                     FLAVA_OK);
    ck_assert_int_eq(flava_spm_vocab_size(sp), 300);
    check_against_python(sp, FIX "spm_expected_unigram.txt");
    ck_assert_int_eq(flava_spm_piece_to_id(sp, "[MASK]"), 4);
    ck_assert_int_eq(flava_spm_piece_to_id(sp, "no-such-piece"), -1);
    ck_assert_str_eq(flava_spm_id_to_piece(sp, 1), "[CLS]");
    ck_assert_ptr_null(flava_spm_id_to_piece(sp, 300));
    int32_t bad = 300;
    char *dec;
    ck_assert_int_eq(flava_spm_decode(&dec, sp, &bad, 1), FLAVA_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "id 300"));
    flava_spm_free(sp);
}
END_TEST

/* Trains with the settings of tests/reference/spm_fixtures.py: the model
 * must encode as the Python-trained one does. */
static void train_and_check(flava_spm_kind kind, const char *expected)
{
    char dir[] = "/tmp/flava_tok_XXXXXX", prefix[256], model[300], input[4096];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(prefix, sizeof prefix, "%s/m", dir);
    const char *inputs[] = {test_path(input, sizeof input, FIX "spm_train.txt")};
    flava_spm_train_opts o = {.inputs = inputs, .n_inputs = 1, .model_prefix = prefix,
                              .kind = kind, .vocab_size = 300};
    ck_assert_msg(flava_spm_train(&o) == FLAVA_OK, "%s", flava_error_message());
    snprintf(model, sizeof model, "%s.model", prefix);
    flava_tokenizer *tok;
    ck_assert_int_eq(flava_tokenizer_load(&tok, model), FLAVA_OK);
    ck_assert_int_eq(tok->kind, FLAVA_TOKENIZER_SENTENCEPIECE);
    ck_assert_int_eq(tok->unk_id, 0);
    ck_assert_int_eq(tok->cls_id, 1);
    ck_assert_int_eq(tok->sep_id, 2);
    ck_assert_int_eq(tok->pad_id, 3);
    ck_assert_int_eq(tok->mask_id, 4);
    ck_assert_int_le(tok->vocab_size, 300);
    ck_assert_int_ge(tok->vocab_size, 200);
    check_against_python(tok->spm, expected);
    const char *text = "The seed decides everything: data order, masks, init, dropout.";
    int32_t *ids;
    int64_t n;
    ck_assert_int_eq(flava_tokenizer_tokenize(&ids, &n, tok, text), FLAVA_OK);
    ck_assert_int_gt(n, 5);
    ck_assert_int_lt(n, (int64_t)strlen(text));
    for (int64_t i = 0; i < n; i++)
        ck_assert_int_ne(ids[i], tok->unk_id); /* every character was in training */
    char *dec;
    ck_assert_int_eq(flava_tokenizer_decode(&dec, tok, ids, n, 1), FLAVA_OK);
    ck_assert_str_eq(dec, text);
    free(dec);
    free(ids);
    flava_tokenizer_free(tok);
    unlink(model);
    snprintf(model, sizeof model, "%s.vocab", prefix);
    unlink(model);
    rmdir(dir);
}

START_TEST(test_spm_train_unigram) { train_and_check(FLAVA_SPM_UNIGRAM, FIX "spm_expected_unigram.txt"); }
END_TEST

START_TEST(test_spm_train_bpe) { train_and_check(FLAVA_SPM_BPE, FIX "spm_expected_bpe.txt"); }
END_TEST

START_TEST(test_spm_errors)
{
    flava_spm *sp;
    ck_assert_int_eq(flava_spm_load(&sp, "/nonexistent/x.model"), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "/nonexistent/x.model"));
    ck_assert_ptr_null(sp);
    char path[4096];
    ck_assert_int_eq(flava_spm_load(&sp, test_path(path, sizeof path, FIX "vocab.txt")),
                     FLAVA_ERR_FORMAT); /* not a model */
    const char *inputs[] = {"/nonexistent/corpus.txt"};
    flava_spm_train_opts o = {.inputs = inputs, .n_inputs = 1, .model_prefix = "/tmp/flava_never",
                              .kind = FLAVA_SPM_UNIGRAM, .vocab_size = 100};
    ck_assert_int_ne(flava_spm_train(&o), FLAVA_OK);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "corpus.txt"));
    o.vocab_size = 2;
    ck_assert_int_eq(flava_spm_train(&o), FLAVA_ERR_ARG);
}
END_TEST

/* ---- WordPiece ------------------------------------------------------------ */

static flava_wordpiece *load_vocab(void)
{
    char path[4096];
    flava_wordpiece *wp;
    ck_assert_int_eq(flava_wordpiece_load(&wp, test_path(path, sizeof path, FIX "vocab.txt")),
                     FLAVA_OK);
    return wp;
}

/* Expected ids worked out by hand from tests/fixtures/tok/vocab.txt
 * (line number = id; [UNK] = 1). */
static const struct {
    const char *text;
    int n;
    int32_t ids[16];
} wp_cases[] = {
    {"", 0, {0}},
    {"   \t\n ", 0, {0}},
    {"Hello, World!", 4, {13, 10, 14, 12}},
    {"unaffable", 3, {7, 8, 9}},
    {"Café  Naïve\tRésumé", 3, {6, 19, 20}},           /* accents stripped */
    {"cafe\xcc\x81", 1, {6}},                             /* combining acute dropped */
    {"\xe4\xb8\xad\xe5\x9b\xbd" "abc", 5, {21, 22, 23, 24, 25}}, /* 中国abc */
    {"don't", 3, {27, 26, 28}},
    {"$50!", 4, {29, 30, 31, 12}},
    {"plays playing xyz", 5, {16, 15, 16, 17, 1}},
    {"playingx", 1, {1}},                                 /* no full match: one [UNK] */
    {"ThE HeLLo", 2, {5, 13}},
    {"hel\x01lo\x7f wor\xe2\x80\x8bld\xc2\xad", 2, {13, 14}}, /* Cc, ZWSP (Cf), soft hyphen */
    {"hello\xc2\xa0world\xe3\x80\x80the", 3, {13, 14, 5}},    /* NBSP, ideographic space */
    {"\xc3\xbc" "ber Stra\xc3\x9f" "e", 4, {32, 33, 34, 35}}, /* über Straße: ß stays */
    {"\xed\x95\x9c", 3, {36, 37, 38}},                    /* 한 -> jamo */
    {"hello\xe3\x80\x82world", 3, {13, 1, 14}},           /* 。 is punctuation, unknown */
    {"x-x", 3, {41, 39, 41}},
    {"[MASK]", 3, {1, 1, 1}},                             /* [ mask ]: not special in text */
};

START_TEST(test_wordpiece_cases)
{
    flava_wordpiece *wp = load_vocab();
    ck_assert_int_eq(flava_wordpiece_vocab_size(wp), 42);
    for (size_t c = 0; c < sizeof wp_cases / sizeof wp_cases[0]; c++) {
        int32_t *ids;
        int64_t n;
        const char *t = wp_cases[c].text;
        ck_assert_msg(flava_wordpiece_encode(&ids, &n, wp, t, strlen(t)) == FLAVA_OK, "%s",
                      flava_error_message());
        ck_assert_msg(n == wp_cases[c].n, "case %zu '%s': %lld tokens, expected %d", c, t,
                      (long long)n, wp_cases[c].n);
        for (int64_t i = 0; i < n; i++)
            ck_assert_msg(ids[i] == wp_cases[c].ids[i], "case %zu '%s' token %lld: %d, expected %d",
                          c, t, (long long)i, ids[i], wp_cases[c].ids[i]);
        free(ids);
    }
    flava_wordpiece_free(wp);
}
END_TEST

/* 300 lines (SpamAssassin ham and random characters from all of Unicode)
 * against tests/reference/wordpiece_reference.py, an independent rendering
 * of BERT's tokenizer on Python's own lower(), NFD and categories. */
START_TEST(test_wordpiece_matches_python_reference)
{
    char path[4096];
    flava_wordpiece *wp;
    ck_assert_int_eq(flava_wordpiece_load(&wp, test_path(path, sizeof path, FIX "wp_vocab.txt")),
                     FLAVA_OK);
    char **texts, **expect;
    int nt, ne;
    char *b1 = read_lines(FIX "wp_texts.txt", &texts, &nt);
    char *b2 = read_lines(FIX "wp_expected.txt", &expect, &ne);
    ck_assert_int_eq(nt, 300);
    ck_assert_int_eq(ne, nt);
    for (int i = 0; i < nt; i++) {
        int32_t *ids;
        int64_t n;
        ck_assert_msg(flava_wordpiece_encode(&ids, &n, wp, texts[i], strlen(texts[i])) == FLAVA_OK,
                      "line %d: %s", i + 1, flava_error_message());
        char *e = expect[i];
        for (int64_t k = 0; k < n; k++) {
            char *end;
            long want = strtol(e, &end, 10);
            ck_assert_msg(end != e, "line %d: %lld tokens, the reference has fewer", i + 1,
                          (long long)n);
            ck_assert_msg(ids[k] == want, "line %d token %lld: %d (%s), reference %ld (%s)", i + 1,
                          (long long)k, ids[k], flava_wordpiece_id_to_piece(wp, ids[k]), want,
                          flava_wordpiece_id_to_piece(wp, (int32_t)want));
            e = end;
        }
        while (*e == ' ')
            e++;
        ck_assert_msg(*e == '\0', "line %d: %lld tokens, the reference has more", i + 1,
                      (long long)n);
        free(ids);
    }
    free(texts);
    free(expect);
    free(b1);
    free(b2);
    flava_wordpiece_free(wp);
}
END_TEST

START_TEST(test_wordpiece_long_word)
{
    flava_wordpiece *wp = load_vocab();
    char word[102];
    memset(word, 'A', sizeof word);
    int32_t *ids;
    int64_t n;
    /* 100 characters: a ##a ##a ... ; 101: [UNK] */
    ck_assert_int_eq(flava_wordpiece_encode(&ids, &n, wp, word, 100), FLAVA_OK);
    ck_assert_int_eq(n, 100);
    ck_assert_int_eq(ids[0], 23);
    ck_assert_int_eq(ids[99], 40);
    free(ids);
    ck_assert_int_eq(flava_wordpiece_encode(&ids, &n, wp, word, 101), FLAVA_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 1);
    free(ids);
    flava_wordpiece_free(wp);
}
END_TEST

START_TEST(test_wordpiece_invalid_utf8)
{
    flava_wordpiece *wp = load_vocab();
    static const struct {
        const char *text;
        const char *offset;
    } bad[] = {
        {"ab\xff" "cd", "offset 2 "},
        {"hello \xc3", "offset 6 "},             /* truncated */
        {"\xc0\xaf", "offset 0 "},               /* overlong '/' */
        {"ok \xed\xa0\x80", "offset 3 "},        /* surrogate */
        {"\xf4\x90\x80\x80", "offset 0 "},       /* past U+10FFFF */
        {"caf\xc3\xa9 \xe2\x82", "offset 6 "},   /* after a valid 2-byte char */
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        int32_t *ids;
        int64_t n;
        ck_assert_int_eq(flava_wordpiece_encode(&ids, &n, wp, bad[c].text, strlen(bad[c].text)),
                         FLAVA_ERR_FORMAT);
        ck_assert_msg(strstr(flava_error_message(), bad[c].offset) != NULL, "case %zu: '%s'", c,
                      flava_error_message());
        ck_assert_ptr_null(ids);
    }
    flava_wordpiece_free(wp);
}
END_TEST

START_TEST(test_wordpiece_decode)
{
    flava_wordpiece *wp = load_vocab();
    int32_t ids[] = {7, 8, 9, 16, 17, 10, 14, 12};
    char *text;
    ck_assert_int_eq(flava_wordpiece_decode(&text, wp, ids, 8), FLAVA_OK);
    ck_assert_str_eq(text, "unaffable playing , world !");
    free(text);
    int32_t lead[] = {15, 13}; /* a leading continuation keeps its ## */
    ck_assert_int_eq(flava_wordpiece_decode(&text, wp, lead, 2), FLAVA_OK);
    ck_assert_str_eq(text, "##s hello");
    free(text);
    int32_t bad = 42;
    ck_assert_int_eq(flava_wordpiece_decode(&text, wp, &bad, 1), FLAVA_ERR_ARG);
    ck_assert_int_eq(flava_wordpiece_piece_to_id(wp, "##ß"), 34);
    ck_assert_int_eq(flava_wordpiece_piece_to_id(wp, "ß"), -1);
    flava_wordpiece_free(wp);
}
END_TEST

static flava_status load_text(flava_wordpiece **wp, const char *text)
{
    char path[] = "/tmp/flava_vocab_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    flava_status s = flava_wordpiece_load(wp, path);
    unlink(path);
    return s;
}

START_TEST(test_wordpiece_bad_vocab)
{
    flava_wordpiece *wp;
    ck_assert_int_eq(flava_wordpiece_load(&wp, "/nonexistent/vocab.txt"), FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "/nonexistent/vocab.txt"));
    ck_assert_int_eq(load_text(&wp, ""), FLAVA_ERR_FORMAT);
    ck_assert_int_eq(load_text(&wp, "[UNK]\na\nb\na\n"), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), ":4: token 'a' repeats line 2"));
    ck_assert_int_eq(load_text(&wp, "[UNK]\n\nb\n"), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), ":2: empty token"));
    ck_assert_int_eq(load_text(&wp, "a\nb\n"), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "no [UNK]"));
    /* CRLF lines and a missing final newline are accepted */
    ck_assert_int_eq(load_text(&wp, "[UNK]\r\nhello\r\n##s"), FLAVA_OK);
    ck_assert_int_eq(flava_wordpiece_piece_to_id(wp, "hello"), 1);
    ck_assert_int_eq(flava_wordpiece_piece_to_id(wp, "##s"), 2);
    flava_wordpiece_free(wp);
}
END_TEST

/* ---- The common interface ------------------------------------------------- */

static flava_tokenizer *load_wp_tokenizer(void)
{
    char path[4096];
    flava_tokenizer *tok;
    ck_assert_int_eq(flava_tokenizer_load(&tok, test_path(path, sizeof path, FIX "vocab.txt")),
                     FLAVA_OK);
    ck_assert_int_eq(tok->kind, FLAVA_TOKENIZER_WORDPIECE);
    return tok;
}

static void check_row(const int32_t *got, const int32_t *want, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s[%d] = %d, expected %d", what, i, got[i], want[i]);
}

START_TEST(test_encode_pair_and_padding)
{
    flava_tokenizer *tok = load_wp_tokenizer();
    ck_assert_int_eq(tok->cls_id, 2);
    ck_assert_int_eq(tok->sep_id, 3);
    ck_assert_int_eq(tok->pad_id, 0);
    ck_assert_int_eq(tok->mask_id, 4);
    ck_assert_int_eq(tok->unk_id, 1);
    int32_t ids[10], types[10];
    float mask[10];
    int64_t n;
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, "Hello world", "plays", 10),
                     FLAVA_OK);
    ck_assert_int_eq(n, 7);
    check_row(ids, (int32_t[]){2, 13, 14, 3, 16, 15, 3, 0, 0, 0}, 10, "input_ids");
    check_row(types, (int32_t[]){0, 0, 0, 0, 1, 1, 1, 0, 0, 0}, 10, "token_type_ids");
    for (int i = 0; i < 10; i++)
        ck_assert_float_eq(mask[i], i < 7 ? 1.0f : 0.0f);
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, "the cafe", NULL, 6),
                     FLAVA_OK);
    ck_assert_int_eq(n, 4);
    check_row(ids, (int32_t[]){2, 5, 6, 3, 0, 0}, 6, "input_ids");
    check_row(types, (int32_t[]){0, 0, 0, 0, 0, 0}, 6, "token_type_ids");
    /* special tokens in the text stay whole; the pieces around are tokenized */
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, "The [MASK]cafe[SEP] [UNK]x",
                                            NULL, 10), FLAVA_OK);
    ck_assert_int_eq(n, 8);
    check_row(ids, (int32_t[]){2, 5, 4, 6, 3, 1, 41, 3, 0, 0}, 10, "input_ids");
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, "a", "b", 2), FLAVA_ERR_ARG);
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, "[MASK] a\xff", NULL, 8),
                     FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "byte offset 8"));
    flava_tokenizer_free(tok);
}
END_TEST

START_TEST(test_truncation_longest_first)
{
    flava_tokenizer *tok = load_wp_tokenizer();
    int32_t ids[16], types[16];
    float mask[16];
    int64_t n;
    /* a = 6 tokens, b = 2: a is cut to 3 first */
    const char *a6 = "the cafe hello world play x", *b2 = "naive resume";
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, a6, b2, 8), FLAVA_OK);
    ck_assert_int_eq(n, 8);
    check_row(ids, (int32_t[]){2, 5, 6, 13, 3, 19, 20, 3}, 8, "input_ids");
    check_row(types, (int32_t[]){0, 0, 0, 0, 0, 1, 1, 1}, 8, "token_type_ids");
    /* 4 + 4 into 5: on a tie the second part loses first -> 3 + 2 */
    const char *a4 = "the cafe hello world", *b4 = "naive resume x don";
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, a4, b4, 8), FLAVA_OK);
    check_row(ids, (int32_t[]){2, 5, 6, 13, 3, 19, 20, 3}, 8, "input_ids");
    /* 4 + 4 into 6 -> 3 + 3 */
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, a4, b4, 9), FLAVA_OK);
    check_row(ids, (int32_t[]){2, 5, 6, 13, 3, 19, 20, 41, 3}, 9, "input_ids");
    /* a single text keeps its head */
    ck_assert_int_eq(flava_tokenizer_encode(ids, types, mask, &n, tok, a6, NULL, 4), FLAVA_OK);
    check_row(ids, (int32_t[]){2, 5, 6, 3}, 4, "input_ids");
    ck_assert_float_eq(mask[3], 1.0f);
    flava_tokenizer_free(tok);
}
END_TEST

/* The loader's entry point, called from two threads at once, gives what a
 * serial flava_tokenizer_encode gives (both kinds of tokenizer). */
static void check_parallel(const char *model)
{
    enum { L = 64 };
    char path[4096];
    flava_tokenizer *tok;
    ck_assert_int_eq(flava_tokenizer_load(&tok, test_path(path, sizeof path, model)), FLAVA_OK);
    char **texts;
    int nt;
    char *buf = read_lines(FIX "wp_texts.txt", &texts, &nt);
    int32_t *ids = malloc((size_t)nt * L * sizeof *ids), *types = malloc((size_t)nt * L * sizeof *types);
    int *lens = malloc((size_t)nt * sizeof *lens), failures = 0;
#pragma omp parallel for num_threads(2) schedule(dynamic, 1) reduction(+ : failures)
    for (int i = 0; i < nt; i++)
        failures += flava_tokenizer_encode_unpadded(tok, ids + (size_t)i * L, types + (size_t)i * L,
                                                    &lens[i], L, texts[i],
                                                    i % 3 ? NULL : texts[nt - 1 - i]) != FLAVA_OK;
    ck_assert_int_eq(failures, 0);
    for (int i = 0; i < nt; i++) {
        int32_t want[L], want_types[L];
        float mask[L];
        int64_t n;
        ck_assert_int_eq(flava_tokenizer_encode(want, want_types, mask, &n, tok, texts[i],
                                                i % 3 ? NULL : texts[nt - 1 - i], L), FLAVA_OK);
        ck_assert_int_eq(lens[i], n);
        ck_assert_mem_eq(ids + (size_t)i * L, want, (size_t)n * sizeof *want);
        ck_assert_mem_eq(types + (size_t)i * L, want_types, (size_t)n * sizeof *want);
    }
    free(ids);
    free(types);
    free(lens);
    free(texts);
    free(buf);
    flava_tokenizer_free(tok);
}

START_TEST(test_encode_in_threads)
{
    check_parallel(FIX "wp_vocab.txt");
    check_parallel(FIX "spm_unigram.model");
}
END_TEST

START_TEST(test_tokenizer_errors)
{
    flava_tokenizer *tok;
    char path[4096];
    ck_assert_int_eq(flava_tokenizer_load(&tok, "/nonexistent/spm.model"), FLAVA_ERR_FORMAT);
    /* a vocab without [MASK] */
    char vocab[] = "/tmp/flava_vocab_XXXXXX";
    int fd = mkstemp(vocab);
    const char *v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n";
    ck_assert_int_eq(write(fd, v, strlen(v)), (ssize_t)strlen(v));
    close(fd);
    ck_assert_int_eq(flava_tokenizer_load(&tok, vocab), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "no [MASK] token"));
    unlink(vocab);
    /* SentencePiece rejects invalid UTF-8 the same way */
    ck_assert_int_eq(flava_tokenizer_load(&tok, test_path(path, sizeof path, FIX "spm_unigram.model")),
                     FLAVA_OK);
    int32_t *ids;
    int64_t n;
    ck_assert_int_eq(flava_tokenizer_tokenize(&ids, &n, tok, "abc\x80"), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "byte offset 3"));
    flava_tokenizer_free(tok);
}
END_TEST

/* ---- The spam corpus ------------------------------------------------------ */

static char *slurp(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    return buf;
}

START_TEST(test_data_spam)
{
    char from[4096], out[] = "/tmp/flava_spam_XXXXXX";
    test_path(from, sizeof from, FIX "spam");
    ck_assert_ptr_nonnull(mkdtemp(out));
    char *argv[] = {"--from", from, "--out", out, "--seed", "3"};
    ck_assert_msg(flava_cmd_data_spam(6, argv) == FLAVA_OK, "%s", flava_error_message());
    /* one mail per label: both land in train (80% of 1 rounds to 1) */
    const char *train = slurp(out, "train.tsv");
    ck_assert_ptr_nonnull(strstr(train, "sentence\tlabel\n"));
    ck_assert_ptr_nonnull(strstr(train, "Gr\xc3\xa9" "at offer \xe2\x80\x93 act now Save 50% on "
                                        "caf\xc3\xa9 beans & more! Click!\t1\n"));
    ck_assert_ptr_nonnull(strstr(train, "Re: build failure on sid Yes, it fails \xc3\xa0 la sid . "
                                        "Patch attached.\t0\n"));
    ck_assert_str_eq(slurp(out, "dev.tsv"), "sentence\tlabel\n");
    ck_assert_str_eq(slurp(out, "test.tsv"), "sentence\tlabel\n");
    const char *corpus = slurp(out, "corpus.txt");
    ck_assert_ptr_nonnull(strstr(corpus, "Patch attached.\n"));
    /* cut at a word boundary */
    char *argv2[] = {"--from", from, "--out", out, "--max-chars", "30"};
    ck_assert_int_eq(flava_cmd_data_spam(6, argv2), FLAVA_OK);
    train = slurp(out, "train.tsv");
    ck_assert_ptr_nonnull(strstr(train, "\nRe: build failure on sid Yes,\t0\n"));
    slurp(out, "dev.tsv");
    slurp(out, "test.tsv");
    slurp(out, "corpus.txt");
    char *argv3[] = {"--from", out, "--out", out};
    ck_assert_int_eq(flava_cmd_data_spam(4, argv3), FLAVA_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "no <group>/*.json"));
    rmdir(out);
}
END_TEST

/* 20 spam and 30 ham mails written here: a stratified 80/10/10 split that
 * repeats with the seed and holds every mail once. */
static void write_mails(const char *dir)
{
    for (int i = 0; i < 50; i++) {
        const char *group = i < 20 ? "spam-2" : "hard-ham-1";
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, group);
        mkdir(path, 0777);
        snprintf(path, sizeof path, "%s/%s/%05d.json", dir, group, i);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "{\"id\": \"%05d\", \"group\": \"%s\", \"text\": \"Subject: mail %d\\n\\n"
                "body %d\\n\"}", i, group, i, i);
        fclose(f);
    }
}

static void count_split(const char *text, int *spam, int *ham, int *seen)
{
    *spam = *ham = 0;
    for (const char *p = strchr(text, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
        int id, label;
        ck_assert_int_eq(sscanf(p + 1, "mail %d body %*d\t%d", &id, &label), 2);
        ck_assert_int_eq(label, id < 20);
        seen[id]++;
        *(label ? spam : ham) += 1;
    }
}

START_TEST(test_data_spam_split)
{
    char in[] = "/tmp/flava_mails_XXXXXX", out[] = "/tmp/flava_split_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(in));
    ck_assert_ptr_nonnull(mkdtemp(out));
    write_mails(in);
    static const char *names[] = {"train.tsv", "dev.tsv", "test.tsv", "corpus.txt"};
    static const int want_spam[] = {16, 2, 2}, want_ham[] = {24, 3, 3};
    char first[4][8192];
    for (int run = 0; run < 3; run++) {
        char *argv[] = {"--from", in, "--out", out, "--seed", run < 2 ? "5" : "6"};
        ck_assert_int_eq(flava_cmd_data_spam(6, argv), FLAVA_OK);
        int seen[50] = {0}, same = 1;
        for (int k = 0; k < 4; k++) {
            const char *text = slurp(out, names[k]);
            if (run == 0)
                snprintf(first[k], sizeof first[k], "%s", text);
            else
                same &= strcmp(first[k], text) == 0;
            if (k == 3)
                break;
            int spam, ham;
            count_split(text, &spam, &ham, seen);
            ck_assert_int_eq(spam, want_spam[k]);
            ck_assert_int_eq(ham, want_ham[k]);
        }
        for (int i = 0; i < 50; i++)
            ck_assert_int_eq(seen[i], 1);
        ck_assert_int_eq(same, run < 2); /* the seed decides the split */
    }
    rmdir(out);
    for (int i = 0; i < 50; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/%05d.json", in, i < 20 ? "spam-2" : "hard-ham-1", i);
        unlink(path);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/spam-2", in);
    rmdir(path);
    snprintf(path, sizeof path, "%s/hard-ham-1", in);
    rmdir(path);
    rmdir(in);
}
END_TEST

static Suite *make_tokenizers_suite(void)
{
    Suite *s = suite_create("tokenizers");
    TCase *tc = tcase_create("spm");
    tcase_add_test(tc, test_spm_matches_python);
    tcase_add_test(tc, test_spm_train_unigram);
    tcase_add_test(tc, test_spm_train_bpe);
    tcase_add_test(tc, test_spm_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("wordpiece");
    tcase_add_test(tc, test_wordpiece_cases);
    tcase_add_test(tc, test_wordpiece_matches_python_reference);
    tcase_add_test(tc, test_wordpiece_long_word);
    tcase_add_test(tc, test_wordpiece_invalid_utf8);
    tcase_add_test(tc, test_wordpiece_decode);
    tcase_add_test(tc, test_wordpiece_bad_vocab);
    suite_add_tcase(s, tc);
    tc = tcase_create("interface");
    tcase_add_test(tc, test_encode_pair_and_padding);
    tcase_add_test(tc, test_truncation_longest_first);
    tcase_add_test(tc, test_encode_in_threads);
    tcase_add_test(tc, test_tokenizer_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("spam");
    tcase_add_test(tc, test_data_spam);
    tcase_add_test(tc, test_data_spam_split);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_tokenizers_suite()); }
