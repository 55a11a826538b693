// Must not compile: a Var on the cuda device without the CUDA backend's header. The test passes
// when the compiler's message says which header to include (see tests/CMakeLists.txt), instead
// of a failed lookup of some kernel inside an op.
#include <diffautoml/diffautoml.hpp>

using namespace diffautoml;

int main() {
    Var<float, cuda> x(Tensor<float, cuda>(Shape{2, 3}), true);
    return static_cast<int>(ops::relu(x).numel());
}
