// How the synthetic slide looks: an irregular tissue outline, eosin stroma texture and
// haematoxylin nuclei, each a pure function of integer lattice and cell indices.
#include "pipeline/synthetic_pixels.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
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

// floor() for the magnitudes used here (|v| < 2^62): the same value as std::floor, without
// the libm call that baseline x86-64 (no SSE4.1 roundsd) makes of it.
inline double ffloor(double v) {
    const double t = static_cast<double>(static_cast<std::int64_t>(v));
    return t > v ? t - 1 : t;
}

// std::lround for v in [0, 255] (round half away from zero), inline: v - trunc(v) is exact.
inline std::uint8_t to_byte(double v) {
    v = std::clamp(v, 0.0, 255.0);
    const int t = static_cast<int>(v);
    return static_cast<std::uint8_t>(t + (v - t >= 0.5 ? 1 : 0));
}

struct Generator {
    SyntheticSlideSpec spec;
    double scale;        // feature sizes are given at 0.25 µm/px
    double rho;          // tissue radius in normalised slide coordinates
    double shape_cell;   // lattice of the noise that makes the tissue outline irregular
    double nucleus_cell;
    // Lattice cells of the value-noise octaves: three for the outline, two for the stroma.
    double outline_cell[3], stroma_cell[2];
    // hash3(seed, ., ., salt) starts with mix((seed << 32) ^ salt): precomputed per salt.
    std::uint64_t key[22];

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
        outline_cell[0] = shape_cell;
        outline_cell[1] = shape_cell / 3;
        outline_cell[2] = shape_cell / 9;
        stroma_cell[0] = 14 * scale;
        stroma_cell[1] = 5 * scale;
        for (std::uint32_t salt = 0; salt < 22; ++salt)
            key[salt] = mix((static_cast<std::uint64_t>(spec.seed) << 32) ^ salt);
    }

    std::uint64_t hash(std::int64_t a, std::int64_t b, std::uint32_t salt) const {
        return mix(mix(key[salt] ^ static_cast<std::uint64_t>(a)) ^ static_cast<std::uint64_t>(b));
    }

    double lattice(std::int64_t i, std::int64_t j, std::uint32_t salt) const {
        return unit(hash(i, j, salt)) * 2 - 1;
    }

    // Smooth value noise in [-1, 1]: bilinear, with smoothstep weights, between the lattice
    // values a (ix, iy), b (ix+1, iy), c (ix, iy+1), d (ix+1, iy+1).
    static double smooth(double f) { return f * f * (3 - 2 * f); }
    // sx, sy: smooth() of the position in the cell; omy: 1 - sy.
    static double blend(double a, double b, double c, double d, double sx, double sy, double omy) {
        return (a + (b - a) * sx) * omy + (c + (d - c) * sx) * sy;
    }
    static double blend(double a, double b, double c, double d, double fx, double fy) {
        const double sy = smooth(fy);
        return blend(a, b, c, d, smooth(fx), sy, 1 - sy);
    }

    double value_noise(double x, double y, double cell, std::uint32_t salt) const {
        const double gx = x / cell, gy = y / cell;
        const double fx0 = ffloor(gx), fy0 = ffloor(gy);
        const auto ix = static_cast<std::int64_t>(fx0), iy = static_cast<std::int64_t>(fy0);
        return blend(lattice(ix, iy, salt), lattice(ix + 1, iy, salt), lattice(ix, iy + 1, salt),
                     lattice(ix + 1, iy + 1, salt), gx - fx0, gy - fy0);
    }
};

// A nucleus candidate of the jittered grid: a pure function of its cell (i, j).
struct Nucleus {
    double ncx = 0, ncy = 0;  // centre
    double reach2 = -1;       // squared reach; -1: no nucleus in this cell (density test)
    double rad = 0, elong = 0, re = 0, edge = 0, ca = 0, sa = 0, dark = 0;
};

Nucleus make_nucleus(const Generator& g, std::int64_t i, std::int64_t j) {
    Nucleus n;
    const double C = g.nucleus_cell;
    const std::uint64_t h = g.hash(i, j, 21);
    // Cellularity varies over a few hundred µm, like stroma vs dense tumour.
    const double density = 0.55 + 0.45 * g.value_noise((i + 0.5) * C, (j + 0.5) * C, 600 * g.scale, 6);
    if (unit(h) >= density) return n;
    const std::uint64_t h2 = mix(h);
    const std::uint64_t h3 = mix(h2);
    n.ncx = (i + 0.15 + 0.7 * unit(h2)) * C;
    n.ncy = (j + 0.15 + 0.7 * unit(h3)) * C;
    const std::uint64_t h4 = mix(h3);
    n.rad = (4 + 4 * unit(h4)) * g.scale;
    const std::uint64_t h5 = mix(h4);
    n.elong = 1 + 0.35 * unit(h5);
    n.re = n.rad * n.elong;
    const double reach = n.re + 1;
    n.reach2 = reach * reach;
    n.edge = 1 + 1.0 / n.rad;
    const double ang = unit(mix(h5)) * kPi;
    n.ca = std::cos(ang);
    n.sa = std::sin(ang);
    n.dark = 0.8 + 0.4 * unit(mix(h5 ^ 0x5bd1e995));
    return n;
}

// Memo of the pure functions of lattice and cell indices that the pixels of a rectangle
// [x0, x1] x [y0, y1] use, so a pixel only interpolates and tests distances, and the tissue
// test decided once per block where it cannot differ between the block's pixels. None of it
// can change a pixel: every memo entry is computed by the same code from integers whatever
// the rectangle, and a block is decided only with a margin far above rounding error. So
// synthetic_pixel() (a 1x1 region) and the tiles agree to the bit.
class Region {
public:
    static constexpr int kBlock = 32;  // tissue-test blocks, pixels

    // A lattice of one value-noise octave over the region, filled on first use.
    struct Lattice {
        const Generator* g = nullptr;
        double cell = 1;
        std::uint32_t salt = 0;
        std::int64_t ix0 = 0, iy0 = 0, nx = 0, ny = 0;
        std::vector<double> v;  // 2: not computed yet

        void init(const Generator& gen, double c, std::uint32_t s, std::int64_t x0, std::int64_t y0,
                  std::int64_t x1, std::int64_t y1) {
            g = &gen;
            cell = c;
            salt = s;
            // x / cell is monotonic in x, so every pixel's floor(x / cell) is in this range.
            ix0 = static_cast<std::int64_t>(ffloor(static_cast<double>(x0) / c));
            iy0 = static_cast<std::int64_t>(ffloor(static_cast<double>(y0) / c));
            nx = static_cast<std::int64_t>(ffloor(static_cast<double>(x1) / c)) + 2 - ix0;
            ny = static_cast<std::int64_t>(ffloor(static_cast<double>(y1) / c)) + 2 - iy0;
            v.assign(static_cast<std::size_t>(nx * ny), 2.0);
        }

        double at(std::int64_t i, std::int64_t j) {
            const std::int64_t a = i - ix0, b = j - iy0;
            if (a < 0 || b < 0 || a >= nx || b >= ny) return g->lattice(i, j, salt);
            double& w = v[static_cast<std::size_t>(b * nx + a)];
            if (w > 1.5) w = g->lattice(i, j, salt);
            return w;
        }

        // Generator::value_noise(x, y, cell, salt), from the memo.
        double noise(double x, double y) {
            const double gx = x / cell, gy = y / cell;
            const double fx0 = ffloor(gx), fy0 = ffloor(gy);
            const auto ix = static_cast<std::int64_t>(fx0), iy = static_cast<std::int64_t>(fy0);
            return Generator::blend(at(ix, iy), at(ix + 1, iy), at(ix, iy + 1), at(ix + 1, iy + 1), gx - fx0,
                                    gy - fy0);
        }

        // Range of noise() over x in [xa, xb], y in [ya, yb]. Within one lattice cell the
        // noise is bilinear in (smooth(fx), smooth(fy)), and smooth() is monotonic, so its
        // extremes are at the corners of the part of the rectangle in that cell: the corners
        // of the rectangle and the points where cell borders cross its edges cover them all.
        void range(double xa, double xb, double ya, double yb, double& lo, double& hi) {
            double xs[64], ys[64];
            const int nxs = cuts(xa, xb, xs), nys = cuts(ya, yb, ys);
            lo = 2;
            hi = -2;
            for (int j = 0; j < nys; ++j)
                for (int i = 0; i < nxs; ++i) {
                    const double w = noise(xs[i], ys[j]);
                    lo = std::min(lo, w);
                    hi = std::max(hi, w);
                }
        }

        // a, the cell borders strictly inside (a, b), and b; at most 64 (else everything
        // between is unknown: the caller gets -1 and treats the range as [-1, 1]).
        int cuts(double a, double b, double* out) const {
            int n = 0;
            out[n++] = a;
            for (double k = ffloor(a / cell) + 1; k * cell < b; k += 1) {
                if (n == 63) return -1;
                out[n++] = k * cell;
            }
            if (b > a) out[n++] = b;
            return n;
        }
    };

    // One image row of a lattice: the y part of the blend is the same for every pixel of the
    // row, and the four lattice values for as long as the pixels stay in one cell.
    struct RowNoise {
        Lattice* lat;
        std::int64_t iy;
        double sy, omy;
        std::int64_t ix = std::numeric_limits<std::int64_t>::min();
        double a = 0, b = 0, c = 0, d = 0;

        RowNoise(Lattice& l, double y) : lat(&l) {
            const double gy = y / l.cell;
            const double fy0 = ffloor(gy);
            iy = static_cast<std::int64_t>(fy0);
            sy = Generator::smooth(gy - fy0);
            omy = 1 - sy;
        }

        double operator()(double x) {
            const double gx = x / lat->cell;
            const double fx0 = ffloor(gx);
            const auto i = static_cast<std::int64_t>(fx0);
            if (i != ix) {
                ix = i;
                a = lat->at(i, iy);
                b = lat->at(i + 1, iy);
                c = lat->at(i, iy + 1);
                d = lat->at(i + 1, iy + 1);
            }
            return Generator::blend(a, b, c, d, Generator::smooth(gx - fx0), sy, omy);
        }
    };

    Region(const Generator& g, std::int64_t x0, std::int64_t y0, std::int64_t x1, std::int64_t y1)
        : g_(g), x0_(x0), y0_(y0) {
        for (int k = 0; k < 3; ++k) outline[k].init(g, g.outline_cell[k], 1 + k, x0, y0, x1, y1);
        for (int k = 0; k < 2; ++k) stroma[k].init(g, g.stroma_cell[k], 4 + k, x0, y0, x1, y1);
        const double C = g.nucleus_cell;
        ci0_ = static_cast<std::int64_t>(ffloor(static_cast<double>(x0) / C)) - 1;
        cj0_ = static_cast<std::int64_t>(ffloor(static_cast<double>(y0) / C)) - 1;
        cw_ = static_cast<std::int64_t>(ffloor(static_cast<double>(x1) / C)) + 2 - ci0_;
        ch_ = static_cast<std::int64_t>(ffloor(static_cast<double>(y1) / C)) + 2 - cj0_;
        cells_.resize(static_cast<std::size_t>(cw_ * ch_));
        have_.assign(cells_.size(), 0);
        bw_ = (x1 - x0) / kBlock + 1;
        const std::int64_t bh = (y1 - y0) / kBlock + 1;
        state_.resize(static_cast<std::size_t>(bw_ * bh));
        for (std::int64_t j = 0; j < bh; ++j)
            for (std::int64_t i = 0; i < bw_; ++i)
                state_[static_cast<std::size_t>(j * bw_ + i)] =
                    classify(x0 + i * kBlock, std::min(x1, x0 + i * kBlock + kBlock - 1), y0 + j * kBlock,
                             std::min(y1, y0 + j * kBlock + kBlock - 1));
    }

    // Tissue test of the blocks of row y: 1 all tissue, -1 all background, 0 test each pixel.
    const signed char* block_row(std::int64_t y) const {
        return state_.data() + (y - y0_) / kBlock * bw_;
    }
    std::int64_t block_of(std::int64_t x) const { return (x - x0_) / kBlock; }

    const Nucleus& nucleus(std::int64_t i, std::int64_t j) {
        const std::int64_t a = i - ci0_, b = j - cj0_;
        if (a < 0 || b < 0 || a >= cw_ || b >= ch_) {  // not expected; stay correct anyway
            spare_ = make_nucleus(g_, i, j);
            return spare_;
        }
        const auto k = static_cast<std::size_t>(b * cw_ + a);
        if (!have_[k]) {
            cells_[k] = make_nucleus(g_, i, j);
            have_[k] = 1;
        }
        return cells_[k];
    }

    Lattice outline[3], stroma[2];

private:
    // The noise is a convex blend of lattice values, so it stays within their range; the
    // radius, computed with monotonic operations, within that of the block's corners. The
    // margin dwarfs the rounding error of the noise (~1e-15).
    signed char classify(std::int64_t x0, std::int64_t x1, std::int64_t y0, std::int64_t y1) {
        if (g_.rho < 0) return -1;
        const auto norm = [](std::int64_t p, std::int64_t extent) {
            return (static_cast<double>(p) + 0.5) / static_cast<double>(extent) * 2 - 1;
        };
        const double ua = norm(x0, g_.spec.width), ub = norm(x1, g_.spec.width);
        const double va = norm(y0, g_.spec.height), vb = norm(y1, g_.spec.height);
        const double umin = ua <= 0 && ub >= 0 ? 0 : std::min(std::abs(ua), std::abs(ub));
        const double vmin = va <= 0 && vb >= 0 ? 0 : std::min(std::abs(va), std::abs(vb));
        const double umax = std::max(std::abs(ua), std::abs(ub));
        const double vmax = std::max(std::abs(va), std::abs(vb));
        const double dmin = std::sqrt(umin * umin + vmin * vmin), dmax = std::sqrt(umax * umax + vmax * vmax);
        constexpr double margin = 1e-9;
        // Whatever the noise: the radius alone decides.
        if (dmin - 0.3 >= g_.rho + margin) return -1;
        if (dmax + 0.3 < g_.rho - margin) return 1;
        double nlo = 0, nhi = 0;
        const double w[3] = {0.3, 0.45, 0.25};
        for (int k = 0; k < 3; ++k) {
            double lo = -1, hi = 1;
            outline[k].range(static_cast<double>(x0), static_cast<double>(x1), static_cast<double>(y0),
                             static_cast<double>(y1), lo, hi);
            if (lo > hi) lo = -1, hi = 1;  // too many cells to look at: assume anything
            nlo += w[k] * lo;
            nhi += w[k] * hi;
        }
        if (dmin + 0.3 * nlo >= g_.rho + margin) return -1;
        if (dmax + 0.3 * nhi < g_.rho - margin) return 1;
        return 0;
    }

    const Generator& g_;
    std::int64_t x0_, y0_;
    std::int64_t bw_ = 0;
    std::vector<signed char> state_;
    std::int64_t ci0_ = 0, cj0_ = 0, cw_ = 0, ch_ = 0;
    std::vector<Nucleus> cells_;
    std::vector<unsigned char> have_;
    Nucleus spare_;
};

// Pixels (x0 .. x0+n-1, y) of a region that contains them. One out-of-line copy, so that the
// tiles and synthetic_pixel() run the same floating point code.
__attribute__((noinline)) void render_run(const Generator& gen, Region& reg, std::int64_t x0, std::int64_t y,
                                          int n, std::uint8_t* out) {
    const double fy = static_cast<double>(y);
    const double C = gen.nucleus_cell;
    const auto cy = static_cast<std::int64_t>(ffloor(fy / C));
    const double sy = fy + 0.5;
    const double v = (fy + 0.5) / static_cast<double>(gen.spec.height) * 2 - 1;
    const signed char* blocks = reg.block_row(y);
    Region::RowNoise o0(reg.outline[0], fy), o1(reg.outline[1], fy), o2(reg.outline[2], fy);
    Region::RowNoise s0(reg.stroma[0], fy), s1(reg.stroma[1], fy);

    // The nuclei that can cover pixels of the current nucleus-cell column cx: those of the
    // 3x3 cells around (cx, cy), in the same order, less those too far above or below this
    // row (dx * dx + dy * dy >= reach2 holds whatever dx when dy * dy >= reach2).
    struct Candidate {
        Nucleus nu;
        double dy;
    };
    Candidate cand[9];
    int ncand = 0;
    std::int64_t cand_cx = std::numeric_limits<std::int64_t>::min();

    for (int k = 0; k < n; ++k, out += 3) {
        const std::int64_t x = x0 + k;
        const double fx = static_cast<double>(x);
        const std::uint64_t grain = gen.hash(x, y, 11);
        const signed char state = blocks[reg.block_of(x)];
        bool tissue = state > 0;
        if (state == 0) {
            const double u = (fx + 0.5) / static_cast<double>(gen.spec.width) * 2 - 1;
            const double nz = 0.3 * o0(fx) + 0.45 * o1(fx) + 0.25 * o2(fx);
            tissue = std::sqrt(u * u + v * v) + 0.3 * nz < gen.rho;
        }
        if (!tissue) {
            const double g = 245 + (static_cast<double>(grain & 7) - 3.5) * 0.8;
            out[0] = out[1] = out[2] = to_byte(g);
            continue;
        }
        // Eosin stroma: fibre-like texture from two octaves plus per-pixel grain.
        const double t = 0.5 + 0.35 * s0(fx) + 0.15 * s1(fx);
        const double jitter = static_cast<double>((grain >> 8) & 15) - 7.5;
        double r = 242 - 28 * t + jitter * 0.5;
        double g = 178 - 60 * t + jitter;
        double b = 212 - 45 * t + jitter * 0.8;

        // Haematoxylin nuclei on a jittered grid; a nucleus reaches at most into the
        // neighbouring cells, so the 3x3 cells around the pixel are all that can cover it.
        const auto cx = static_cast<std::int64_t>(ffloor(fx / C));
        if (cx != cand_cx) {
            cand_cx = cx;
            ncand = 0;
            for (std::int64_t j = cy - 1; j <= cy + 1; ++j)
                for (std::int64_t i = cx - 1; i <= cx + 1; ++i) {
                    const Nucleus& nu = reg.nucleus(i, j);
                    const double dy = sy - nu.ncy;
                    if (dy * dy >= nu.reach2) continue;
                    cand[ncand++] = Candidate{nu, dy};
                }
        }
        const double sx = fx + 0.5;
        double best = 0, dark = 1;
        for (int c = 0; c < ncand; ++c) {
            const Nucleus& nu = cand[c].nu;
            const double dx = sx - nu.ncx, dy = cand[c].dy;
            // Cheap bound first: most neighbouring nuclei are too far to matter.
            if (dx * dx + dy * dy >= nu.reach2) continue;
            const double p = (dx * nu.ca + dy * nu.sa) / nu.re;
            const double q = (-dx * nu.sa + dy * nu.ca) * nu.elong / nu.rad;
            const double dist = std::sqrt(p * p + q * q);
            if (dist >= nu.edge) continue;
            const double alpha = std::clamp((1 - dist) * nu.rad + 0.5, 0.0, 1.0);
            if (alpha > best) {
                best = alpha;
                dark = nu.dark;
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
        out[0] = to_byte(r);
        out[1] = to_byte(g);
        out[2] = to_byte(b);
    }
}

}  // namespace

struct SyntheticPixels::Gen : Generator {
    using Generator::Generator;
};

SyntheticPixels::SyntheticPixels(const SyntheticSlideSpec& spec) : gen_(std::make_unique<Gen>(spec)) {}

SyntheticPixels::~SyntheticPixels() = default;

void SyntheticPixels::render(std::int64_t x0, std::int64_t y0, int w, int h, std::uint8_t* rgb) const {
    Region reg(*gen_, x0, y0, x0 + w - 1, y0 + h - 1);
    for (int py = 0; py < h; ++py)
        render_run(*gen_, reg, x0, y0 + py, w, rgb + static_cast<std::size_t>(py) * w * 3);
}

void synthetic_pixel(const SyntheticSlideSpec& spec, std::int64_t x, std::int64_t y, std::uint8_t rgb[3]) {
    SyntheticPixels(spec).render(x, y, 1, 1, rgb);
}

}  // namespace flowinfer
