#pragma once
// How a joint search ends early: divergence, a requested stop, and the flag a signal handler sets.
#include <atomic>

#include "../core/error.hpp"

namespace diffautoml::search {

/// The loss became NaN or Inf; nothing was updated with it and the last checkpoint is intact.
class divergence_error : public value_error {
public:
    using value_error::value_error;
};

/// A stop was requested (e.g. SIGINT); the state was checkpointed first.
class interrupted : public error {
public:
    using error::error;
};

/// Set by a signal handler (see install_stop_handlers); JointSearch checkpoints and stops.
inline std::atomic<bool>& stop_flag() {
    static std::atomic<bool> flag{false};
    return flag;
}

}  // namespace diffautoml::search
