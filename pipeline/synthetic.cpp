// Synthetic H&E-like slides. Every pixel is a pure function of (spec, x, y): tiles can be
// computed in any order and in parallel, and tests can recompute any pixel independently.
#include <flowinfer/demo.hpp>

#include "stages/tiff_writer.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace flowinfer {

namespace {

constexpr double kPi = 3.14159265358979323846;

std::uint64_t mix(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

std::uint64_t hash3(std::uint32_t seed, std::int64_t a, std::int64_t b, std::uint32_t salt) {
    std::uint64_t h = mix((static_cast<std::uint64_t>(seed) << 32) ^ salt);
    h = mix(h ^ static_cast<std::uint64_t>(a));
    return mix(h ^ static_cast<std::uint64_t>(b));
}

// Uniform in [0, 1).
double unit(std::uint64_t h) { return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0); }

// Share of the square [-1, 1]^2 within distance rho of its centre.
double disc_in_square(double rho) {
    if (rho <= 0) return 0;
    if (rho <= 1) return kPi * rho * rho / 4;
    if (rho >= std::sqrt(2.0)) return 1;
    const double r2 = rho * rho;
    return (kPi * r2 - 4 * r2 * std::acos(1 / rho) + 4 * std::sqrt(r2 - 1)) / 4;
}

struct Generator {
    SyntheticSlideSpec spec;
    double scale;        // feature sizes are given at 0.25 µm/px
    double rho;          // tissue radius in normalised slide coordinates
    double shape_cell;   // lattice of the noise that makes the tissue outline irregular
    double nucleus_cell;

    explicit Generator(const SyntheticSlideSpec& s) : spec(s) {
        scale = spec.mpp > 0 ? 0.25 / spec.mpp : 1.0;
        // The outline is a centred ellipse (in slide-normalised coordinates) roughened by
        // zero-mean noise. The ellipse's area is known in closed form, so its radius can be
        // solved for the requested fraction without sampling the image, and the noise moves
        // the boundary both ways so the realised share stays close.
        const double f = std::clamp(spec.tissue_fraction, 0.0, 1.0);
        double lo = 0, hi = std::sqrt(2.0);
        for (int i = 0; i < 60; ++i) {
            const double mid = (lo + hi) / 2;
            (disc_in_square(mid) < f ? lo : hi) = mid;
        }
        rho = f <= 0 ? -1 : (f >= 1 ? 10 : (lo + hi) / 2);
        shape_cell = std::max<double>(64, static_cast<double>(std::max(spec.width, spec.height)) / 3);
        nucleus_cell = 22 * scale;
    }

    double lattice(std::int64_t i, std::int64_t j, std::uint32_t salt) const {
        return unit(hash3(spec.seed, i, j, salt)) * 2 - 1;
    }

    // Smooth value noise in [-1, 1].
    double value_noise(double x, double y, double cell, std::uint32_t salt) const {
        const double gx = x / cell, gy = y / cell;
        const double fx0 = std::floor(gx), fy0 = std::floor(gy);
        const auto ix = static_cast<std::int64_t>(fx0), iy = static_cast<std::int64_t>(fy0);
        double fx = gx - fx0, fy = gy - fy0;
        fx = fx * fx * (3 - 2 * fx);
        fy = fy * fy * (3 - 2 * fy);
        const double a = lattice(ix, iy, salt), b = lattice(ix + 1, iy, salt);
        const double c = lattice(ix, iy + 1, salt), d = lattice(ix + 1, iy + 1, salt);
        return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy;
    }

    bool is_tissue(double x, double y) const {
        if (rho < 0) return false;
        const double u = (x + 0.5) / static_cast<double>(spec.width) * 2 - 1;
        const double v = (y + 0.5) / static_cast<double>(spec.height) * 2 - 1;
        const double n = 0.3 * value_noise(x, y, shape_cell, 1) +
                         0.45 * value_noise(x, y, shape_cell / 3, 2) +
                         0.25 * value_noise(x, y, shape_cell / 9, 3);
        return std::sqrt(u * u + v * v) + 0.3 * n < rho;
    }

    static std::uint8_t to_byte(double v) {
        return static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 255.0)));
    }

    // One out-of-line copy, so that the writer and synthetic_pixel() run the same floating
    // point code (inlined copies could be contracted to FMA differently).
    __attribute__((noinline)) void pixel(std::int64_t x, std::int64_t y, std::uint8_t rgb[3]) const {
        const double fx = static_cast<double>(x), fy = static_cast<double>(y);
        const std::uint64_t grain = hash3(spec.seed, x, y, 11);
        if (!is_tissue(fx, fy)) {
            const double g = 245 + (static_cast<double>(grain & 7) - 3.5) * 0.8;
            rgb[0] = rgb[1] = rgb[2] = to_byte(g);
            return;
        }
        // Eosin stroma: fibre-like texture from two octaves plus per-pixel grain.
        const double t = 0.5 + 0.35 * value_noise(fx, fy, 14 * scale, 4) +
                         0.15 * value_noise(fx, fy, 5 * scale, 5);
        const double jitter = static_cast<double>((grain >> 8) & 15) - 7.5;
        double r = 242 - 28 * t + jitter * 0.5;
        double g = 178 - 60 * t + jitter;
        double b = 212 - 45 * t + jitter * 0.8;

        // Haematoxylin nuclei on a jittered grid; a nucleus reaches at most into the
        // neighbouring cells, so the 3x3 cells around the pixel are all that can cover it.
        const double C = nucleus_cell;
        const auto cx = static_cast<std::int64_t>(std::floor(fx / C));
        const auto cy = static_cast<std::int64_t>(std::floor(fy / C));
        double best = 0, dark = 1;
        for (std::int64_t j = cy - 1; j <= cy + 1; ++j) {
            for (std::int64_t i = cx - 1; i <= cx + 1; ++i) {
                const std::uint64_t h = hash3(spec.seed, i, j, 21);
                const std::uint64_t h2 = mix(h);
                const std::uint64_t h3 = mix(h2);
                const double ncx = (i + 0.15 + 0.7 * unit(h2)) * C;
                const double ncy = (j + 0.15 + 0.7 * unit(h3)) * C;
                const std::uint64_t h4 = mix(h3);
                const double rad = (4 + 4 * unit(h4)) * scale;
                const std::uint64_t h5 = mix(h4);
                const double elong = 1 + 0.35 * unit(h5);
                const double dx = fx + 0.5 - ncx, dy = fy + 0.5 - ncy;
                // Cheap bound first: most neighbouring nuclei are too far to matter.
                const double reach = rad * elong + 1;
                if (dx * dx + dy * dy >= reach * reach) continue;
                // Cellularity varies over a few hundred µm, like stroma vs dense tumour.
                const double density =
                    0.55 + 0.45 * value_noise((i + 0.5) * C, (j + 0.5) * C, 600 * scale, 6);
                if (unit(h) >= density) continue;
                const double ang = unit(mix(h5)) * kPi;
                const double ca = std::cos(ang), sa = std::sin(ang);
                const double p = (dx * ca + dy * sa) / (rad * elong);
                const double q = (-dx * sa + dy * ca) * elong / rad;
                const double dist = std::sqrt(p * p + q * q);
                if (dist >= 1 + 1.0 / rad) continue;
                const double alpha = std::clamp((1 - dist) * rad + 0.5, 0.0, 1.0);
                if (alpha > best) {
                    best = alpha;
                    dark = 0.8 + 0.4 * unit(mix(h5 ^ 0x5bd1e995));
                }
            }
        }
        if (best > 0) {
            const double chrom = static_cast<double>((grain >> 16) & 31) - 15.5;
            const double nr = 90 * dark + chrom * 0.6;
            const double ng = 50 * dark + chrom * 0.4;
            const double nb = 140 * dark + chrom * 0.6;
            r += (nr - r) * best;
            g += (ng - g) * best;
            b += (nb - b) * best;
        }
        rgb[0] = to_byte(r);
        rgb[1] = to_byte(g);
        rgb[2] = to_byte(b);
    }
};

}  // namespace

void synthetic_pixel(const SyntheticSlideSpec& spec, std::int64_t x, std::int64_t y,
                     std::uint8_t rgb[3]) {
    Generator(spec).pixel(x, y, rgb);
}

void write_synthetic_slide(const std::string& path, const SyntheticSlideSpec& spec) {
    const Generator gen(spec);
    TiffLayout layout;
    layout.width = spec.width;
    layout.height = spec.height;
    layout.channels = 3;
    layout.tile = 256;
    layout.jpeg = spec.jpeg_quality > 0;
    layout.jpeg_quality = spec.jpeg_quality > 0 ? spec.jpeg_quality : 90;
    layout.compression = Compression::deflate;
    layout.mpp = spec.mpp > 0 ? spec.mpp : 0.0;
    layout.description = fmt::format("flowinfer synthetic slide seed={} mpp={}", spec.seed, spec.mpp);

    PyramidTiffWriter writer(path, layout);
    const int T = layout.tile;
    const std::int64_t nx = writer.tiles_x();
    const std::size_t tile_bytes = static_cast<std::size_t>(T) * T * 3;
    // One row of tiles at a time: memory stays bounded by the slide width.
    std::vector<std::uint8_t> row(tile_bytes * static_cast<std::size_t>(nx));
    for (std::int64_t ty = 0; ty < writer.tiles_y(); ++ty) {
        // Parallel over (tile, pixel row) pairs so narrow slides still use every core.
        tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, nx * T),
                          [&](const tbb::blocked_range<std::int64_t>& r) {
            for (std::int64_t k = r.begin(); k < r.end(); ++k) {
                const std::int64_t tx = k / T;
                const int py = static_cast<int>(k % T);
                std::uint8_t* out = row.data() + tile_bytes * static_cast<std::size_t>(tx) +
                                    static_cast<std::size_t>(py) * T * 3;
                const std::int64_t y = ty * T + py;
                // Pixels past the edge are computed too: harmless, and JPEG blocks on the
                // edge then hold plausible content instead of a hard step.
                for (int px = 0; px < T; ++px) gen.pixel(tx * T + px, y, out + 3 * px);
            }
        });
        for (std::int64_t tx = 0; tx < nx; ++tx)
            writer.write_tile(tx, ty, row.data() + tile_bytes * static_cast<std::size_t>(tx));
    }
    writer.finish();
}

void write_disc_slide(const std::string& path, std::int64_t width, std::int64_t height,
                      const std::vector<Disc>& discs, double mpp) {
    if (width <= 0 || height <= 0)
        throw OutputError(path, fmt::format("disc slide needs a positive size, got {}x{}", width, height));
    TiffLayout layout;
    layout.width = width;
    layout.height = height;
    layout.channels = 3;
    layout.tile = 256;
    layout.compression = Compression::deflate;
    layout.mpp = mpp > 0 ? mpp : 0.0;
    layout.description = fmt::format("flowinfer disc slide discs={} mpp={}", discs.size(), mpp);

    PyramidTiffWriter writer(path, layout);
    const int T = layout.tile;
    const std::int64_t nx = writer.tiles_x();
    const std::size_t tile_bytes = static_cast<std::size_t>(T) * T * 3;

    // Bucket the discs by tile row so a row only looks at the discs that can reach it: the
    // slide may hold many thousands of them.
    std::vector<std::vector<std::size_t>> by_row(static_cast<std::size_t>(writer.tiles_y()));
    for (std::size_t i = 0; i < discs.size(); ++i) {
        const Disc& d = discs[i];
        const double reach = std::abs(d.r) + 1;
        const auto lo = static_cast<std::int64_t>(std::floor((d.y - reach) / T));
        const auto hi = static_cast<std::int64_t>(std::floor((d.y + reach) / T));
        for (std::int64_t ty = std::max<std::int64_t>(0, lo);
             ty <= std::min<std::int64_t>(writer.tiles_y() - 1, hi); ++ty)
            by_row[static_cast<std::size_t>(ty)].push_back(i);
    }

    const double dark[3] = {60, 30, 110};
    std::vector<std::uint8_t> row(tile_bytes * static_cast<std::size_t>(nx));
    // Coverage (0..1) of each pixel of the tile row, so overlapping discs do not darken twice.
    std::vector<float> cover(static_cast<std::size_t>(nx) * T * T);
    for (std::int64_t ty = 0; ty < writer.tiles_y(); ++ty) {
        std::fill(cover.begin(), cover.end(), 0.0f);
        const std::int64_t y0 = ty * T;
        const std::int64_t row_w = nx * T;
        for (std::size_t i : by_row[static_cast<std::size_t>(ty)]) {
            const Disc& d = discs[i];
            const double r = std::abs(d.r);
            const auto ya = std::max<std::int64_t>(y0, static_cast<std::int64_t>(std::floor(d.y - r - 1)));
            const auto yb = std::min<std::int64_t>(y0 + T - 1, static_cast<std::int64_t>(std::ceil(d.y + r + 1)));
            const auto xa = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::floor(d.x - r - 1)));
            const auto xb = std::min<std::int64_t>(row_w - 1, static_cast<std::int64_t>(std::ceil(d.x + r + 1)));
            for (std::int64_t y = ya; y <= yb; ++y) {
                for (std::int64_t x = xa; x <= xb; ++x) {
                    // Pixel (x, y) covers [x, x+1) x [y, y+1): a one-pixel linear ramp across
                    // the rim approximates its covered share (anti-aliasing).
                    const double dist = std::hypot(x + 0.5 - d.x, y + 0.5 - d.y);
                    const auto a = static_cast<float>(std::clamp(r - dist + 0.5, 0.0, 1.0));
                    float& c = cover[static_cast<std::size_t>((y - y0) * row_w + x)];
                    c = std::max(c, a);
                }
            }
        }
        for (std::int64_t tx = 0; tx < nx; ++tx) {
            std::uint8_t* tile = row.data() + tile_bytes * static_cast<std::size_t>(tx);
            for (int py = 0; py < T; ++py) {
                for (int px = 0; px < T; ++px) {
                    const float a = cover[static_cast<std::size_t>(py * row_w + tx * T + px)];
                    for (int c = 0; c < 3; ++c)
                        tile[(py * T + px) * 3 + c] =
                            static_cast<std::uint8_t>(std::lround(255 + (dark[c] - 255) * a));
                }
            }
            writer.write_tile(tx, ty, tile);
        }
    }
    writer.finish();
}

}  // namespace flowinfer
