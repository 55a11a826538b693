#pragma once
// Every HPO policy, one header each (types satisfying HpoPolicy, hpo/concept.hpp):
//  - HypergradLrWd, HypergradMulti (hypergrad.hpp): hypergradients per parameter group;
//  - BaydinHD (baydin.hpp): hypergradient descent on the learning rate;
//  - FixedSchedule (fixed.hpp): the fixed recipe.
// Their parts: ValidationSet and hold_out (validation.hpp), HyperSGD and Hyperparameter
// (hyper_sgd.hpp), the longer horizons (horizon.hpp).
#include "baydin.hpp"
#include "concept.hpp"
#include "fixed.hpp"
#include "hypergrad.hpp"
#include "hypergrad_multi.hpp"
