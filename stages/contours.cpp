#include "stages/contours.hpp"

#include "stages/atomic_file.hpp"
#include "stages/geometry/contour.hpp"
#include "stages/json.hpp"
#include "stages/stitch.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <cmath>

namespace flowinfer {

namespace {

// Level-0 slide pixels to a hundredth, written as short as that allows ("3642", "3642.5"):
// a hundredth of a pixel is below any scanner's precision.
double hundredths(double v) { return std::round(v * 100.0) / 100.0; }

void append_ring(std::string& out, const geom::Ring& r, double sx, double sy) {
    out += '[';
    for (std::size_t i = 0; i < r.size(); ++i)
        fmt::format_to(std::back_inserter(out), "{}[{},{}]", i ? "," : "", hundredths(r[i].x * sx), hundredths(r[i].y * sy));
    out += ']';
}

void append_polygon(std::string& out, const geom::Polygon& p, double sx, double sy) {
    out += '[';
    append_ring(out, p.outer, sx, sy);
    for (const geom::Ring& h : p.holes) {
        out += ',';
        append_ring(out, h, sx, sy);
    }
    out += ']';
}

}  // namespace

MapLevel read_map_to_trace(const std::string& path, std::int64_t max_pixels) {
    return read_map_level(
        path,
        [&](const std::vector<MapDirectory>& dirs) {
            // Directories get smaller down the pyramid: the first that fits is the finest.
            for (std::size_t i = 0; i < dirs.size(); ++i)
                if (dirs[i].width * dirs[i].height <= max_pixels) return i;
            return dirs.size() - 1;
        },
        "to trace its contours");
}

std::vector<int> contour_classes(const ModelConfig& model, int channels) {
    if (!model.contour_classes.empty()) return model.contour_classes;
    if (channels <= 2) return {1};
    std::vector<int> all;
    for (int c = 1; c < channels && c < 256; ++c) all.push_back(c);
    return all;
}

std::vector<std::uint8_t> class_mask(const MapLevel& level, int channels, int cls, double threshold) {
    std::vector<std::uint8_t> mask(level.pixels.size());
    if (channels > 2) {
        for (std::size_t i = 0; i < mask.size(); ++i) mask[i] = level.pixels[i] == cls;
        return mask;
    }
    // The map holds round(255 p); p >= t is value >= round(255 t) up to the map's own rounding.
    const int cut = static_cast<int>(std::lround(255.0 * threshold));
    for (std::size_t i = 0; i < mask.size(); ++i) {
        const bool in = level.pixels[i] >= cut;
        mask[i] = cls == 0 ? !in : in;
    }
    return mask;
}

ContourStats write_contours(const std::string& map_path, const std::string& geojson_path, double map_downsample,
                            double slide_mpp, int channels, const ModelConfig& model) {
    const MapLevel level = read_map_to_trace(map_path, kContourMaxPixels);
    ContourStats stats;
    const double sx = level.scale_x * map_downsample, sy = level.scale_y * map_downsample;
    stats.downsample = sx;
    // contour_tolerance is in map pixels (of the map's full resolution).
    const double tolerance = model.contour_tolerance / level.scale_x;
    double min_area = 0.0;  // traced pixels
    if (model.min_area_um2 > 0) {
        if (slide_mpp > 0) min_area = model.min_area_um2 / (slide_mpp * slide_mpp * sx * sy);
        else stats.warnings.push_back(fmt::format("model '{}': min_area_um2 = {} is not applied: the slide has no MPP",
                                                  model.name, model.min_area_um2));
    }
    if (level.width * level.height > kContourMaxPixels)
        stats.warnings.push_back(fmt::format("model '{}': contours traced on a {}x{} map level (its smallest)",
                                             model.name, level.width, level.height));
    const std::vector<std::uint8_t> palette = label_palette(model.classes);

    std::string out = "{\"type\":\"FeatureCollection\",\"features\":[";
    for (int cls : contour_classes(model, channels)) {
        const std::vector<std::uint8_t> mask = class_mask(level, channels, cls, model.contour_threshold);
        geom::MultiPolygon parts = geom::trace_contours(mask.data(), level.width, level.height);
        geom::drop_small(parts, min_area);
        geom::simplify(parts, tolerance);
        if (parts.empty()) continue;
        std::string name = cls < static_cast<int>(model.classes.size()) ? model.classes[cls].name
                           : channels <= 2 && cls == 1                 ? model.name
                                                                       : fmt::format("class {}", cls);
        const std::array<std::uint8_t, 3> color = label_color(palette, cls);
        const double area_px = geom::area(parts) * sx * sy;
        fmt::format_to(std::back_inserter(out),
                       "{}\n{{\"type\":\"Feature\",\"geometry\":{{\"type\":\"{}\",\"coordinates\":",
                       stats.features ? "," : "", parts.size() == 1 ? "Polygon" : "MultiPolygon");
        if (parts.size() == 1) {
            append_polygon(out, parts.front(), sx, sy);
        } else {
            out += '[';
            for (std::size_t i = 0; i < parts.size(); ++i) {
                if (i) out += ',';
                append_polygon(out, parts[i], sx, sy);
            }
            out += ']';
        }
        fmt::format_to(std::back_inserter(out),
                       "}},\"properties\":{{\"objectType\":\"annotation\",\"name\":{},\"classification\":{{"
                       "\"name\":{},\"color\":[{},{},{}]}},\"isLocked\":false,\"measurements\":{{\"class\":{},"
                       "\"parts\":{},\"area_px\":{:.1f}",
                       json_string(name), json_string(name), color[0], color[1], color[2], cls,
                       parts.size(), area_px);
        if (slide_mpp > 0) fmt::format_to(std::back_inserter(out), ",\"area_um2\":{:.1f}", area_px * slide_mpp * slide_mpp);
        out += "}}}";
        ++stats.features;
        stats.parts += static_cast<std::int64_t>(parts.size());
    }
    out += "\n]}\n";
    write_file_atomically(geojson_path, out);
    return stats;
}

}  // namespace flowinfer
