// layout: level choice and patch layout for one slide (used by the plan stage).
//
// Thread safety: a SlidePlan is immutable once built; share it freely.
//
// Coordinates: patches live on the slide's *working grid*: the read level, shrunk by
// `resize` (>= 1) when no pyramid level matches the requested resolution. A patch key's x, y
// are the patch's top-left on that grid.
//
// Edge policy: shift inward. Along each axis, patches step by `stride` and the last one is
// moved back so it ends exactly at the edge (it overlaps its neighbour by more than
// `overlap`; blending absorbs that). Every patch therefore reads real pixels. Only an axis
// shorter than one patch is padded, with white (what OpenSlide returns outside the slide).
//
// Order: sections are bands of `sections` patch rows, top to bottom; each band is walked in
// subsections of `subsections` patch columns, left to right, and each subsection in raster
// order. Neighbouring patches share OpenSlide tiles while they are still in its cache, and
// the output rows of a band are finished before the next band ends.
#pragma once

#include <cstdint>
#include <vector>

namespace flowinfer {

struct Config;
class Slide;

struct PatchKey {
    std::uint32_t slide = 0;  // SlideJob::index
    std::int32_t level = 0;   // pyramid level read
    std::int64_t x = 0;       // top-left on the working grid
    std::int64_t y = 0;
    std::uint64_t seq = 0;    // position in the slide's walk order
};

struct SlidePlan {
    std::uint32_t slide = 0;
    int level = 0;
    double level_downsample = 1.0;  // level -> level 0
    double resize = 1.0;            // working grid pixel = `resize` level pixels
    double mpp = 0.0;               // µm per working-grid pixel; 0 if the slide has none
    std::int64_t level_width = 0, level_height = 0;
    std::int64_t grid_width = 0, grid_height = 0;
    int patch_size = 0, overlap = 0;
    int sections = 1, subsections = 1;
    std::vector<std::int64_t> xs, ys;  // patch positions along each axis

    std::uint64_t count() const { return std::uint64_t(xs.size()) * ys.size(); }
    PatchKey key(std::uint64_t seq) const;  // seq in [0, count())
    // One working-grid pixel in level-0 pixels.
    double downsample() const { return level_downsample * resize; }
};

// Positions of patches of `patch` pixels every `stride` along an axis of `extent` pixels,
// shifted inward at the end (see above).
std::vector<std::int64_t> axis_positions(std::int64_t extent, int patch, int stride);

// Chooses the level for cfg.mpp / cfg.level and lays out the patches. Throws SlideError.
SlidePlan plan_slide(const Slide& slide, std::uint32_t index, const Config& cfg);

}  // namespace flowinfer
