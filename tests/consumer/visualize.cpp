// A user program with the opt-in pictures: a PNG of a 2 x 2 grey image through the installed
// diffautoml::visualize target (stb's writer, linked by the target).
#include <diffautoml/visualize.hpp>

int main() {
    const auto png = diffautoml::encode_png(2, 2, 1, {0, 85, 170, 255});
    return png.size() > 8 && png[1] == 'P' && png[2] == 'N' && png[3] == 'G' ? 0 : 1;
}
