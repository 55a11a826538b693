#pragma once
// The whole CPU library in one include.
#include "autograd/gradcheck.hpp"
#include "autograd/variable.hpp"
#include "core/progress.hpp"
#include "data/dataset.hpp"
#include "nas.hpp"
#include "nn/layers.hpp"
#include "nn/reference_nets.hpp"
#include "nn/serialize.hpp"
#include "ops.hpp"
#include "optim/optimizer.hpp"
#include "optim/schedule.hpp"
#include "sampling/sampling.hpp"
