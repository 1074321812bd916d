/* registry.c - every task `flava pretrain|finetune|eval` can run. */
#include <string.h>

#include "task.h"

extern const flava_task_ops flava_task_pretrain;
extern const flava_task_ops flava_task_zeroshot, flava_task_retrieval, flava_task_linprobe,
    flava_task_vqa_finetune, flava_task_vqa_eval, flava_task_glue_finetune, flava_task_glue_eval,
    flava_task_image_cls, flava_task_image_cls_eval;

const flava_task_ops *const flava_tasks[] = {
    &flava_task_pretrain,
    &flava_task_vqa_finetune, &flava_task_glue_finetune, &flava_task_image_cls,
    &flava_task_zeroshot, &flava_task_retrieval, &flava_task_linprobe,
    &flava_task_vqa_eval, &flava_task_glue_eval, &flava_task_image_cls_eval,
};
const int flava_num_tasks = (int)(sizeof flava_tasks / sizeof *flava_tasks);

const flava_task_ops *flava_task_find(const char *command, const char *name)
{
    for (int i = 0; i < flava_num_tasks; i++)
        if (!strcmp(flava_tasks[i]->command, command) && !strcmp(flava_tasks[i]->name, name))
            return flava_tasks[i];
    return NULL;
}
