// Reading back the maps flowinfer writes (8-bit, one sample per pixel, pyramidal TIFF: a
// probability map, or a label map with a palette) for what is made from them: contours and
// previews. One directory is decoded whole, as raw values: a label map's class indices, not its
// palette's colours.
//
// Thread safety: reentrant; each call opens its own libtiff handle with its own error handler
// (libtiff's global handlers print to stderr and are shared by every thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace flowinfer {

// One directory of a map file, by its size.
struct MapDirectory {
    int index = 0;  // TIFF directory number
    std::int64_t width = 0, height = 0;
};

struct MapLevel {
    std::int64_t width = 0, height = 0;    // the directory read
    std::int64_t width0 = 0, height0 = 0;  // level 0 (the first directory)
    double scale_x = 1, scale_y = 1;       // level-0 pixels per pixel of the directory read
    int directory = 0;
    std::vector<std::uint8_t> pixels;      // width * height raw values, row-major
    bool palette = false;                  // a label map (PHOTOMETRIC_PALETTE)
    std::vector<std::array<std::uint8_t, 3>> colormap;  // its 256 colours, when it has them
};

// Reads the directory `choose` picks out of the map's 8-bit one-channel directories (level 0
// first, then smaller). `purpose` ("to trace its contours") goes into messages. Throws
// OutputError naming the file when it cannot be opened or read, or is not such a map.
MapLevel read_map_level(const std::string& path,
                        const std::function<std::size_t(const std::vector<MapDirectory>&)>& choose,
                        const char* purpose);

}  // namespace flowinfer
