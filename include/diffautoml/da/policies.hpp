#pragma once
// Every data augmentation policy, one header each (types satisfying DaPolicy, da/concept.hpp):
//  - PairPolicyDA (pair_policy.hpp): DiffAutoML's distribution over ordered op pairs;
//  - DADA (dada.hpp): Li et al. 2020, differentiable through the augmented images;
//  - RandAugment (randaugment.hpp), StandardAugment and NoAugment (standard.hpp).
#include "concept.hpp"
#include "dada.hpp"
#include "pair_policy.hpp"
#include "randaugment.hpp"
#include "none.hpp"
#include "standard.hpp"

