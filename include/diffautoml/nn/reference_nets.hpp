#pragma once
// The reference networks of benchmarks/torch_ref.py (the PyTorch peer), layer for layer, so that
// accuracy and speed can be compared with PyTorch on equal terms.
#include "layers.hpp"

namespace diffautoml::nn {

/// conv(k, stride, groups) -> BN -> ReLU, with padding k/2 and no conv bias (the ReLU is fused
/// into the batch norm).
template <class T, Device D = cpu>
ModulePtr<T, D> conv_bn_relu(std::int64_t in, std::int64_t out, Generator& gen, std::int64_t k = 3,
                             std::int64_t stride = 1, std::int64_t groups = 1) {
    return make<Sequential<T, D>>(std::initializer_list<ModulePtr<T, D>>{
        make<Conv2d<T, D>>(in, out, k, Conv2dOptions{stride, k / 2, 1, groups}, false, gen),
        make<BatchNorm2d<T, D>>(out, 0.1, 1e-5, true)});
}

/// The basic residual block: relu(bn(conv3(relu(bn(conv3(x))))) + shortcut(x)), with a 1x1
/// conv + BN shortcut when the shape changes.
template <class T, Device D = cpu>
ModulePtr<T, D> basic_block(std::int64_t in, std::int64_t out, std::int64_t stride, Generator& gen) {
    auto body = make<Sequential<T, D>>(std::initializer_list<ModulePtr<T, D>>{
        conv_bn_relu<T, D>(in, out, gen, 3, stride),
        make<Conv2d<T, D>>(out, out, 3, Conv2dOptions{1, 1, 1, 1}, false, gen), make<BatchNorm2d<T, D>>(out)});
    ModulePtr<T, D> shortcut;
    if (in != out || stride != 1)
        shortcut = make<Sequential<T, D>>(std::initializer_list<ModulePtr<T, D>>{
            make<Conv2d<T, D>>(in, out, 1, Conv2dOptions{stride, 0, 1, 1}, false, gen), make<BatchNorm2d<T, D>>(out)});
    return make<Residual<T, D>>(body, shortcut, true);
}

/// MobileNetV2 inverted residual with kernel k and expansion e (linear bottleneck, identity
/// shortcut when the shape is kept).
template <class T, Device D = cpu>
ModulePtr<T, D> inverted_residual(std::int64_t in, std::int64_t out, std::int64_t stride, std::int64_t k,
                                  std::int64_t e, Generator& gen) {
    const std::int64_t h = in * e;
    auto body = make<Sequential<T, D>>(std::initializer_list<ModulePtr<T, D>>{
        conv_bn_relu<T, D>(in, h, gen, 1), conv_bn_relu<T, D>(h, h, gen, k, stride, h),
        make<Conv2d<T, D>>(h, out, 1, Conv2dOptions{}, false, gen), make<BatchNorm2d<T, D>>(out)});
    if (in == out && stride == 1) return make<Residual<T, D>>(body, nullptr, false);
    return body;
}

/// `small`: ResNet-ish 32-64-128 (torch_ref.py --net small).
template <class T, Device D = cpu>
std::shared_ptr<Sequential<T, D>> small_net(Generator& gen, std::int64_t in_channels = 1, std::int64_t classes = 10) {
    return make<Sequential<T, D>>(std::initializer_list<ModulePtr<T, D>>{
        conv_bn_relu<T, D>(in_channels, 32, gen), basic_block<T, D>(32, 32, 1, gen), basic_block<T, D>(32, 64, 2, gen),
        basic_block<T, D>(64, 128, 2, gen), make<GlobalAvgPool2d<T, D>>(), make<Linear<T, D>>(128, classes, true, gen)});
}

/// `mbv2`: one path (k3, e3 everywhere) of a MobileNetV2-style supernet (torch_ref.py --net mbv2).
template <class T, Device D = cpu>
std::shared_ptr<Sequential<T, D>> mbv2_net(Generator& gen, std::int64_t in_channels = 1, std::int64_t classes = 10) {
    auto net = make<Sequential<T, D>>();
    net->push_back(conv_bn_relu<T, D>(in_channels, 16, gen));
    const std::int64_t cfg[][3] = {{16, 24, 1}, {24, 24, 1}, {24, 40, 2}, {40, 40, 1}, {40, 80, 2}, {80, 80, 1}};
    for (auto& c : cfg) net->push_back(inverted_residual<T, D>(c[0], c[1], c[2], 3, 3, gen));
    net->push_back(conv_bn_relu<T, D>(80, 256, gen, 1));
    net->push_back(make<GlobalAvgPool2d<T, D>>());
    net->push_back(make<Linear<T, D>>(256, classes, true, gen));
    return net;
}

}  // namespace diffautoml::nn
