#include "stages/tiff/rgba_decoder.hpp"

#include "stages/tiff/tile.hpp"
#include "stages/tiff/directory.hpp"

#include <fmt/format.h>
#include <tiffio.h>

#include <algorithm>

namespace flowinfer::tiff {

struct RgbaDecoder::Handle {
    TIFF* tif = nullptr;
    std::string error;  // libtiff's last message on this handle
    ~Handle() {
        if (tif) TIFFClose(tif);
    }
    void set_dir(int dir) {
        error.clear();
        if (static_cast<int>(TIFFCurrentDirectory(tif)) != dir && !TIFFSetDirectory(tif, static_cast<tdir_t>(dir)))
            throw TileDecodeError(fmt::format("libtiff cannot read directory {}: {}", dir, error));
    }
};

RgbaDecoder::RgbaDecoder(std::string path) : path_(std::move(path)) {}
RgbaDecoder::~RgbaDecoder() = default;

std::unique_ptr<RgbaDecoder::Handle> RgbaDecoder::take() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (!idle_.empty()) {
            std::unique_ptr<Handle> h = std::move(idle_.back());
            idle_.pop_back();
            return h;
        }
    }
    auto h = std::make_unique<Handle>();
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, capture_error, &h->error);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, ignore_warning, nullptr);
    h->tif = TIFFOpenExt(path_.c_str(), "r", opts);
    TIFFOpenOptionsFree(opts);
    if (!h->tif) throw TileDecodeError("libtiff cannot open the file: " + h->error);
    return h;
}

void RgbaDecoder::give_back(std::unique_ptr<Handle> h) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(h));
}

std::string RgbaDecoder::check(int dir) {
    std::unique_ptr<Handle> h = take();
    h->set_dir(dir);
    char emsg[1024] = "";
    const bool ok = TIFFRGBAImageOK(h->tif, emsg) != 0;
    give_back(std::move(h));
    return ok ? std::string() : std::string(emsg);
}

void RgbaDecoder::decode(int dir, std::int64_t col, std::int64_t row, int tile_w, int tile_h, std::uint8_t* rgb) {
    std::unique_ptr<Handle> h = take();
    h->set_dir(dir);
    std::uint32_t width = 0, height = 0;
    TIFFGetField(h->tif, TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(h->tif, TIFFTAG_IMAGELENGTH, &height);
    // Only the part inside the image: libtiff >= 4.5 narrows a raster wider or taller than the
    // image to the image's size (and so its row stride), which garbles every tile of a level
    // smaller than one tile when the full tile is asked for, as OpenSlide 3.4.1 does.
    const auto w = static_cast<std::uint32_t>(std::min<std::int64_t>(tile_w, std::int64_t(width) - col * tile_w));
    const auto hh = static_cast<std::uint32_t>(std::min<std::int64_t>(tile_h, std::int64_t(height) - row * tile_h));
    if (col < 0 || row < 0 || w == 0 || hh == 0 || w > static_cast<std::uint32_t>(tile_w))
        throw TileDecodeError(fmt::format("tile ({}, {}) lies outside the {}x{} image", col, row, width, height));
    std::vector<std::uint32_t> raster(static_cast<std::size_t>(w) * hh);
    TIFFRGBAImage img;
    char emsg[1024] = "";
    if (!TIFFRGBAImageBegin(&img, h->tif, 1, emsg)) throw TileDecodeError(std::string("libtiff: ") + emsg);
    img.req_orientation = ORIENTATION_TOPLEFT;
    img.col_offset = static_cast<std::uint32_t>(col * tile_w);
    img.row_offset = static_cast<std::uint32_t>(row * tile_h);
    const int ok = TIFFRGBAImageGet(&img, raster.data(), w, hh);
    TIFFRGBAImageEnd(&img);
    std::string error = std::move(h->error);
    // A handle whose last read failed may be left mid-strip: drop it rather than reuse it.
    if (ok) give_back(std::move(h));
    if (!ok) throw TileDecodeError("libtiff: " + (error.empty() ? std::string("TIFFRGBAImageGet failed") : error));
    for (std::uint32_t y = 0; y < hh; ++y) {
        std::uint8_t* out = rgb + static_cast<std::size_t>(y) * tile_w * 3;
        const std::uint32_t* in = raster.data() + static_cast<std::size_t>(y) * w;
        for (std::uint32_t x = 0; x < w; ++x) {
            const std::uint32_t p = in[x];  // A B G R from high to low byte
            const std::uint32_t inv = 255u - (p >> 24);
            out[3 * x + 0] = static_cast<std::uint8_t>((p & 0xffu) + inv);
            out[3 * x + 1] = static_cast<std::uint8_t>(((p >> 8) & 0xffu) + inv);
            out[3 * x + 2] = static_cast<std::uint8_t>(((p >> 16) & 0xffu) + inv);
        }
    }
}

}  // namespace flowinfer::tiff
