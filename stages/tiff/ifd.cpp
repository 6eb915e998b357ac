#include "stages/tiff/ifd.hpp"

#include "stages/tiff/tile.hpp"
#include "stages/tiff/directory.hpp"

#include <fmt/format.h>
#include <tiffio.h>

#include <memory>

namespace flowinfer::tiff {

namespace {

struct Close {
    void operator()(TIFF* t) const { TIFFClose(t); }
};

}  // namespace

std::vector<TiffDirectory> read_directories(const std::string& path) {
    std::string error;
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, capture_error, &error);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, ignore_warning, nullptr);
    std::unique_ptr<TIFF, Close> tif(TIFFOpenExt(path.c_str(), "r", opts));
    TIFFOpenOptionsFree(opts);
    if (!tif) throw TileDecodeError("libtiff cannot open it: " + error);
    std::vector<TiffDirectory> dirs;
    TIFF* t = tif.get();
    do {
        const int n = static_cast<int>(dirs.size());
        TiffDirectory d;
        d.index = static_cast<int>(TIFFCurrentDirectory(t));
        d.tiled = TIFFIsTiled(t) != 0;
        std::uint32_t w = 0, h = 0, sft = 0;
        TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
        TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
        if (TIFFGetField(t, TIFFTAG_SUBFILETYPE, &sft)) d.subfile_type = sft;
        d.width = w;
        d.height = h;
        TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &d.compression);
        TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &d.planar);
        TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &d.bits);
        TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &d.samples);
        TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &d.photometric);
        if (d.tiled) {
            std::uint32_t tw = 0, th = 0;
            TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
            TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
            d.tile_w = static_cast<int>(tw);
            d.tile_h = static_cast<int>(th);
            if (d.tile_w <= 0 || d.tile_h <= 0 || d.width <= 0 || d.height <= 0)
                throw TileDecodeError(fmt::format("TIFF directory {}: {}x{} image in {}x{} tiles", n, d.width,
                                                  d.height, d.tile_w, d.tile_h));
            d.jpeg_tables = jpeg_tables_of(t);
            const std::uint32_t tiles = TIFFNumberOfTiles(t);
            d.offsets.resize(tiles);
            d.byte_counts.resize(tiles);
            for (std::uint32_t i = 0; i < tiles; ++i) {
                int err = 0;
                d.offsets[i] = TIFFGetStrileOffsetWithErr(t, i, &err);
                if (!err) d.byte_counts[i] = TIFFGetStrileByteCountWithErr(t, i, &err);
                if (err) throw TileDecodeError(fmt::format("TIFF directory {}: tile {} has no offset or byte count", n, i));
            }
        }
        if (!error.empty()) throw TileDecodeError(fmt::format("TIFF directory {}: {}", n, error));
        dirs.push_back(std::move(d));
    } while (TIFFReadDirectory(t));
    // A directory after the last good one that libtiff could not read.
    if (!error.empty()) throw TileDecodeError(fmt::format("TIFF directory {}: {}", dirs.size(), error));
    return dirs;
}

}  // namespace flowinfer::tiff
