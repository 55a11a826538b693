#pragma once
// Pictures, opt in: PNG encoding (stb_image_write from Debian's libstb-dev), base64, and galleries
// of augmentation ops and policies with the learned policy as a Markdown table. Link
// diffautoml::visualize, which adds stb; nothing else in the library includes this header.
#include "viz/gallery.hpp"
#include "viz/png.hpp"
