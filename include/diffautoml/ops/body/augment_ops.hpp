#pragma once
// The augmentation ops' catalogue: the Op codes, what each op is (OpInfo: name, magnitude,
// sign, differentiability), the op lists (all, grey), magnitude ranges, AugmentOptions and the
// per-image draw (OpDraw). The pixel arithmetic is in augment_pixels.hpp (helpers) and
// augment.hpp (forward and backward of each op). Like them it sits at the ops level so that
// both backends can include it without reaching up into da/; the names stay in diffautoml::da.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../core/error.hpp"

namespace diffautoml::da {

/// The augmentation operations (the DADA / AutoAugment set plus Identity and FlipLR).
enum class Op : std::uint8_t {
    identity,
    flip_lr,
    shear_x,
    shear_y,
    translate_x,
    translate_y,
    rotate,
    auto_contrast,
    invert,
    equalize,
    solarize,
    posterize,
    contrast,
    color,
    brightness,
    sharpness,
    cutout,
};
inline constexpr int kOpCount = 17;

/// What each op is: whether it reads its magnitude, whether the magnitude takes a random sign
/// per image (the op is symmetric about magnitude 0), and whether it is differentiable in it.
struct OpInfo {
    std::string_view name;
    bool has_magnitude;
    bool symmetric;
    bool magnitude_differentiable;
};
inline constexpr std::array<OpInfo, kOpCount> kOpInfo{{
    {"Identity", false, false, false},
    {"FlipLR", false, false, false},
    {"ShearX", true, true, true},
    {"ShearY", true, true, true},
    {"TranslateX", true, true, true},
    {"TranslateY", true, true, true},
    {"Rotate", true, true, true},
    {"AutoContrast", false, false, false},
    {"Invert", false, false, false},
    {"Equalize", false, false, false},
    {"Solarize", true, false, false},
    {"Posterize", true, false, false},
    {"Contrast", true, true, true},
    {"Color", true, true, true},
    {"Brightness", true, true, true},
    {"Sharpness", true, true, true},
    {"Cutout", true, false, false},
}};

inline const OpInfo& info(Op op) { return kOpInfo[static_cast<std::size_t>(op)]; }
inline std::string_view op_name(Op op) { return info(op).name; }

/// Every op, in enum order.
inline std::vector<Op> all_ops() {
    std::vector<Op> v;
    for (int k = 0; k < kOpCount; ++k) v.push_back(static_cast<Op>(k));
    return v;
}

/// The ops that keep a dark-background grey image (Fashion-MNIST, MNIST) in the distribution it
/// is tested on: all ops except Invert and Solarize (they turn the black background white, which
/// no test image has) and Color (the identity on one channel). On Fashion-MNIST an adversarial
/// pair policy over all ops collapsed onto Invert (docs/results.md).
inline std::vector<Op> grey_ops() {
    std::vector<Op> v;
    for (Op o : all_ops())
        if (o != Op::invert && o != Op::solarize && o != Op::color) v.push_back(o);
    return v;
}

/// The op of a name (as op_name prints it, case-sensitive).
inline Op op_from_name(std::string_view name) {
    std::string known;
    for (int k = 0; k < kOpCount; ++k) {
        if (kOpInfo[static_cast<std::size_t>(k)].name == name) return static_cast<Op>(k);
        known += (k ? ", " : "") + std::string(kOpInfo[static_cast<std::size_t>(k)].name);
    }
    throw value_error(DAM_FORMAT("augmentation op '{}' does not exist; the ops are {}", name, known));
}

/// Magnitude m in [0, 1] to the op's parameter; the defaults are AutoAugment's ranges
/// (Cubuk et al. 2019, table of operations) with pixel values in [0, 1].
struct MagnitudeRanges {
    double shear = 0.3;                  ///< shear factor at m = 1
    double translate = 150.0 / 331.0;    ///< shift as a fraction of the image side at m = 1
    double rotate_degrees = 30.0;        ///< angle at m = 1 (counter-clockwise for a positive sign)
    double enhance = 0.9;                ///< PIL enhance factor 1 + sign * 0.9 m, in [0.1, 1.9]
    double solarize = 1.0;               ///< 8-bit threshold 256 (1 - solarize m): m = 0 inverts nothing
    double posterize_bits = 4.0;         ///< bits kept: 8 - round(4 m), in [4, 8]
    double cutout = 20.0 / 32.0;         ///< side of the square hole as a fraction of min(H, W)
};

/// How an augmentation treats the pixels it has no data for, and its magnitude ranges.
struct AugmentOptions {
    MagnitudeRanges ranges{};
    double fill = 0.5;  ///< pixel value outside the image (warps) and in the Cutout hole; AutoAugment uses grey
};

/// How the magnitude gradient is formed: `exact` differentiates the op where it is differentiable
/// in m and uses the straight-through rule (dL/dm = sum dL/dy) where not, and gives no gradient to
/// ops without a magnitude; `straight_through` uses the straight-through rule for every op (DADA).
enum class MagnitudeGradient { exact, straight_through };

/// One op applied to one image: the op, the sign of its magnitude (symmetric ops) and, for
/// Cutout, the hole's centre as fractions (u of the width, v of the height) in [0, 1).
struct OpDraw {
    Op op = Op::identity;
    std::int8_t sign = 1;
    float u = 0.5f, v = 0.5f;
};

}  // namespace diffautoml::da
