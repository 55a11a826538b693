#pragma once
// Data augmentation: the AutoAugment/DADA ops (differentiable where the formula allows), the DA
// policies (PairPolicyDA, DADA, RandAugment, StandardAugment, NoAugment) and galleries to look at.
#include "da/augment.hpp"
#include "ops/body/augment.hpp"
#include "da/policies.hpp"
