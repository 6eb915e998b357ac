#include "stages/tiff/halve.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace flowinfer::tiff {

namespace {

// Halves a whole tile T x T (CH channels) into the quadrant at (ox, oy) of `out`: every output
// pixel averages four, with no edge tests, in loops the compiler vectorizes: the vertical
// pairs are summed first over whole rows, and the channel count is a template argument so
// no byte index needs a division.
template <int CH>
void halve_whole_ch(const std::uint8_t* data, int T, std::uint8_t* out, int ox, int oy) {
    const int row_bytes = T * CH;
    std::vector<std::uint16_t> sum(static_cast<std::size_t>(row_bytes));
    std::uint16_t* s = sum.data();
    for (int j = 0; j < T / 2; ++j) {
        std::uint8_t* dst = out + (static_cast<std::size_t>(oy + j) * T + ox) * CH;
        const std::uint8_t* r0 = data + static_cast<std::size_t>(2 * j) * row_bytes;
        const std::uint8_t* r1 = r0 + row_bytes;
        for (int k = 0; k < row_bytes; ++k) s[k] = static_cast<std::uint16_t>(r0[k] + r1[k]);
        for (int i = 0; i < T / 2; ++i)
            for (int c = 0; c < CH; ++c)
                dst[CH * i + c] = static_cast<std::uint8_t>((s[2 * CH * i + c] + s[2 * CH * i + c + CH] + 2) >> 2);
    }
}

}  // namespace

void halve_whole(const std::uint8_t* data, int T, int ch, std::uint8_t* out, int ox, int oy) {
    if (ch == 1) halve_whole_ch<1>(data, T, out, ox, oy);
    else halve_whole_ch<3>(data, T, out, ox, oy);
}

// The same for a tile cut by the image's right or bottom edge (vw x vh valid pixels), or a
// label map (palette), which keeps one pixel of four: averaging indices would invent classes.
void halve_edge(const std::uint8_t* data, int T, int ch, int vw, int vh, bool palette, std::uint8_t* out, int ox,
                int oy) {
    const int ow = (vw + 1) / 2, oh = (vh + 1) / 2;
    for (int j = 0; j < oh; ++j) {
        const int y0 = 2 * j, y1 = std::min(2 * j + 1, vh - 1);
        std::uint8_t* dst = out + (static_cast<std::size_t>(oy + j) * T + ox) * ch;
        const std::uint8_t* r0 = data + static_cast<std::size_t>(y0) * T * ch;
        const std::uint8_t* r1 = data + static_cast<std::size_t>(y1) * T * ch;
        for (int i = 0; i < ow; ++i) {
            const int x0 = 2 * i, x1 = std::min(2 * i + 1, vw - 1);
            if (palette) {
                dst[i] = r0[x0];
                continue;
            }
            // Only pixels inside the image count; at odd edges x1 == x0 or y1 == y0.
            const int n = (x1 != x0 ? 2 : 1) * (y1 != y0 ? 2 : 1);
            for (int c = 0; c < ch; ++c) {
                int s = r0[x0 * ch + c];
                if (x1 != x0) s += r0[x1 * ch + c];
                if (y1 != y0) {
                    s += r1[x0 * ch + c];
                    if (x1 != x0) s += r1[x1 * ch + c];
                }
                dst[i * ch + c] = static_cast<std::uint8_t>((s + n / 2) / n);
            }
        }
    }
}

}  // namespace flowinfer::tiff
