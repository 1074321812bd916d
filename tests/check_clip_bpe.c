/* check_clip_bpe.c - CLIP's BPE tokeniser against an independent Python
 * implementation (tests/reference/clip_bpe_fixtures.py, which trained the
 * tiny vocabulary in tests/fixtures/clip_bpe/ and wrote the expected
 * clean-up, ids and padded input of 30 texts: HTML entities, whitespace,
 * case with final sigma, Latin, Greek, Cyrillic, CJK, Hangul, Arabic,
 * Hebrew, Devanagari, emoji, special tokens, truncation), plus hand-made
 * vocabularies for the unknown-token path and the file errors. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <unistd.h>

#include "clip_bpe.h"

#define OK(call) ck_assert_int_eq((call), FLAVA_OK)

static flava_clip_bpe *load_fixture(void)
{
    char v[4096], m[4096];
    flava_clip_bpe *bpe;
    OK(flava_clip_bpe_load(&bpe, test_path(v, sizeof v, "tests/fixtures/clip_bpe/vocab.json"),
                           test_path(m, sizeof m, "tests/fixtures/clip_bpe/merges.txt")));
    return bpe;
}

static cJSON *load_expected(void)
{
    char path[4096];
    FILE *f = fopen(test_path(path, sizeof path, "tests/fixtures/clip_bpe/expected.json"), "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    ck_assert_uint_lt(n, sizeof buf - 1);
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    ck_assert(cJSON_IsArray(root));
    return root;
}

/* The ids of a case's JSON array `key` equal got[0..n). */
static void expect_ids(const cJSON *c, const char *key, const int32_t *got, int64_t n,
                       const char *text)
{
    const cJSON *want = cJSON_GetObjectItem(c, key);
    ck_assert_msg(cJSON_GetArraySize(want) == n, "%s of \"%s\": %lld ids, expected %d", key, text,
                  (long long)n, cJSON_GetArraySize(want));
    for (int64_t i = 0; i < n; i++) {
        int w = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(want, (int)i));
        ck_assert_msg(got[i] == w, "%s of \"%s\": id %lld is %d, expected %d", key, text,
                      (long long)i, got[i], w);
    }
}

START_TEST(test_against_python)
{
    flava_clip_bpe *bpe = load_fixture();
    ck_assert_int_eq(flava_clip_bpe_vocab_size(bpe), 902);
    int32_t eot = flava_clip_bpe_eot_id(bpe);
    cJSON *root = load_expected();
    ck_assert_int_eq(cJSON_GetArraySize(root), 30);
    int truncated = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, root)
    {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        char *cleaned;
        OK(flava_clip_bpe_clean(&cleaned, text));
        ck_assert_str_eq(cleaned, cJSON_GetObjectItem(c, "clean")->valuestring);
        free(cleaned);

        int32_t *ids;
        int64_t n;
        OK(flava_clip_bpe_tokenize(&ids, &n, bpe, text));
        expect_ids(c, "ids", ids, n, text);
        free(ids);

        int32_t input[FLAVA_CLIP_CONTEXT_LENGTH];
        float mask[FLAVA_CLIP_CONTEXT_LENGTH];
        int64_t ntok;
        OK(flava_clip_bpe_encode(input, mask, &ntok, bpe, text, FLAVA_CLIP_CONTEXT_LENGTH, eot));
        expect_ids(c, "input_ids", input, FLAVA_CLIP_CONTEXT_LENGTH, text);
        ck_assert_int_eq(ntok, (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "n_tokens")));
        for (int i = 0; i < FLAVA_CLIP_CONTEXT_LENGTH; i++)
            ck_assert(mask[i] == (i < ntok ? 1.0f : 0.0f));
        truncated += ntok == FLAVA_CLIP_CONTEXT_LENGTH;
    }
    ck_assert_int_eq(truncated, 1); /* the long text */
    cJSON_Delete(root);
    flava_clip_bpe_free(bpe);
}
END_TEST

START_TEST(test_context_and_padding)
{
    flava_clip_bpe *bpe = load_fixture();
    int32_t sot = flava_clip_bpe_sot_id(bpe), eot = flava_clip_bpe_eot_id(bpe);
    int32_t *ids, input[8];
    int64_t n, ntok;
    float mask[8];
    OK(flava_clip_bpe_tokenize(&ids, &n, bpe, "a photo of a cat"));
    ck_assert_int_eq(n, 5);
    /* OpenAI's padding with 0 */
    OK(flava_clip_bpe_encode(input, mask, &ntok, bpe, "a photo of a cat", 8, 0));
    int32_t want[8] = {sot, ids[0], ids[1], ids[2], ids[3], ids[4], eot, 0};
    ck_assert_mem_eq(input, want, sizeof want);
    ck_assert_int_eq(ntok, 7);
    ck_assert(mask[6] == 1.0f && mask[7] == 0.0f);
    /* cut to 5: three tokens, the end token kept last */
    OK(flava_clip_bpe_encode(input, mask, &ntok, bpe, "a photo of a cat", 5, 0));
    int32_t cut[5] = {sot, ids[0], ids[1], ids[2], eot};
    ck_assert_mem_eq(input, cut, sizeof cut);
    ck_assert_int_eq(ntok, 5);
    OK(flava_clip_bpe_encode(input, mask, NULL, bpe, "a photo of a cat", 2, 0));
    ck_assert(input[0] == sot && input[1] == eot);
    ck_assert_int_eq(flava_clip_bpe_encode(input, mask, NULL, bpe, "a", 1, 0), FLAVA_ERR_ARG);
    ck_assert_int_eq(flava_clip_bpe_encode(input, mask, NULL, bpe, "a", 8, 902), FLAVA_ERR_ARG);
    ck_assert_int_eq(flava_clip_bpe_encode(input, mask, NULL, bpe, "a", 8, -1), FLAVA_ERR_ARG);
    free(ids);
    flava_clip_bpe_free(bpe);
}
END_TEST

static void expect_bad_utf8(const flava_clip_bpe *bpe, const char *text, const char *offset)
{
    int32_t *ids = NULL;
    int64_t n;
    ck_assert_int_eq(flava_clip_bpe_tokenize(&ids, &n, bpe, text), FLAVA_ERR_FORMAT);
    ck_assert_ptr_null(ids);
    ck_assert_msg(strstr(flava_error_message(), offset) != NULL, "\"%s\" lacks \"%s\"",
                  flava_error_message(), offset);
    char *c = NULL;
    ck_assert_int_eq(flava_clip_bpe_clean(&c, text), FLAVA_ERR_FORMAT);
    ck_assert_ptr_null(c);
}

START_TEST(test_invalid_utf8)
{
    flava_clip_bpe *bpe = load_fixture();
    expect_bad_utf8(bpe, "abc\xff", "byte offset 3 (0xFF)");
    expect_bad_utf8(bpe, "\xc0\x80", "byte offset 0");                  /* overlong NUL */
    expect_bad_utf8(bpe, "ok \xe0\x80\xaf", "byte offset 3");           /* overlong '/' */
    expect_bad_utf8(bpe, "x\xed\xa0\x80", "byte offset 1");             /* a surrogate */
    expect_bad_utf8(bpe, "ab\xe6\x9d", "byte offset 2");                /* cut short */
    expect_bad_utf8(bpe, "\xf4\x90\x80\x80", "byte offset 0");          /* past U+10FFFF */
    expect_bad_utf8(bpe, "caf\xc3\xa9 \x80", "byte offset 6 (0x80)");   /* stray continuation */
    flava_clip_bpe_free(bpe);
}
END_TEST

/* ---- hand-made vocabularies in a temporary folder ---- */

static char dir[64];

static void dir_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/flava_clip_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void dir_teardown(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    unlink(p);
    rmdir(dir);
}

/* Writes both files and loads them; returns the load's status. */
static flava_status load_text(flava_clip_bpe **bpe, const char *vocab, const char *merges)
{
    char v[128], m[128];
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    FILE *f = fopen(v, "w");
    ck_assert_ptr_nonnull(f);
    fputs(vocab, f);
    fclose(f);
    f = fopen(m, "w");
    ck_assert_ptr_nonnull(f);
    fputs(merges, f);
    fclose(f);
    *bpe = NULL;
    return flava_clip_bpe_load(bpe, v, m);
}

/* the last entry is "é" as CLIP stores it: its UTF-8 bytes C3 A9 stand
 * for themselves (Ã©), written with JSON escapes */
static const char *small_vocab =
    "{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1, \"a\": 2, \"b</w>\": 3, \"ab</w>\": 4,"
    " \"a</w>\": 5, \"aa\": 6, \"aa</w>\": 7, \"\\u00c3\\u00a9</w>\": 8}";

START_TEST(test_merges_and_unknown)
{
    flava_clip_bpe *bpe;
    /* no header line; a blank line and CRLF are fine */
    OK(load_text(&bpe, small_vocab, "a b</w>\r\n\na a\n\xc3\x83 \xc2\xa9</w>\n"));
    int32_t *ids;
    int64_t n;
    OK(flava_clip_bpe_tokenize(&ids, &n, bpe, "ab"));
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 4);
    free(ids);
    /* "aaa": the pair (a, a) merges left to right: aa + a</w> */
    OK(flava_clip_bpe_tokenize(&ids, &n, bpe, "aaa"));
    ck_assert_int_eq(n, 2);
    ck_assert(ids[0] == 6 && ids[1] == 5);
    free(ids);
    /* "c" is no token here: HF's unknown token, <|endoftext|> */
    OK(flava_clip_bpe_tokenize(&ids, &n, bpe, "c A"));
    ck_assert_int_eq(n, 2);
    ck_assert(ids[0] == 1 && ids[1] == 5);
    free(ids);
    OK(flava_clip_bpe_tokenize(&ids, &n, bpe, "\xc3\x89"));  /* É, lower-cased */
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 8);
    free(ids);
    OK(flava_clip_bpe_tokenize(&ids, &n, bpe, " \t "));
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_nonnull(ids);
    free(ids);
    flava_clip_bpe_free(bpe);
}
END_TEST

static void expect_load_error(const char *vocab, const char *merges, flava_status st,
                              const char *msg)
{
    flava_clip_bpe *bpe;
    ck_assert_int_eq(load_text(&bpe, vocab, merges), st);
    ck_assert_ptr_null(bpe);
    ck_assert_msg(strstr(flava_error_message(), msg) != NULL, "\"%s\" lacks \"%s\"",
                  flava_error_message(), msg);
}

START_TEST(test_load_errors)
{
    flava_clip_bpe *bpe;
    ck_assert_int_eq(flava_clip_bpe_load(&bpe, "/nonexistent/vocab.json", "/x"), FLAVA_ERR_IO);
    ck_assert_ptr_nonnull(strstr(flava_error_message(), "/nonexistent/vocab.json"));
    expect_load_error("[1, 2]", "", FLAVA_ERR_FORMAT, "expected a JSON object");
    expect_load_error("{\"a\": 1", "", FLAVA_ERR_FORMAT, "expected a JSON object");
    expect_load_error("{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1.5}", "", FLAVA_ERR_FORMAT,
                      "token \"<|endoftext|>\": expected an integer id in [0, 2)");
    expect_load_error("{\"<|startoftext|>\": 0, \"<|endoftext|>\": \"1\"}", "", FLAVA_ERR_FORMAT,
                      "expected an integer id");
    expect_load_error("{\"<|startoftext|>\": 0, \"<|endoftext|>\": 0}", "", FLAVA_ERR_FORMAT,
                      "id 0 given to \"<|endoftext|>\" and another token");
    expect_load_error("{\"<|startoftext|>\": 0, \"a\": 1}", "", FLAVA_ERR_FORMAT,
                      "has no <|endoftext|> token");
    expect_load_error(small_vocab, "#version: 0.2\na b</w>\na b c\n", FLAVA_ERR_FORMAT,
                      "merges.txt line 3: expected two symbols");
    expect_load_error(small_vocab, "a b</w>\nx\n", FLAVA_ERR_FORMAT,
                      "merges.txt line 2: expected two symbols");
    expect_load_error(small_vocab, "#version: 0.2\na a\na\ta\n", FLAVA_ERR_FORMAT,
                      "merges.txt line 3: the pair \"a a\" is listed twice");
}
END_TEST

static Suite *make_clip_bpe_suite(void)
{
    Suite *s = suite_create("clip_bpe");
    TCase *tc = tcase_create("fixture");
    tcase_add_test(tc, test_against_python);
    tcase_add_test(tc, test_context_and_padding);
    tcase_add_test(tc, test_invalid_utf8);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_merges_and_unknown);
    tcase_add_test(tc, test_load_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run(make_clip_bpe_suite()); }
