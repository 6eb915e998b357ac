// Tissue detection: HSV saturation + Otsu's threshold + small object/hole clean-up on a
// low-resolution view of the slide read in bounded chunks. See tissue.hpp for the contract.
#include "stages/tissue.hpp"

#include "stages/image/encode.hpp"

#include "stages/atomic_file.hpp"
#include "stages/overview.hpp"
#include "stages/slide.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace flowinfer {

namespace {

constexpr int kHistogramBins = 256;

}  // namespace

double TissueMask::fraction() const {
    if (mask.empty()) return 0.0;
    std::uint64_t n = 0;
    for (std::uint8_t v : mask) n += v != 0;
    return static_cast<double>(n) / static_cast<double>(mask.size());
}

double TissueMask::fraction_in(double x0, double y0, double w, double h) const {
    if (!(w > 0) || !(h > 0) || width <= 0 || height <= 0 || !(downsample > 0) ||
        mask.size() != static_cast<std::size_t>(width * height))
        return 0.0;
    // The rectangle in mask coordinates, clipped to the mask.
    const double mx0 = std::max(0.0, x0 / downsample);
    const double my0 = std::max(0.0, y0 / downsample);
    const double mx1 = std::min(static_cast<double>(width), (x0 + w) / downsample);
    const double my1 = std::min(static_cast<double>(height), (y0 + h) / downsample);
    if (!(mx1 > mx0) || !(my1 > my0)) return 0.0;
    const auto i0 = static_cast<std::int64_t>(std::floor(mx0));
    const auto i1 = std::min(width, static_cast<std::int64_t>(std::ceil(mx1)));
    const auto j0 = static_cast<std::int64_t>(std::floor(my0));
    const auto j1 = std::min(height, static_cast<std::int64_t>(std::ceil(my1)));
    double tissue = 0.0;
    for (std::int64_t j = j0; j < j1; ++j) {
        const double oy = std::min<double>(j + 1, my1) - std::max<double>(j, my0);
        if (oy <= 0) continue;
        double row = 0.0;
        const std::uint8_t* m = mask.data() + j * width;
        for (std::int64_t i = i0; i < i1; ++i) {
            if (!m[i]) continue;
            row += std::min<double>(i + 1, mx1) - std::max<double>(i, mx0);
        }
        tissue += row * oy;
    }
    const double area = (w / downsample) * (h / downsample);
    return std::clamp(tissue / area, 0.0, 1.0);
}

double hsv_saturation(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
    const int mx = std::max({r, g, b});
    const int mn = std::min({r, g, b});
    if (mx == 0) return 0.0;
    return static_cast<double>(mx - mn) / static_cast<double>(mx);
}

double otsu_threshold(const std::vector<std::uint64_t>& hist) {
    const std::size_t n = hist.size();
    int nonempty = 0;
    double total = 0, sum_all = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (hist[i]) ++nonempty;
        total += static_cast<double>(hist[i]);
        sum_all += static_cast<double>(hist[i]) * (static_cast<double>(i) + 0.5);
    }
    if (nonempty < 2) return -1.0;
    // Between-class variance for the split {0..k} | {k+1..n-1}, values at bin centres.
    std::vector<double> var(n, -1.0);
    double w0 = 0, sum0 = 0, best = -1.0;
    for (std::size_t k = 0; k + 1 < n; ++k) {
        w0 += static_cast<double>(hist[k]);
        sum0 += static_cast<double>(hist[k]) * (static_cast<double>(k) + 0.5);
        const double w1 = total - w0;
        if (w0 <= 0 || w1 <= 0) continue;
        const double mu0 = sum0 / w0, mu1 = (sum_all - sum0) / w1;
        var[k] = w0 * w1 * (mu0 - mu1) * (mu0 - mu1);
        best = std::max(best, var[k]);
    }
    // Empty bins between the modes give a plateau of equal variances: take its middle rather
    // than its lower end, so the threshold sits in the middle of the gap.
    const double tol = best * 1e-12;
    std::size_t first = 0;
    while (var[first] < best - tol) ++first;
    std::size_t last = first;
    while (last + 2 < n && var[last + 1] >= best - tol) ++last;
    const std::size_t k = (first + last) / 2;
    return static_cast<double>(k + 1) / static_cast<double>(n);
}

std::vector<std::uint8_t> remove_small_components(const std::vector<std::uint8_t>& in,
                                                  std::int64_t width, std::int64_t height,
                                                  double min_object_pixels,
                                                  double min_hole_pixels) {
    if (width < 0 || height < 0 || in.size() != static_cast<std::size_t>(width * height))
        throw std::invalid_argument("remove_small_components: mask size is not width*height");
    std::vector<std::uint8_t> out(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) out[i] = in[i] != 0;
    if (in.empty()) return out;

    std::vector<std::uint8_t> seen(in.size(), 0);
    std::vector<std::int64_t> stack, comp;
    // One pass over the components whose value is `value`; components with fewer than `limit`
    // pixels (and, when `holes_only`, not touching the border) are flipped.
    const auto pass = [&](std::uint8_t value, double limit, bool holes_only) {
        if (!(limit > 0)) return;
        std::fill(seen.begin(), seen.end(), 0);
        for (std::int64_t start = 0; start < width * height; ++start) {
            if (seen[start] || out[start] != value) continue;
            comp.clear();
            stack.clear();
            stack.push_back(start);
            seen[start] = 1;
            bool border = false;
            while (!stack.empty()) {
                const std::int64_t p = stack.back();
                stack.pop_back();
                comp.push_back(p);
                const std::int64_t x = p % width, y = p / width;
                if (x == 0 || y == 0 || x == width - 1 || y == height - 1) border = true;
                for (std::int64_t dy = -1; dy <= 1; ++dy) {
                    const std::int64_t yy = y + dy;
                    if (yy < 0 || yy >= height) continue;
                    for (std::int64_t dx = -1; dx <= 1; ++dx) {
                        const std::int64_t xx = x + dx;
                        if (xx < 0 || xx >= width) continue;
                        const std::int64_t q = yy * width + xx;
                        if (seen[q] || out[q] != value) continue;
                        seen[q] = 1;
                        stack.push_back(q);
                    }
                }
            }
            if (holes_only && border) continue;
            if (static_cast<double>(comp.size()) < limit)
                for (std::int64_t p : comp) out[p] = static_cast<std::uint8_t>(1 - value);
        }
    };
    pass(1, min_object_pixels, false);
    pass(0, min_hole_pixels, true);
    return out;
}

TissueMask compute_tissue_mask(const Slide& slide, double saturation_threshold,
                               double min_object_um2) {
    Overview view = read_overview(slide, kTissueTargetLongSide, kTissueMaxLongSide);
    TissueMask m;
    m.width = view.width;
    m.height = view.height;
    m.downsample = view.downsample;
    m.rgb = std::move(view.rgb);
    const std::int64_t W = m.width, H = m.height;

    std::vector<float> sat(static_cast<std::size_t>(W * H));
    std::vector<std::uint64_t> hist(kHistogramBins, 0);
    for (std::size_t i = 0; i < sat.size(); ++i) {
        const std::uint8_t* p = m.rgb.data() + 3 * i;
        const double s = hsv_saturation(p[0], p[1], p[2]);
        sat[i] = static_cast<float>(s);
        hist[std::min<std::size_t>(kHistogramBins - 1, static_cast<std::size_t>(s * kHistogramBins))]++;
    }
    if (saturation_threshold >= 0) {
        m.threshold = saturation_threshold;
    } else {
        // A blank slide has a degenerate or pure-noise histogram whose Otsu split lies inside
        // the background's noise: the floor keeps such a slide empty. A slide that is all tissue
        // has no background mode, and Otsu then splits the tissue itself (pale stroma vs
        // nuclei): when the lower class does not look like background, use the floor instead.
        const double otsu = otsu_threshold(hist);
        double below = 0, n_below = 0;
        for (float s : sat)
            if (static_cast<double>(s) <= otsu) below += s, n_below += 1;
        const bool background_mode = n_below > 0 && below / n_below <= kTissueMaxBackgroundSaturation;
        m.threshold = background_mode ? std::max(otsu, kTissueMinOtsuSaturation)
                                      : kTissueMinOtsuSaturation;
    }
    m.mask.resize(sat.size());
    for (std::size_t i = 0; i < sat.size(); ++i)
        m.mask[i] = static_cast<double>(sat[i]) > m.threshold ? 1 : 0;

    double min_pixels = 0;
    if (min_object_um2 > 0) {
        const double mpp = slide.mpp();
        if (mpp > 0) {
            const double px_um = mpp * m.downsample;
            // Capped for tiny slides, which would otherwise lose everything.
            min_pixels = std::min(min_object_um2 / (px_um * px_um),
                                  kTissueMaxObjectFraction * static_cast<double>(W * H));
        } else {
            min_pixels = kTissueNoMppMinFraction * static_cast<double>(W * H);
        }
    }
    if (min_pixels > 0) m.mask = remove_small_components(m.mask, W, H, min_pixels, min_pixels);
    return m;
}

void write_mask_preview(const std::string& path, const TissueMask& mask) {
    const std::int64_t W = mask.width, H = mask.height;
    if (W <= 0 || H <= 0 || W > 0x7fffffff || H > 0x7fffffff ||
        mask.mask.size() != static_cast<std::size_t>(W * H))
        throw OutputError(path, fmt::format("cannot write a preview of a {}x{} mask with {} values",
                                            W, H, mask.mask.size()));
    const bool colour = mask.rgb.size() == static_cast<std::size_t>(W * H * 3);
    const int channels = colour ? 3 : 1;

    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(W * H) * channels);
    for (std::size_t i = 0; i < mask.mask.size(); ++i) {
        const bool tissue = mask.mask[i] != 0;
        if (!colour) {
            pixels[i] = tissue ? 255 : 0;
            continue;
        }
        const std::uint8_t* p = mask.rgb.data() + 3 * i;
        std::uint8_t* o = pixels.data() + 3 * i;
        if (tissue) {
            o[0] = static_cast<std::uint8_t>(std::lround(0.6 * p[0]));
            o[1] = static_cast<std::uint8_t>(std::lround(0.6 * p[1] + 0.4 * 255));
            o[2] = static_cast<std::uint8_t>(std::lround(0.6 * p[2]));
        } else {
            std::memcpy(o, p, 3);
        }
    }

    std::string png;
    try {
        png = image::encode_png(pixels.data(), W, H, channels);
    } catch (const std::runtime_error& e) {
        throw OutputError(path, std::string("cannot encode the preview: ") + e.what());
    }
    write_file_atomically(path, png);
}

}  // namespace flowinfer
