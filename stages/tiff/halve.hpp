// 2x2 reduction of a tile into its quadrant of the parent tile on the next pyramid level.
// Internal to the TIFF writer (writer.cpp).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>

namespace flowinfer::tiff {

// Halves a whole tile T x T (ch channels: 1 or 3) into the quadrant at (ox, oy) of `out`: every
// output pixel averages four.
void halve_whole(const std::uint8_t* data, int T, int ch, std::uint8_t* out, int ox, int oy);

// The same for a tile cut by the image's right or bottom edge (vw x vh valid pixels), or a
// label map (palette), which keeps one pixel of four: averaging indices would invent classes.
void halve_edge(const std::uint8_t* data, int T, int ch, int vw, int vh, bool palette, std::uint8_t* out, int ox,
                int oy);

}  // namespace flowinfer::tiff
