// Overlay previews: map TIFFs and boxes over a slide thumbnail, PNG out, small data: URIs for
// the run report. See preview.hpp for the contract and the blend rules.
//
// Thread safety: reentrant; every call opens its own libtiff handle with its own error
// handler (libtiff's global handlers would print to stderr and are shared by all threads).
#include "stages/preview.hpp"

#include "stages/atomic_file.hpp"
#include "stages/image/encode.hpp"
#include "stages/stitch.hpp"
#include "stages/tiff/map_reader.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <memory>
#include <stdexcept>

namespace flowinfer {

namespace {

using Rgb = std::array<std::uint8_t, 3>;

// The label-map palette's defaults (tab10, then a grey ramp), for a map whose caller gave no
// colour, so a class looks the same in the preview as in the TIFF.
Rgb default_color(int k) {
    static const std::vector<std::uint8_t> palette = label_palette();
    return label_color(palette, k);
}

// viridis at 0, 0.25, 0.5, 0.75, 1: perceptually ordered and readable by colour-blind viewers.
constexpr double kViridis[5][3] = {
    {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};

void check_image(const RgbImage& img, const char* what) {
    if (img.width < 0 || img.height < 0 ||
        img.rgb.size() != static_cast<std::size_t>(img.width) * static_cast<std::size_t>(img.height) * 3)
        throw std::invalid_argument(fmt::format("{}: a {}x{} image needs {} bytes, has {}", what, img.width,
                                                img.height, 3LL * img.width * img.height, img.rgb.size()));
}

std::uint8_t tint(std::uint8_t thumb, std::uint8_t colour) {
    return static_cast<std::uint8_t>((55 * thumb + 45 * colour + 50) / 100);
}

void draw_map(RgbImage& img, double tds, const PreviewMap& map) {
    if (!(map.downsample > 0) || !std::isfinite(map.downsample))
        throw std::invalid_argument(fmt::format("map {}: downsample must be positive", map.path));
    // The smallest directory with at least one pixel per thumbnail pixel: no detail lost and
    // no more decoded than needed; without one, level 0.
    const double per_thumb = tds / map.downsample;  // map level-0 pixels per thumbnail pixel
    const MapLevel m = read_map_level(
        map.path,
        [&](const std::vector<MapDirectory>& dirs) {
            const double target = double(dirs.front().width) / per_thumb;
            std::size_t pick = 0;
            for (std::size_t i = 0; i < dirs.size(); ++i)
                if (double(dirs[i].width) >= target * (1 - 1e-9) && dirs[i].width < dirs[pick].width) pick = i;
            return pick;
        },
        "for a preview");
    // Thumbnail pixel centre -> level 0 -> map level 0 -> this directory.
    const double sx = static_cast<double>(m.width) / m.width0, sy = static_cast<double>(m.height) / m.height0;
    std::vector<std::int64_t> col(img.width), row(img.height);
    for (int x = 0; x < img.width; ++x)
        col[x] = static_cast<std::int64_t>(std::floor((x + 0.5) * tds / map.downsample * sx));
    for (int y = 0; y < img.height; ++y)
        row[y] = static_cast<std::int64_t>(std::floor((y + 0.5) * tds / map.downsample * sy));

    // Colour per map value, resolved once; has[v] false: value left untinted.
    std::array<Rgb, 256> lut{};
    std::array<bool, 256> has{};
    if (map.kind == PreviewMap::heat) {
        for (int v = 1; v < 256; ++v) {
            lut[v] = heat_ramp(v / 255.0);
            has[v] = true;
        }
    } else if (m.palette) {
        for (int k = 1; k < 256; ++k) {
            has[k] = true;
            if (static_cast<std::size_t>(k) < map.colors.size()) lut[k] = map.colors[k];
            else if (!m.colormap.empty()) lut[k] = m.colormap[k];
            else lut[k] = default_color(k);
        }
    } else {
        const Rgb c = map.colors.size() > 1 ? map.colors[1] : default_color(1);
        for (int v = 128; v < 256; ++v) {
            lut[v] = c;
            has[v] = true;
        }
    }
    const bool heat = map.kind == PreviewMap::heat;
    for (int y = 0; y < img.height; ++y) {
        if (row[y] < 0 || row[y] >= static_cast<std::int64_t>(m.height)) continue;
        const std::uint8_t* src = m.pixels.data() + static_cast<std::size_t>(row[y]) * m.width;
        std::uint8_t* dst = img.rgb.data() + static_cast<std::size_t>(y) * img.width * 3;
        for (int x = 0; x < img.width; ++x) {
            if (col[x] < 0 || col[x] >= static_cast<std::int64_t>(m.width)) continue;
            const std::uint8_t v = src[col[x]];
            if (!has[v]) continue;
            std::uint8_t* p = dst + 3 * x;
            for (int c = 0; c < 3; ++c)
                p[c] = heat ? static_cast<std::uint8_t>((p[c] + lut[v][c] + 1) / 2) : tint(p[c], lut[v][c]);
        }
    }
}

void draw_box(RgbImage& img, double tds, const PreviewBox& b) {
    if (!std::isfinite(b.x1) || !std::isfinite(b.y1) || !std::isfinite(b.x2) || !std::isfinite(b.y2)) return;
    // Inclusive thumbnail pixel range the box touches; a box smaller than a pixel still shows.
    const auto clampd = [](double v) { return std::clamp(v, -1e9, 1e9); };
    const std::int64_t x1 = static_cast<std::int64_t>(std::floor(clampd(std::min(b.x1, b.x2) / tds)));
    const std::int64_t y1 = static_cast<std::int64_t>(std::floor(clampd(std::min(b.y1, b.y2) / tds)));
    const std::int64_t x2 = std::max(x1, static_cast<std::int64_t>(std::ceil(clampd(std::max(b.x1, b.x2) / tds))) - 1);
    const std::int64_t y2 = std::max(y1, static_cast<std::int64_t>(std::ceil(clampd(std::max(b.y1, b.y2) / tds))) - 1);
    const std::int64_t cx1 = std::max<std::int64_t>(x1, 0), cx2 = std::min<std::int64_t>(x2, img.width - 1);
    const std::int64_t cy1 = std::max<std::int64_t>(y1, 0), cy2 = std::min<std::int64_t>(y2, img.height - 1);
    for (std::int64_t y = cy1; y <= cy2; ++y)
        for (std::int64_t x = cx1; x <= cx2; ++x) {
            const bool edge = x < x1 + 2 || x > x2 - 2 || y < y1 + 2 || y > y2 - 2;
            if (!edge) continue;
            std::uint8_t* p = img.rgb.data() + (static_cast<std::size_t>(y) * img.width + x) * 3;
            p[0] = b.color[0];
            p[1] = b.color[1];
            p[2] = b.color[2];
        }
}

// For each output index, the source indices it covers and the covered length (area average).
struct Span {
    int first;
    std::vector<double> weights;
};

std::vector<Span> area_spans(int in, int out) {
    std::vector<Span> spans(out);
    const double s = static_cast<double>(in) / out;
    for (int o = 0; o < out; ++o) {
        const double a = o * s, b = std::min<double>((o + 1) * s, in);
        Span& sp = spans[o];
        sp.first = static_cast<int>(std::floor(a));
        for (int i = sp.first; i < in && i < b; ++i)
            sp.weights.push_back((std::min<double>(i + 1, b) - std::max<double>(i, a)) / s);
    }
    return spans;
}

RgbImage shrink_area(const RgbImage& img, int ow, int oh) {
    const auto xs = area_spans(img.width, ow), ys = area_spans(img.height, oh);
    // Horizontal pass into doubles, then vertical: separable, exact box filter.
    std::vector<double> tmp(static_cast<std::size_t>(img.height) * ow * 3, 0.0);
    for (int y = 0; y < img.height; ++y)
        for (int o = 0; o < ow; ++o)
            for (std::size_t k = 0; k < xs[o].weights.size(); ++k) {
                const std::uint8_t* p = img.rgb.data() + (static_cast<std::size_t>(y) * img.width + xs[o].first + k) * 3;
                double* d = tmp.data() + (static_cast<std::size_t>(y) * ow + o) * 3;
                for (int c = 0; c < 3; ++c) d[c] += xs[o].weights[k] * p[c];
            }
    RgbImage out;
    out.width = ow;
    out.height = oh;
    out.rgb.assign(static_cast<std::size_t>(ow) * oh * 3, 0);
    for (int o = 0; o < oh; ++o)
        for (int x = 0; x < ow; ++x) {
            double acc[3] = {0, 0, 0};
            for (std::size_t k = 0; k < ys[o].weights.size(); ++k) {
                const double* s = tmp.data() + ((static_cast<std::size_t>(ys[o].first) + k) * ow + x) * 3;
                for (int c = 0; c < 3; ++c) acc[c] += ys[o].weights[k] * s[c];
            }
            for (int c = 0; c < 3; ++c)
                out.rgb[(static_cast<std::size_t>(o) * ow + x) * 3 + c] =
                    static_cast<std::uint8_t>(std::clamp(std::lround(acc[c]), 0L, 255L));
        }
    return out;
}

}  // namespace

std::array<std::uint8_t, 3> heat_ramp(double t) {
    t = std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
    const double s = t * 4;
    const int i = std::min(static_cast<int>(s), 3);
    const double f = s - i;
    Rgb out{};
    for (int c = 0; c < 3; ++c)
        out[c] = static_cast<std::uint8_t>(std::lround(kViridis[i][c] * (1 - f) + kViridis[i + 1][c] * f));
    return out;
}

RgbImage compose_preview(RgbImage thumbnail, double thumb_downsample, const std::vector<PreviewMap>& maps,
                         const std::vector<PreviewBox>& boxes) {
    check_image(thumbnail, "compose_preview thumbnail");
    if (!(thumb_downsample > 0) || !std::isfinite(thumb_downsample))
        throw std::invalid_argument("compose_preview: thumb_downsample must be positive");
    if (thumbnail.width == 0 || thumbnail.height == 0) return thumbnail;
    for (const PreviewMap& m : maps) draw_map(thumbnail, thumb_downsample, m);
    for (const PreviewBox& b : boxes) draw_box(thumbnail, thumb_downsample, b);
    return thumbnail;
}

void write_png(const std::string& path, const RgbImage& img) {
    if (img.width <= 0 || img.height <= 0 || img.width > 0x7fffffff / 3 ||
        img.rgb.size() != static_cast<std::size_t>(img.width) * static_cast<std::size_t>(img.height) * 3)
        throw OutputError(path, fmt::format("cannot write a PNG of a {}x{} image with {} bytes", img.width,
                                            img.height, img.rgb.size()));
    std::string png;
    try {
        png = image::encode_png(img.rgb.data(), img.width, img.height, 3);
    } catch (const std::runtime_error& e) {
        throw OutputError(path, std::string("cannot encode the preview: ") + e.what());
    }
    write_file_atomically(path, png);
}

std::string thumbnail_data_uri(const RgbImage& img, int long_side) {
    check_image(img, "thumbnail_data_uri");
    if (long_side < 1) throw std::invalid_argument("thumbnail_data_uri: long_side must be at least 1");
    if (img.width == 0 || img.height == 0) return {};
    const int longest = std::max(img.width, img.height);
    RgbImage small;
    if (longest > long_side) {
        const double f = static_cast<double>(long_side) / longest;
        small = shrink_area(img, std::max(1, static_cast<int>(std::lround(img.width * f))),
                            std::max(1, static_cast<int>(std::lround(img.height * f))));
    }
    const RgbImage& src = longest > long_side ? small : img;
    const std::string png = image::encode_png(src.rgb.data(), src.width, src.height, 3);
    if (png.size() > static_cast<std::size_t>(std::numeric_limits<int>::max() / 4 * 3 - 3))
        throw std::invalid_argument("thumbnail_data_uri: image too large for a data URI");
    std::string b64(4 * ((png.size() + 2) / 3) + 1, '\0');  // + the NUL EVP_EncodeBlock appends
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                  reinterpret_cast<const unsigned char*>(png.data()), static_cast<int>(png.size()));
    b64.resize(static_cast<std::size_t>(n));
    return "data:image/png;base64," + b64;
}

}  // namespace flowinfer
