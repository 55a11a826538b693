// A user program built against the installed package: one gradient through the public API.
#include <diffautoml/diffautoml.hpp>

int main() {
    using namespace diffautoml;
    auto x = Var<double>(Tensor<double>::from(Shape{2}, {1.0, 2.0}), true);
    ops::sum(x * x).backward();
    return x.grad()[1] == 4.0 ? 0 : 1;
}
