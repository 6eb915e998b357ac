// Tiles decoded by libtiff itself (deflate, LZW, none, PackBits, old-style JPEG, ...; any
// photometric libtiff's RGBA interface knows: RGB, greyscale, palette, with or without
// alpha), the way OpenSlide 3.4.1 reads them: TIFFRGBAImage at the tile's position, so the
// pixels are OpenSlide's. A TIFF* is not thread-safe, so tiles are decoded on handles taken
// from a pool that grows to the number of concurrent decodes.
//
// Thread safety: RgbaDecoder's methods may be called from any thread at once.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace flowinfer::tiff {

class RgbaDecoder {
public:
    explicit RgbaDecoder(std::string path);
    ~RgbaDecoder();
    RgbaDecoder(const RgbaDecoder&) = delete;
    RgbaDecoder& operator=(const RgbaDecoder&) = delete;

    // Empty when libtiff's RGBA interface can read directory `dir`, else why not.
    std::string check(int dir);
    // The tile at (col, row) of directory `dir` (tile_w x tile_h) as RGB, transparency
    // composited onto white (libtiff premultiplies alpha, as OpenSlide assumes). Pixels past
    // the image edge are unspecified. Throws TileDecodeError.
    void decode(int dir, std::int64_t col, std::int64_t row, int tile_w, int tile_h, std::uint8_t* rgb);

private:
    struct Handle;
    std::unique_ptr<Handle> take();
    void give_back(std::unique_ptr<Handle> h);

    std::string path_;
    std::mutex mu_;
    std::vector<std::unique_ptr<Handle>> idle_;
};

}  // namespace flowinfer::tiff
