// Aperio-style SVS slides whose tiles are JPEG 2000 codestreams, for the tests and benchmarks
// of the native TIFF/SVS reader's JPEG 2000 path (OpenSlide 3.4.1 opens them as "aperio").
//
// Thread safety: reentrant; concurrent calls must write different paths. Tiles are encoded in
// parallel on the current oneTBB arena.
#pragma once

#include "stages/tiff/jp2k_decoder.hpp"

#include <flowinfer/demo.hpp>

#include <string>

namespace flowinfer {

// Writes an Aperio-style SVS whose tiles are JPEG 2000 codestreams (33003: YCbCr with 2x
// horizontal chroma subsampling; 33005: RGB), `tile` x `tile` (a multiple of 16). Directory 0
// is level 0, SyntheticPixels(spec)'s pixels; directory 1 a stripped RGB thumbnail; then the
// reduced levels, each the 4x4 area average of the one before, while the previous level is
// larger than a tile. ImageDescription "Aperio Image Library ...|MPP = <spec.mpp>" (no MPP
// when spec.mpp is 0). spec.jpeg_quality is not used: the codestreams are lossy (irreversible
// 9/7 wavelet, a fixed compression ratio).
// Memory: one row of level-0 tiles, plus level 1 (1/16 of level 0) and the levels below it.
// Throws OutputError; the file appears under `path` only once complete and synced.
void write_synthetic_jp2k_svs(const std::string& path, const SyntheticSlideSpec& spec,
                              tiff::Jp2kColour colour, int tile = 240);

}  // namespace flowinfer
