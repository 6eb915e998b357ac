// Patch features as an HDF5 file in the layout TRIDENT and CLAM write and their training code
// reads (h5py: f["features"][:], f["coords"][:], dict(f["coords"].attrs)):
//   features  [N, D] float32 or float16 (IEEE half, which h5py reads as numpy float16)
//   coords    [N, 2] int64, the level-0 top-left (x, y) of row i's patch
// both chunked along N and extended one chunk at a time, so memory holds one chunk whatever
// N is. Attributes (README, "Embeddings") go on `coords` as TRIDENT writes them, plus
// flowinfer's own; `features` carries the slide's name and the model's.
//
// Rows are written in the order append() receives them; chunks are written whole and in
// order, with no object timestamps, so the same rows make a byte-identical file.
//
// Written as "<path>.partial" and renamed by finish() once complete and synced (see
// atomic_file.hpp); a writer destroyed without finish() removes its partial file.
//
// Thread safety: one writer per file; its methods must not be called concurrently. Distinct
// writers are independent (Debian's libhdf5 is built thread-safe: one lock inside the library).
#pragma once

#include <flowinfer/config.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace flowinfer::hdf5 {

// The attributes of `coords`. Magnifications are written as integers when whole (TRIDENT's
// 20, 10, ...), else as floats; 0 means unknown.
struct CoordsAttributes {
    std::int64_t patch_size = 0;         // patch side on the working grid (target magnification)
    std::int64_t patch_size_level0 = 0;  // the same side in level-0 pixels
    double level0_magnification = 0;
    double target_magnification = 0;
    std::int64_t overlap = 0;            // working-grid pixels shared by neighbouring patches
    std::int64_t level0_width = 0, level0_height = 0;
    std::string name;                    // the slide's file stem
    // flowinfer's own
    double mpp = 0;                      // µm per working-grid pixel; 0 if the slide has none
    std::int64_t level = 0;              // pyramid level read
    double downsample = 1;               // level-0 pixels per working-grid pixel
    std::string model, model_sha256, flowinfer_version;
};

class FeatureWriter {
public:
    // Creates "<path>.partial" with empty datasets of `dim` columns. `max_rows` (0: unknown)
    // caps the chunk's rows: a chunk is stored whole, so a slide of few patches would
    // otherwise pay for a full one. Throws OutputError naming `path` (cannot create it, dim < 1
    // or a row over 1 GiB).
    FeatureWriter(std::string path, std::int64_t dim, EmbeddingDtype dtype, const CoordsAttributes& attrs,
                  std::int64_t max_rows = 0);
    ~FeatureWriter();
    FeatureWriter(const FeatureWriter&) = delete;
    FeatureWriter& operator=(const FeatureWriter&) = delete;

    // `rows` rows: xy[2 i], xy[2 i + 1] and features[D i .. D i + D). Throws OutputError
    // naming the file (a write that fails: full disk, I/O error; called after finish()).
    void append(const std::int64_t* xy, const float* features, std::size_t rows);

    // Writes the last chunk, closes, syncs and renames the file to its final path.
    void finish();

    const std::string& path() const;
    std::int64_t rows() const;        // appended so far
    std::int64_t chunk_rows() const;  // rows per chunk, and the most rows held in memory

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// IEEE 754 binary16 bits of `f`, rounded to nearest even (as numpy's astype(float16)):
// overflow gives infinity, NaN stays NaN.
std::uint16_t float_to_half(float f);

}  // namespace flowinfer::hdf5
