#pragma once
// Neural architecture search: mixed ops, search spaces, policies (DSNAS, DARTS, GDAS, fixed), export.
#include "nas/candidates.hpp"
#include "nas/darts_space.hpp"
#include "nas/export.hpp"
#include "nas/mixed_op.hpp"
#include "nas/policies.hpp"
#include "nas/spaces.hpp"
#include "nas/supernet.hpp"
