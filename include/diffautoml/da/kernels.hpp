#pragma once
// The augmentation ops' per-image kernels (Op, OpDraw, kernels::forward/backward): they live at
// the ops level, in ops/body/augment.hpp, so that the CUDA backend needs nothing from da/.
#include "../ops/body/augment.hpp"
