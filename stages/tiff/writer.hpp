// Pyramidal tiled TIFF writer (libtiff).
//
// Thread safety: one writer per file; its methods must not be called concurrently (the
// graph's write node is serial), except encode_tile(). Distinct writers are independent.
//
// Level 0 tiles arrive in any order and are written straight into the first directory.
// Each finished tile is also box-averaged 2x2 into its parent tile on the next level, so the
// lower levels are built while writing (as libvips' tiffsave does); finished lower-level
// tiles are kept in memory up to `spill_bytes` and past that in an unlinked temporary file,
// then copied into their own directories (SUBFILETYPE = reduced image) by finish(), which
// compresses them in batches on the current task arena's threads (in-memory libtiff codecs,
// one per thread, whose bytes are the ones libtiff would write: the file does not depend on
// the thread count). Callers making tiles on several threads can compress level-0 tiles the
// same way with encode_tile().
// OpenSlide 3.4.1 with libtiff 4.5 misreads levels narrower or shorter than one tile, so such
// levels are written with the largest smaller tile that is a multiple of 16; when level 0
// itself is that small, its tiles are kept (within spill_bytes) and cut in finish().
// The file is written as "<final>.partial" next to the final path, synced to disk and renamed
// only by a successful finish() (see atomic_file.hpp); a writer destroyed unfinished removes
// it, so the final name never holds a half-written file.
#pragma once

#include <flowinfer/config.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flowinfer {

struct TiffLayout {
    std::int64_t width = 0;   // level 0, pixels
    std::int64_t height = 0;
    int channels = 1;         // 1 (grey or palette) or 3 (RGB)
    int tile = 256;
    Compression compression = Compression::deflate;
    int deflate_level = 1;    // zlib level 1..9: 1 keeps compression off the critical path
    bool jpeg = false;        // RGB only: JPEG (quality below) instead of `compression`
    int jpeg_quality = 90;
    double mpp = 0.0;         // µm per level-0 pixel; 0: no resolution tags
    std::vector<std::uint8_t> palette_rgb;  // 256*3 entries: a palette (channels must be 1)
    std::int64_t spill_bytes = 256ll << 20;
    std::string description;  // ImageDescription of level 0
};

// A level-0 tile compressed by PyramidTiffWriter::encode_tile(), for write_tile().
struct EncodedTile {
    std::vector<std::uint8_t> bytes;  // the tile as stored in the file
    const void* owner = nullptr;      // the writer that made it (internal)
    const void* codec = nullptr;      // and its encoder; null: none
};

class PyramidTiffWriter {
public:
    PyramidTiffWriter(std::string final_path, TiffLayout layout);
    ~PyramidTiffWriter();
    PyramidTiffWriter(const PyramidTiffWriter&) = delete;
    PyramidTiffWriter& operator=(const PyramidTiffWriter&) = delete;

    std::int64_t tiles_x() const;
    std::int64_t tiles_y() const;
    int levels() const;  // halve while max(w, h) > tile

    // `data`: tile*tile*channels bytes, row-major, interleaved; pixels past the image edge
    // are ignored. Each (tx, ty) exactly once. Throws OutputError.
    void write_tile(std::int64_t tx, std::int64_t ty, const std::uint8_t* data);
    // The same in two steps, for tiles made on several threads: encode_tile() compresses a
    // tile (the costly part of write_tile) and may be called from any thread, concurrently
    // with itself and with the writer's other methods (not the destructor); write_tile() with
    // its result then stores it and reduces `data` (the same pixels) into the lower levels,
    // serially as above. The file is the one write_tile(tx, ty, data) would have made. An
    // EncodedTile that cannot be used (empty, another writer's, codec mismatch) makes
    // write_tile() compress the tile itself.
    EncodedTile encode_tile(const std::uint8_t* data) const;
    void write_tile(std::int64_t tx, std::int64_t ty, const std::uint8_t* data, EncodedTile&& encoded);
    bool complete() const;  // every level-0 tile written
    // Writes the lower levels and renames to the final path. Throws OutputError.
    void finish();
    const std::string& path() const;  // the final path

    // Peak bytes held in memory for lower levels (for tests of the spill threshold).
    std::int64_t peak_memory_bytes() const;
    bool spilled() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace flowinfer
