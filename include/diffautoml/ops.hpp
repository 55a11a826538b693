#pragma once
// Every differentiable op, and the backend contract with the CPU backend whole.
#include "ops/backend.hpp"
#include "ops/conv.hpp"
#include "ops/dropout.hpp"
#include "ops/elementwise.hpp"
#include "ops/linear.hpp"
#include "ops/loss.hpp"
#include "ops/mixed.hpp"
#include "ops/norm.hpp"
#include "ops/pool.hpp"
#include "ops/reduce.hpp"
#include "ops/shape_ops.hpp"
