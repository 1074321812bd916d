/* recall.h - retrieval recall@K from a similarity matrix, both ways, as
 * CLIP/FLAVA report image<->text retrieval. */
#ifndef FLAVA_RECALL_H
#define FLAVA_RECALL_H

#include <stdint.h>

#include "status.h"

/* sim[n_img, n_txt]; text t describes image txt_image[t] (an image may have
 * several texts). For each k in ks[nk]:
 *   i2t[k] = share of images whose best-ranked correct text is in the top k,
 *   t2i[k] = share of texts whose image is in the top k.
 * Ties count against the query (a correct item ranks below equal scores). */
flava_status flava_recall_at_k(double *i2t, double *t2i, const float *sim, const int32_t *txt_image,
                               int n_img, int n_txt, const int *ks, int nk);

#endif
