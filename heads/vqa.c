/* vqa.c - VQA fine-tuning: the classifier MLP (heads/mlp.h, parameters
 * `vqa_head.*`) on the multimodal pooled output over the answer
 * vocabulary (vqa_num_answers), BCE-with-logits against the soft scores
 * times the number of answers, as MMF does. */
#include "heads.h"
#include "mlp.h"

static flava_status vqa_declare(flava_param_table *t, const flava_config *c)
{
    return mlp_declare(t, "vqa_head", c->multimodal.enc.hidden_size, c->vqa_num_answers);
}

static size_t vqa_mem(const flava_config *c, int B, int T, int P)
{
    (void)T, (void)P;
    return mlp_mem_floats(B, c->multimodal.enc.hidden_size, c->vqa_num_answers);
}

static int vqa_rows(const flava_config *c, int B, int T, int P)
{
    (void)c, (void)B, (void)T, (void)P;
    return 1;
}

static int vqa_applies(const flava_head_io *io) { return io->pooled[2] != NULL; }

static flava_status vqa_forward(flava_head_state *st, const flava_head_io *io)
{
    const flava_config *c = &io->model->cfg;
    return mlp_forward(st, io, "vqa_head", io->pooled[2], c->multimodal.enc.hidden_size,
                       c->vqa_num_answers, MLP_LOSS_BCE_SCALED);
}

static flava_status vqa_backward(flava_head_state *st, const flava_head_io *io, float dloss)
{
    const flava_config *c = &io->model->cfg;
    return mlp_backward(st, io, "vqa_head", io->pooled[2], io->dpooled[2],
                        c->multimodal.enc.hidden_size, c->vqa_num_answers, MLP_LOSS_BCE_SCALED,
                        dloss);
}

const flava_head_ops flava_head_vqa = {
    .name = "vqa",
    .logits_name = "vqa_logits",
    .declare = vqa_declare,
    .mem_floats = vqa_mem,
    .max_rows = vqa_rows,
    .applies = vqa_applies,
    .forward = vqa_forward,
    .backward = vqa_backward,
};
