/* mmm.c - masked multimodal modelling, both parts (HF `mmm_image_head`,
 * `mmm_text_head`): the masked multimodal sequence at the masked patches
 * (positions 2 .. 2+P, after CLS_M and CLS_I) and at the labelled tokens
 * (the last T positions), positive pairs only. */
#include "heads.h"
#include "masked.h"

static const masked_head mmm_image = {"mmm_image_head", MASKED_SEQ_MM_IMAGE,
                                      MASKED_IMAGE_LABELS, 1};
static const masked_head mmm_text = {"mmm_text_head", MASKED_SEQ_MM_TEXT, MASKED_TEXT_LABELS,
                                     0};
MASKED_HEAD_OPS(flava_head_mmm_image, mmm_image, "mmm_image", "mmm_image_logits");
MASKED_HEAD_OPS(flava_head_mmm_text, mmm_text, "mmm_text", "mmm_text_logits");
