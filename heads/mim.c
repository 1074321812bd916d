/* mim.c - unimodal masked image modelling (HF `mim_head`), on image-only
 * batches: the masked image pass's final states at the masked patches,
 * against the codebook tokens (mim_labels). */
#include "heads.h"
#include "masked.h"

static const masked_head mim = {"mim_head", MASKED_SEQ_IMAGE, MASKED_IMAGE_LABELS, 1};
MASKED_HEAD_OPS(flava_head_mim, mim, "mim", "mim_logits");
