#pragma once
// Hyperparameter optimisation: one-step hypergradients (lr, weight decay, label smoothing), Baydin HD, fixed schedules.
#include "hpo/policies.hpp"
