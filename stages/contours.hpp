// Segmentation contours: a finished map TIFF traced into <model>.geojson, one QuPath
// annotation per class (README, "Contours").
//
// Resolution: the finest pyramid directory of the map with at most kContourMaxPixels pixels
// is traced, so a slide's whole map is never held: the level and the bytes it costs
// (about 6 bytes per traced pixel: the level, one class mask, the tracer's labels) are bounded
// whatever the slide's size. A map of up to 32 M pixels is traced at full resolution.
//
// Thread safety: reentrant; distinct maps may be traced concurrently.
#pragma once

#include "stages/geometry/polygon.hpp"
#include "stages/tiff/map_reader.hpp"

#include <flowinfer/config.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer {

inline constexpr std::int64_t kContourMaxPixels = std::int64_t(32) << 20;

// The finest directory with width * height <= max_pixels (the coarsest one when none is).
// Throws OutputError naming the file when it cannot be read.
MapLevel read_map_to_trace(const std::string& path, std::int64_t max_pixels);

// The classes a model's map is traced for: contour_classes, else class 1 of a 1- or
// 2-channel map, else every class > 0 of a label map.
std::vector<int> contour_classes(const ModelConfig& model, int channels);

// Class `cls` of a map as a 0/1 mask: label maps (channels > 2) by equality; probability
// maps (value round(255 p)) by p >= threshold for class 1, and below it for class 0.
std::vector<std::uint8_t> class_mask(const MapLevel& level, int channels, int cls, double threshold);

struct ContourStats {
    std::int64_t features = 0;  // classes with at least one part
    std::int64_t parts = 0;     // polygons over every class
    double downsample = 1;      // level-0 slide pixels per traced pixel
    std::vector<std::string> warnings;
};

// Traces `map_path` (map_downsample: slide level-0 pixels per map pixel; slide_mpp: µm per
// level-0 pixel, 0 when unknown) and writes `geojson_path` atomically. Throws OutputError.
ContourStats write_contours(const std::string& map_path, const std::string& geojson_path, double map_downsample,
                            double slide_mpp, int channels, const ModelConfig& model);

}  // namespace flowinfer
