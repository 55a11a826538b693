// Must not compile: the DA policy lacks update(). The test passes when the compiler's message
// names the concept and what is missing (see tests/CMakeLists.txt).
#include <diffautoml/diffautoml.hpp>

using namespace diffautoml;

template <class T = float>
struct NoUpdate {
    using value_type = T;
    static constexpr std::string_view policy_name = "no_update";
    Var<T> augment(const Tensor<T>& x, da::DaContext&) { return Var<T>(x); }
    std::vector<da::PolicyEntry> summary(std::size_t) const { return {}; }
    bool searching() const { return false; }
    void save_state(ByteWriter&) const {}
    void load_state(ByteReader&) {}
};

int main() {
    data::Dataset train, test;
    search::JointSearch<NoUpdate, nas::DSNAS<nas::ShuffleSpace>, hpo::HypergradLrWd> js(train, test, {});
    return 0;
}
