/* checkpoint.h - models and optimizer state in safetensors files, with HF
 * FlavaForPreTraining key names, so checkpoints interchange with FLAVA's.
 *
 * A model file holds every parameter under its HF key (the tied head bias
 * under both `X_head.bias` and `X_head.decoder.bias`), the frozen codebook
 * (`image_codebook.*`) when the model has one, and the config JSON in
 * __metadata__["config"]. Wherever a model is read, a HuggingFace folder
 * works too: config.json + model.safetensors, or shards listed in
 * model.safetensors.index.json; BF16 tensors are converted to f32. Keys of
 * a HF FlavaModel checkpoint (no `flava.` prefix) are accepted too.
 *
 * The optimizer file holds the AdamW moments as `exp_avg.<key>` and
 * `exp_avg_sq.<key>` and, in its metadata, the step and the RNG state.
 * Both are written to a temporary file, fsynced and renamed. */
#ifndef FLAVA_CHECKPOINT_H
#define FLAVA_CHECKPOINT_H

#include <stdint.h>

#include "batch.h"
#include "model.h"
#include "safetensors.h"
#include "status.h"

/* The config of a checkpoint file (metadata "config") or HF folder
 * (config.json), over the HF defaults. */
flava_status flava_checkpoint_read_config(flava_config *c, const char *path);

/* Loads every parameter of m (and the codebook tensors, creating m's
 * codebook, when the checkpoint has them). Missing, unexpected and
 * mis-shaped keys are all reported by name and refused; with `partial`,
 * missing and unexpected keys are allowed (fine-tuning from a checkpoint
 * without the new head: those parameters keep their initial values). */
flava_status flava_checkpoint_load_weights(flava_model *m, const char *path, int partial);

/* read_config + create (heads NULL = pretraining heads) + HF init with
 * `seed` + load_weights. */
flava_status flava_checkpoint_load(flava_model **out, const char *path,
                                   const flava_head_set *heads, int partial, uint64_t seed);

flava_status flava_checkpoint_save(const flava_model *m, const char *path);

/* Any model family's parameter table (params: its block): load and save
 * with the same keys, checks, HF folders and file layout as above. The
 * config is the family's own JSON: read_json gives a file's
 * __metadata__["config"] or a folder's config.json (malloc'ed). */
flava_status flava_checkpoint_read_json(char **json, const char *path);
flava_status flava_checkpoint_load_table(const flava_param_table *t, float *params,
                                         const char *path, int partial);
flava_status flava_checkpoint_save_table(const flava_param_table *t, const float *params,
                                         const char *config_json, const char *path);

/* Optimizer state: moments over a model's table t, the step count, an RNG
 * state and the data-parallel ranks that trained it (a file without them
 * was written by one process). */
flava_status flava_checkpoint_save_optim(const flava_param_table *t, const float *exp_avg,
                                         const float *exp_avg_sq, int64_t step,
                                         uint64_t rng_state, int ranks, const char *path);
flava_status flava_checkpoint_load_optim(const flava_param_table *t, float *exp_avg,
                                         float *exp_avg_sq, int64_t *step,
                                         uint64_t *rng_state, int *ranks, const char *path);

/* A batch from a safetensors file of HF-named inputs (pixel_values,
 * input_ids, input_ids_masked, token_type_ids, attention_mask,
 * bool_masked_pos, mlm_labels, mim_labels, itm_labels,
 * codebook_pixel_values; fine-tuning: vqa_targets, labels). Integers may
 * be I64/I32/U8/BOOL, floats F32/BF16. The batch owns its buffers: free
 * them with flava_batch_free. */
flava_status flava_batch_read(flava_batch *b, const flava_st *st, const flava_config *c);
void flava_batch_free(flava_batch *b);

/* The worst relative error of a[n] against ref[n]:
 * max |a - ref| / (|ref| + 1e-2 max|ref| + floor), so near-zero entries are
 * judged against the tensor's magnitude, and `floor` absorbs values that
 * are zero in exact arithmetic (rounding noise). *at gets its index. */
double flava_rel_error(const float *a, const float *ref, int64_t n, double floor, int64_t *at);

#endif
