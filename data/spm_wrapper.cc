// spm_wrapper.cc - the C API of spm.h over the SentencePiece C++ library.
// No exception may cross into C: each entry point catches everything and
// reports it as a flava_status.
#include "spm.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

struct flava_spm {
    sentencepiece::SentencePieceProcessor sp;
    std::string path;
};

namespace {

flava_status from_spm(const sentencepiece::util::Status &st, const char *what, const char *file)
{
    return FLAVA_ERROR(FLAVA_ERR_FORMAT, "sentencepiece %s %s: %s", what, file,
                       st.ToString().c_str());
}

flava_status from_exception(const char *what)
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return FLAVA_ERROR(FLAVA_ERR_NOMEM, "sentencepiece %s: out of memory", what);
    } catch (const std::exception &e) {
        return FLAVA_ERROR(FLAVA_ERR_ARG, "sentencepiece %s: %s", what, e.what());
    } catch (...) {
        return FLAVA_ERROR(FLAVA_ERR_ARG, "sentencepiece %s: unknown C++ exception", what);
    }
}

char *dup_string(const std::string &s)
{
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p) {
        std::memcpy(p, s.data(), s.size());
        p[s.size()] = '\0';
    }
    return p;
}

} // namespace

extern "C" flava_status flava_spm_train(const flava_spm_train_opts *o)
{
    if (!o || o->n_inputs < 1 || !o->model_prefix || o->vocab_size < 8)
        return FLAVA_ERROR(FLAVA_ERR_ARG,
                           "sentencepiece train: need input files, a model prefix and a "
                           "vocabulary size of at least 8 (got %d)", o ? o->vocab_size : 0);
    try {
        std::string inputs;
        for (int i = 0; i < o->n_inputs; i++) {
            if (std::strchr(o->inputs[i], ','))
                return FLAVA_ERROR(FLAVA_ERR_ARG,
                                   "sentencepiece train: input path '%s' contains a comma, "
                                   "which SentencePiece takes as a list separator", o->inputs[i]);
            inputs += (i ? "," : "") + std::string(o->inputs[i]);
        }
        std::unordered_map<std::string, std::string> kw = {
            {"input", inputs},
            {"model_prefix", o->model_prefix},
            {"model_type", o->kind == FLAVA_SPM_BPE ? "bpe" : "unigram"},
            {"vocab_size", std::to_string(o->vocab_size)},
            {"user_defined_symbols", "[CLS],[SEP],[PAD],[MASK]"},
            {"unk_id", "0"},
            {"unk_piece", "[UNK]"},
            {"bos_id", "-1"},
            {"eos_id", "-1"},
            {"pad_id", "-1"},
            {"character_coverage", "1.0"},
            // A small corpus may not support the asked size: stop short
            // rather than fail.
            {"hard_vocab_limit", "false"},
            {"num_threads", "1"},
            {"minloglevel", "2"},
        };
        if (o->max_sentences > 0) {
            kw["input_sentence_size"] = std::to_string(o->max_sentences);
            kw["shuffle_input_sentence"] = "true";
        }
        auto st = sentencepiece::SentencePieceTrainer::Train(kw);
        if (!st.ok())
            return from_spm(st, "training of", o->model_prefix);
        return FLAVA_OK;
    } catch (...) {
        return from_exception("train");
    }
}

extern "C" flava_status flava_spm_load(flava_spm **out, const char *path)
{
    *out = nullptr;
    try {
        auto *m = new flava_spm;
        auto st = m->sp.Load(path);
        if (!st.ok()) {
            delete m;
            return FLAVA_ERROR(FLAVA_ERR_FORMAT, "cannot load SentencePiece model %s: %s", path,
                               st.ToString().c_str());
        }
        m->path = path;
        *out = m;
        return FLAVA_OK;
    } catch (...) {
        return from_exception("load");
    }
}

extern "C" void flava_spm_free(flava_spm *spm) { delete spm; }

extern "C" int32_t flava_spm_vocab_size(const flava_spm *spm) { return spm->sp.GetPieceSize(); }

extern "C" int32_t flava_spm_piece_to_id(const flava_spm *spm, const char *piece)
{
    try {
        int id = spm->sp.PieceToId(piece);
        // PieceToId answers the unknown id for a missing piece.
        if (spm->sp.IsUnknown(id) && spm->sp.IdToPiece(id) != piece)
            return -1;
        return id;
    } catch (...) {
        return -1;
    }
}

extern "C" const char *flava_spm_id_to_piece(const flava_spm *spm, int32_t id)
{
    if (id < 0 || id >= spm->sp.GetPieceSize())
        return nullptr;
    return spm->sp.IdToPiece(id).c_str();
}

extern "C" flava_status flava_spm_encode_ids(int32_t **ids, int64_t *n, const flava_spm *spm,
                                             const char *text)
{
    *ids = nullptr;
    *n = 0;
    try {
        std::vector<int> v;
        auto st = spm->sp.Encode(text, &v);
        if (!st.ok())
            return from_spm(st, "encoding with", spm->path.c_str());
        auto *p = static_cast<int32_t *>(std::malloc((v.size() + 1) * sizeof(int32_t)));
        if (!p)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate %zu token ids", v.size());
        for (size_t i = 0; i < v.size(); i++)
            p[i] = v[i];
        *ids = p;
        *n = static_cast<int64_t>(v.size());
        return FLAVA_OK;
    } catch (...) {
        return from_exception("encode");
    }
}

extern "C" void flava_spm_pieces_free(char **pieces, int64_t n)
{
    if (!pieces)
        return;
    for (int64_t i = 0; i < n; i++)
        std::free(pieces[i]);
    std::free(pieces);
}

extern "C" flava_status flava_spm_encode_pieces(char ***pieces, int64_t *n, const flava_spm *spm,
                                                const char *text)
{
    *pieces = nullptr;
    *n = 0;
    try {
        std::vector<std::string> v;
        auto st = spm->sp.Encode(text, &v);
        if (!st.ok())
            return from_spm(st, "encoding with", spm->path.c_str());
        auto **p = static_cast<char **>(std::calloc(v.size() + 1, sizeof(char *)));
        if (!p)
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate %zu pieces", v.size());
        for (size_t i = 0; i < v.size(); i++) {
            p[i] = dup_string(v[i]);
            if (!p[i]) {
                flava_spm_pieces_free(p, static_cast<int64_t>(i));
                return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate piece %zu", i);
            }
        }
        *pieces = p;
        *n = static_cast<int64_t>(v.size());
        return FLAVA_OK;
    } catch (...) {
        return from_exception("encode");
    }
}

extern "C" flava_status flava_spm_decode(char **text, const flava_spm *spm, const int32_t *ids,
                                         int64_t n)
{
    *text = nullptr;
    try {
        std::vector<int> v(ids, ids + n);
        for (int64_t i = 0; i < n; i++)
            if (v[i] < 0 || v[i] >= spm->sp.GetPieceSize())
                return FLAVA_ERROR(FLAVA_ERR_ARG, "token %lld: id %d is outside the vocabulary "
                                   "of %s (size %d)", static_cast<long long>(i), v[i],
                                   spm->path.c_str(), spm->sp.GetPieceSize());
        std::string s;
        auto st = spm->sp.Decode(v, &s);
        if (!st.ok())
            return from_spm(st, "decoding with", spm->path.c_str());
        if (!(*text = dup_string(s)))
            return FLAVA_ERROR(FLAVA_ERR_NOMEM, "cannot allocate %zu bytes of text", s.size());
        return FLAVA_OK;
    } catch (...) {
        return from_exception("decode");
    }
}
