#pragma once
// The joint search of DA policy, architecture and hyperparameters (JointSearch), its checkpoints,
// logs and report.
#include "search/joint.hpp"
