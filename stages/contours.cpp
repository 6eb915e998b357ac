#include "stages/contours.hpp"

#include "stages/atomic_file.hpp"
#include "stages/geometry/contour.hpp"
#include "stages/json.hpp"
#include "stages/stitch.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <tiffio.h>

#include <cmath>
#include <memory>

namespace flowinfer {

namespace {

struct TiffCloser {
    void operator()(TIFF* t) const { TIFFClose(t); }
};

// libtiff reports through a process-wide handler; the error that matters is the call that failed.
void read_directory(TIFF* tif, const std::string& path, MapLevel& out) {
    std::uint32_t w = 0, h = 0;
    std::uint16_t spp = 1, bps = 8;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    if (spp != 1 || bps != 8)
        throw OutputError(path, fmt::format("directory {} is not an 8-bit one-channel map ({} samples of {} bits)",
                                            out.directory, spp, bps));
    out.width = w;
    out.height = h;
    out.pixels.assign(static_cast<std::size_t>(w) * h, 0);
    if (TIFFIsTiled(tif)) {
        std::uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        std::vector<std::uint8_t> tile(static_cast<std::size_t>(TIFFTileSize(tif)));
        for (std::uint32_t ty = 0; ty < h; ty += th)
            for (std::uint32_t tx = 0; tx < w; tx += tw) {
                if (TIFFReadTile(tif, tile.data(), tx, ty, 0, 0) < 0)
                    throw OutputError(path, fmt::format("cannot read the map tile at ({}, {}) of directory {}", tx,
                                                        ty, out.directory));
                const std::uint32_t cw = std::min(tw, w - tx), ch = std::min(th, h - ty);
                for (std::uint32_t y = 0; y < ch; ++y)
                    std::copy_n(tile.data() + std::size_t(y) * tw, cw,
                                out.pixels.data() + std::size_t(ty + y) * w + tx);
            }
    } else {
        for (std::uint32_t y = 0; y < h; ++y)
            if (TIFFReadScanline(tif, out.pixels.data() + std::size_t(y) * w, y, 0) < 0)
                throw OutputError(path, fmt::format("cannot read row {} of directory {}", y, out.directory));
    }
}

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

MapLevel read_map_level(const std::string& path, std::int64_t max_pixels) {
    std::unique_ptr<TIFF, TiffCloser> tif(TIFFOpen(path.c_str(), "r"));
    if (!tif) throw OutputError(path, "cannot open the map to trace its contours");
    std::uint32_t w0 = 0, h0 = 0;
    TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w0);
    TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h0);
    // Directories get smaller down the pyramid: the first that fits is the finest that fits.
    int dir = 0;
    for (;; ++dir) {
        std::uint32_t w = 0, h = 0;
        TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w);
        TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h);
        if (std::int64_t(w) * h <= max_pixels || !TIFFReadDirectory(tif.get())) break;
    }
    MapLevel level;
    level.directory = static_cast<int>(TIFFCurrentDirectory(tif.get()));
    read_directory(tif.get(), path, level);
    level.scale_x = level.width > 0 ? double(w0) / double(level.width) : 1.0;
    level.scale_y = level.height > 0 ? double(h0) / double(level.height) : 1.0;
    return level;
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
    const MapLevel level = read_map_level(map_path, kContourMaxPixels);
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
        const std::size_t pc = static_cast<std::size_t>(cls) * 3;
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
                       json_string(name), json_string(name), palette[pc], palette[pc + 1], palette[pc + 2], cls,
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
