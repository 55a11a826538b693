#pragma once
// Every NAS policy, one header each (types satisfying NasPolicy, nas/concept.hpp):
//  - DSNAS (dsnas.hpp), DARTS (darts.hpp), GDAS and SNAS (gumbel.hpp), on the shared alpha state
//    of alpha_policy.hpp;
//  - FixedArch (fixed.hpp): no search.
#include "concept.hpp"
#include "darts.hpp"
#include "dsnas.hpp"
#include "fixed.hpp"
#include "gdas.hpp"
#include "snas.hpp"
