// Tissue detection: a binary tissue mask of a slide at low resolution (HSV saturation, Otsu's
// threshold, removal of small objects and small holes), as WSInfer and TIAToolbox do.
//
// Thread safety: all functions are reentrant. compute_tissue_mask() reads the slide from
// several TBB threads at once (a Slide is thread-safe for reads), so one Slide may be
// shared with other readers. A TissueMask is a plain value: const access from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer {

class Slide;

// A binary tissue mask of a slide at low resolution.
struct TissueMask {
    std::int64_t width = 0, height = 0;  // mask pixels
    double downsample = 1.0;             // level-0 pixels per mask pixel
    std::vector<std::uint8_t> mask;      // 1 = tissue, row-major, width*height
    double threshold = 0.0;              // saturation threshold used (Otsu's, or the override)
    // The low-resolution RGB view the mask was computed from (width*height*3, row-major), kept
    // for write_mask_preview(). Optional: empty when cleared, and then the preview is the plain
    // black/white mask.
    std::vector<std::uint8_t> rgb;

    // Tissue share of the mask (0 for an empty mask).
    double fraction() const;
    // Tissue share of the level-0 rectangle [x0, x0+w) x [y0, y0+h). Mask pixels partially
    // covered count by OVERLAP AREA (mask pixel i covers level-0 [i*ds, (i+1)*ds)). Parts of the
    // rectangle outside the mask count as non-tissue: the denominator is always w*h. 0 for an
    // empty rectangle (w <= 0 or h <= 0) or one entirely outside the mask.
    double fraction_in(double x0, double y0, double w, double h) const;
};

// Defaults, documented here so callers and tests can refer to them.
inline constexpr double kTissueMinOtsuSaturation = 0.05;  // Otsu's threshold is raised to this
inline constexpr double kTissueMaxBackgroundSaturation = 0.10; // see compute_tissue_mask()
inline constexpr double kTissueNoMppMinFraction = 0.0005; // "small" without MPP: share of mask
inline constexpr double kTissueMaxObjectFraction = 0.01;  // cap on the MPP-based limit
inline constexpr std::int64_t kTissueTargetLongSide = 1024; // preferred level: long side >= this
inline constexpr std::int64_t kTissueMaxLongSide = 2048;    // mask long side is at most this

// HSV saturation (max - min) / max of one RGB pixel; 0 when max == 0 (black).
double hsv_saturation(std::uint8_t r, std::uint8_t g, std::uint8_t b);

// Otsu's threshold over a histogram of values in [0, 1) (bin i covers [i/n, (i+1)/n)): the
// split maximising the between-class variance, returned as the upper edge (k+1)/n of the last
// background bin k, so "value > threshold" is the foreground up to values exactly on a bin edge.
// Returns a negative value for a degenerate histogram (fewer than two non-empty bins), where no
// split exists.
double otsu_threshold(const std::vector<std::uint64_t>& histogram);

// Removes 8-connected foreground components (mask value != 0) of fewer than
// `min_object_pixels` pixels, then fills 8-connected background components of fewer than
// `min_hole_pixels` pixels that do not touch the mask border (holes; a background region that
// touches the border is never a hole). Returns a 0/1 mask of the same size. A limit <= 0 turns
// that step off. Throws std::invalid_argument when mask.size() != width*height.
std::vector<std::uint8_t> remove_small_components(const std::vector<std::uint8_t>& mask,
                                                  std::int64_t width, std::int64_t height,
                                                  double min_object_pixels,
                                                  double min_hole_pixels);

// Computes the tissue mask of a slide.
//
// Low-resolution view: the coarsest level whose longer side is >= kTissueTargetLongSide (level 0
// when none is), read in bounded chunks (at most about 512x512 level pixels each, a few in
// parallel) and box-averaged by the integer factor f = ceil(long side / kTissueMaxLongSide) (1
// when the level is already small enough); the full level is never held in memory. Mask pixel
// (i, j) averages level pixels [i*f, (i+1)*f) x [j*f, (j+1)*f) clipped to the level;
// downsample = level downsample * f.
//
// Tissue: S = hsv_saturation() of the averaged RGB (transparent pixels are composited onto
// white by Slide::read_rgb, so they have S = 0). A pixel is tissue when S > threshold, where the
// threshold is `saturation_threshold` when it is >= 0, else Otsu's threshold of a 256-bin
// histogram of S raised to at least kTissueMinOtsuSaturation (a blank slide, whose histogram is
// flat, degenerate or pure noise, then gives an empty mask; a uniformly stained one gives a
// full mask). Otsu assumes a background mode: when the pixels at or below Otsu's threshold have
// a mean S above kTissueMaxBackgroundSaturation, the slide has no background to speak of (a crop
// that is all tissue, where Otsu would split pale stroma from nuclei) and the threshold is
// kTissueMinOtsuSaturation instead. `threshold` records the value used.
//
// Clean-up: remove_small_components() with the same limit for objects and holes:
// min_object_um2 / (mpp * downsample)^2 mask pixels when the slide has an MPP (Slide::mpp() > 0),
// capped at kTissueMaxObjectFraction of the mask area (so a slide smaller than the limit, such
// as a 16x16 cut, keeps its tissue), else kTissueNoMppMinFraction of the mask area. min_object_um2 <= 0 turns the clean-up off.
// The default 5000 µm² is a square of about 70 µm side (a few dozen cells).
//
// Throws SlideError when a read fails (from Slide::read_rgb).
TissueMask compute_tissue_mask(const Slide& slide, double saturation_threshold = -1.0,
                               double min_object_um2 = 5000.0);

// Writes a PNG preview (libpng): when
// mask.rgb holds the thumbnail, an RGB image with tissue tinted green (out = 0.6 * rgb +
// 0.4 * (0, 255, 0)) and the rest unchanged; otherwise an 8-bit greyscale image, tissue 255 and
// background 0. Written to path + ".partial" and renamed; throws OutputError (with `path`) on
// failure, leaving no partial file behind.
void write_mask_preview(const std::string& path, const TissueMask& mask);

}  // namespace flowinfer
