// read_region stage: reads one patch as RGB on the working grid, from the slide's reader
// (the native tile reader or OpenSlide, see slide.hpp).
//
// Thread safety: operator() is const and runs on `runtime.readers` threads at once; the
// slide is shared (both readers are thread-safe) and scratch buffers are per thread.
//
// A region that cannot be read (a corrupt tile) fails the slide, or with
// runtime.on_read_error = "skip" makes the patch unreadable: it flows on without pixels, is
// counted in the slide's patches_unreadable, and the sinks leave it out. Before a patch is
// called unreadable its region is read once more on a handle of its own, because a failed
// OpenSlide read also breaks the shared handle for the reads running beside it.
//
// When the plan resizes (no level at the requested mpp), the patch's footprint on the read
// level is read and shrunk with area averaging: each output pixel is the mean of the level
// pixels it covers, fractional coverage weighted, as an anti-aliased downscale must be. A
// shrink by exactly 2, 4 or 8 of a JPEG level read natively is done by the JPEG decoder
// instead (the DCT-domain scaled IDCT): no full decode, no averaging pass.
#pragma once

#include "stages/messages.hpp"
#include "stages/stage_stats.hpp"

#include <flowinfer/config.hpp>

namespace flowinfer {

class ReadRegion {
public:
    explicit ReadRegion(StageCounter& counter, ReadErrorPolicy on_error = ReadErrorPolicy::fail)
        : counter_(&counter), on_error_(on_error) {}
    Patch operator()(const PatchTask& task) const;

private:
    StageCounter* counter_;
    ReadErrorPolicy on_error_;
};

// Area-averaging resize of an RGB region: `src` is sw x sh pixels whose origin lies at
// (ox, oy) level pixels (fractional) before the first output pixel's footprint; output is
// n x n pixels, each covering `scale` x `scale` level pixels. Exposed for tests.
void area_resize(const std::uint8_t* src, std::int64_t sw, std::int64_t sh, double ox, double oy,
                 double scale, int n, std::uint8_t* dst);

}  // namespace flowinfer
