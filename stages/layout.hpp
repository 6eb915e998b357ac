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
//
// Read groups: models whose tiling (patch size, overlap, resolution) is equal share one read
// of each patch; within a read group, models whose normalization (mean, std) and batch size
// are equal share one batch buffer (a batch group). Each slide has one plan per read group.
//
// Tissue: with tiling.tissue, patches whose footprint holds less than tissue_threshold tissue
// are left out of the walk (`kept`). A plan that keeps no patch still walks one placeholder
// patch, which flows through the graph without pixels so the slide's (empty) outputs are
// written by the same path as any other.
#pragma once

#include <flowinfer/config.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace flowinfer {

class Slide;
class Region;
struct TissueMask;

struct PatchKey {
    std::uint32_t slide = 0;  // SlideJob::index
    std::uint16_t group = 0;  // read group
    bool placeholder = false; // stands in for a slide without kept patches: no pixels
    std::int32_t level = 0;   // pyramid level read
    std::int64_t x = 0;       // top-left on the working grid
    std::int64_t y = 0;
    std::uint64_t seq = 0;    // position in the plan's walk order
};

struct BatchGroup {
    int read_group = 0;
    int batch_size = 1;
    // The models run on a GPU: batch buffers are pinned. (Mean and std do not split groups:
    // batches carry uint8 RGB and each model normalizes its own input.)
    bool gpu = false;
    std::vector<int> models;  // indices into Config::models
};

struct ReadGroup {
    Tiling tiling;
    std::vector<int> batch_groups;  // indices into Topology::batch_groups
};

struct Topology {
    std::vector<ReadGroup> read_groups;
    std::vector<BatchGroup> batch_groups;
    std::vector<int> model_batch_group;  // per model
};

Topology make_topology(const Config& cfg);

struct SlidePlan {
    std::uint32_t slide = 0;
    std::uint16_t group = 0;
    int level = 0;
    double level_downsample = 1.0;  // level -> level 0
    double resize = 1.0;            // working grid pixel = `resize` level pixels
    double mpp = 0.0;               // µm per working-grid pixel; 0 if the slide has none
    std::int64_t level_width = 0, level_height = 0;
    std::int64_t grid_width = 0, grid_height = 0;
    int patch_size = 0, overlap = 0;
    int sections = 1, subsections = 1;
    std::vector<std::int64_t> xs, ys;  // patch positions along each axis
    // With tissue detection: the walk positions (see grid_key) of the patches that run, in
    // walk order. Empty without tissue detection: every patch runs.
    std::vector<std::uint32_t> kept;
    std::vector<bool> run_grid;  // row-major over (ys, xs); empty: every patch runs
    bool tissue_filtered = false;

    std::uint64_t grid_count() const { return std::uint64_t(xs.size()) * ys.size(); }
    // Patches that flow through the graph (at least 1: see the placeholder above).
    std::uint64_t count() const {
        return tissue_filtered ? std::max<std::uint64_t>(1, kept.size()) : grid_count();
    }
    std::uint64_t skipped() const { return tissue_filtered ? grid_count() - kept.size() : 0; }
    PatchKey key(std::uint64_t seq) const;       // seq in [0, count())
    PatchKey grid_key(std::uint64_t pos) const;  // pos in [0, grid_count()): the full walk
    // Whether the patch at grid column `col`, row `row` runs.
    bool runs(std::size_t col, std::size_t row) const;
    // Level-0 y below which no patch from walk position `seq` on reaches: the top of its section.
    double section_top(std::uint64_t seq) const;
    // One working-grid pixel in level-0 pixels.
    double downsample() const { return level_downsample * resize; }
};

// Positions of patches of `patch` pixels every `stride` along an axis of `extent` pixels,
// shifted inward at the end (see above).
std::vector<std::int64_t> axis_positions(std::int64_t extent, int patch, int stride);

// Chooses the level for the tiling's mpp / level and lays out the patches; with a mask, keeps
// the patches holding at least `tissue_threshold` tissue, and with a region of interest those
// with at least `roi_threshold` of their footprint inside it (both, when both are given).
// Throws SlideError.
SlidePlan plan_slide(const Slide& slide, std::uint32_t index, const Tiling& tiling,
                     const Config& cfg, std::uint16_t group = 0, const TissueMask* mask = nullptr,
                     const Region* roi = nullptr);

}  // namespace flowinfer
