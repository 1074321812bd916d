/* flava.h - the public API of libflava: include this one header.
 * Each module keeps its declarations in its own header, gathered here. */
#ifndef FLAVA_H
#define FLAVA_H

#include "status.h"
#include "rng.h"
#include "ctx.h"
#include "ops.h"
#include "batch.h"
#include "safetensors.h"
#include "optim.h"
#include "cfg.h"
#include "idx.h"
#include "image.h"
#include "imagetext.h"
#include "glue.h"
#include "metrics.h"
#include "vqa.h"
#include "scenes.h"
#include "loader.h"
#include "params.h"
#include "encoder.h"
#include "model.h"
#include "checkpoint.h"
#include "clip.h"

#endif
