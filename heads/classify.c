/* classify.c - classification fine-tuning (GLUE-style, image classes): the
 * classifier MLP (heads/mlp.h, parameters `classifier.*`) on the pooled
 * output of the encoder named by classifier_input (image, text or
 * multimodal); cross-entropy over num_labels classes, or MSE against the
 * regression target when num_labels is 1 (STS-B). */
#include <string.h>

#include "heads.h"
#include "mlp.h"

static int source(const flava_config *c)
{
    return !strcmp(c->classifier_input, "image") ? 0 : !strcmp(c->classifier_input, "text") ? 1
                                                                                             : 2;
}

static int in_size(const flava_config *c)
{
    const int s = source(c);
    return s == 0 ? c->image.enc.hidden_size
           : s == 1 ? c->text.enc.hidden_size
                    : c->multimodal.enc.hidden_size;
}

static mlp_loss loss_kind(const flava_config *c)
{
    return c->num_labels == 1 ? MLP_LOSS_MSE : MLP_LOSS_CE;
}

static flava_status cls_declare(flava_param_table *t, const flava_config *c)
{
    return mlp_declare(t, "classifier", in_size(c), c->num_labels);
}

static size_t cls_mem(const flava_config *c, int B, int T, int P)
{
    (void)T, (void)P;
    return mlp_mem_floats(B, in_size(c), c->num_labels);
}

static int cls_rows(const flava_config *c, int B, int T, int P)
{
    (void)c, (void)B, (void)T, (void)P;
    return 1;
}

static int cls_applies(const flava_head_io *io)
{
    return io->pooled[source(&io->model->cfg)] != NULL;
}

static flava_status cls_forward(flava_head_state *st, const flava_head_io *io)
{
    const flava_config *c = &io->model->cfg;
    return mlp_forward(st, io, "classifier", io->pooled[source(c)], in_size(c), c->num_labels,
                       loss_kind(c));
}

static flava_status cls_backward(flava_head_state *st, const flava_head_io *io, float dloss)
{
    const flava_config *c = &io->model->cfg;
    const int s = source(c);
    return mlp_backward(st, io, "classifier", io->pooled[s], io->dpooled[s], in_size(c),
                        c->num_labels, loss_kind(c), dloss);
}

const flava_head_ops flava_head_classify = {
    .name = "classify",
    .logits_name = "logits",
    .declare = cls_declare,
    .mem_floats = cls_mem,
    .max_rows = cls_rows,
    .applies = cls_applies,
    .forward = cls_forward,
    .backward = cls_backward,
};
