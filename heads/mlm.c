/* mlm.c - unimodal masked language modelling (HF `mlm_head`), on text-only
 * batches: the masked text pass's final states at the labelled tokens. */
#include "heads.h"
#include "masked.h"

static const masked_head mlm = {"mlm_head", MASKED_SEQ_TEXT, MASKED_TEXT_LABELS, 0};
MASKED_HEAD_OPS(flava_head_mlm, mlm, "mlm", "mlm_logits");
