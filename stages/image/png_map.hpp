// A segmentation map of one image (input.images) as an 8-bit greyscale PNG: the stitch
// stage's 256 x 256 output tiles, with the TIFF maps' values (stitch.hpp), gathered in memory
// (an image's map is small) and encoded once every tile is in.
//
// Thread safety: one writer per image, used by the (serial) write node only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer::image {

class PngMapWriter {
public:
    PngMapWriter(std::string path, std::int64_t width, std::int64_t height, int tile);
    // A tile x tile block of values at tile column tx, row ty; what lies outside the map is
    // dropped.
    void write_tile(std::int64_t tx, std::int64_t ty, const std::uint8_t* values);
    // Encodes the map (libpng) and writes it under its final name through
    // write_file_atomically. Throws OutputError naming the file.
    void finish();
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::int64_t width_, height_;
    int tile_;
    std::vector<std::uint8_t> values_;
};

}  // namespace flowinfer::image
