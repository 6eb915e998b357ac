// A pyramid level's TIFF directory: its geometry, its tags, and a tile codec that compresses
// tiles for it off the writer's thread. Internal to the TIFF writer (writer.cpp); the error
// handlers, jpeg_tables_of and copy_directory_raw also serve the reader and synthetic SVS.
//
// Thread safety: tag_directory and the error handlers are reentrant; a TileCodec is used by one
// thread at a time.
#pragma once

#include "stages/tiff/writer.hpp"

#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace flowinfer::tiff {

struct LevelGeom {
    std::int64_t width = 0, height = 0;
    std::int64_t tiles_x = 0, tiles_y = 0;  // on the layout.tile grid used while building
    // Tile size in the file. OpenSlide 3.4.1 with libtiff >= 4.5 garbles every tile of a
    // directory whose tile is wider or taller than the image (TIFFRGBAImageGet now clamps
    // the raster to the image size, OpenSlide still assumes a full tile), so a level smaller
    // than a tile in one dimension gets a smaller tile: the largest multiple of 16 that fits.
    int file_tw = 0, file_th = 0;
    std::int64_t tile_count() const { return tiles_x * tiles_y; }
    bool regular(int tile) const { return file_tw == tile && file_th == tile; }
};

inline int file_tile(std::int64_t extent, int tile) {
    if (extent >= tile) return tile;
    return static_cast<int>(std::max<std::int64_t>(16, extent / 16 * 16));
}

// libtiff reports through callbacks; keep the first message so the OutputError says what
// went wrong, and return 1 so nothing is printed to stderr behind the caller's back.
// `user` is a std::string*.
int capture_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap);
int ignore_warning(TIFF*, void*, const char*, const char*, va_list);

// Sets the tags of a directory for `level` (geometry g): size, tiles, samples, resolution,
// description, compression. dir_deflate / dir_predictor: what the directory's tiles go through
// (false for JPEG). False when libtiff refused one.
bool tag_directory(TIFF* tif, const TiffLayout& layout, bool palette, const LevelGeom& g, int level,
                   bool& dir_deflate, bool& dir_predictor);

// A tile whose bytes are all one value (background, mostly): deflate tiles of one value are
// compressed once and their bytes reused (writer.cpp, write_uniform).
inline bool one_value(const std::uint8_t* data, std::int64_t bytes) {
    return bytes >= 2 && std::memcmp(data, data + 1, static_cast<std::size_t>(bytes - 1)) == 0;
}

// Copies the current directory of `in` into a new directory of `out`: the tags a slide reader
// needs (size, tiles, samples, compression, photometric, JPEG subsampling and tables or
// predictor, resolution), `description` when not empty, then every tile's compressed bytes
// unchanged, or only those `keep` accepts (the others stay zero-length, as in Aperio's
// encoder bug). False when libtiff failed (its message goes to the handles' error handler).
bool copy_directory_raw(TIFF* in, TIFF* out, const std::string& description,
                        const std::function<bool(std::uint32_t)>& keep = {});

// The JPEGTABLES of the current directory, empty until its codec has encoded a tile.
inline std::vector<std::uint8_t> jpeg_tables_of(TIFF* tif) {
    std::uint32_t count = 0;
    void* p = nullptr;
    if (TIFFGetField(tif, TIFFTAG_JPEGTABLES, &count, &p) != 1 || !p || count == 0) return {};
    return {static_cast<const std::uint8_t*>(p), static_cast<const std::uint8_t*>(p) + count};
}

// Encodes tiles off the writer's thread: an in-memory one-tile TIFF with the tags of a
// directory, into which each tile is written with TIFFWriteEncodedTile and whose output is
// captured instead of stored. The bytes are exactly those libtiff puts into the real file for
// the same tile and tags (the codecs do not depend on where the tile is), so the writer can
// store them with TIFFWriteRawTile. One per thread; not thread-safe itself.
class TileCodec {
public:
    TileCodec(const TiffLayout& layout, bool palette, int tile_w, int tile_h) {
        TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
        TIFFOpenOptionsSetErrorHandlerExtR(opts, capture_error, &error_);
        TIFFOpenOptionsSetWarningHandlerExtR(opts, ignore_warning, nullptr);
        tif_ = TIFFClientOpenExt("flowinfer-tile-codec", "w", static_cast<thandle_t>(this), read_proc, write_proc,
                                 seek_proc, close_proc, size_proc, map_proc, unmap_proc, opts);
        TIFFOpenOptionsFree(opts);
        if (!tif_) throw std::runtime_error("cannot open the in-memory TIFF tile codec: " + error_);
        LevelGeom g{tile_w, tile_h, 1, 1, tile_w, tile_h};
        bool deflate = false, predictor = false;
        if (!tag_directory(tif_, layout, palette, g, 0, deflate, predictor)) {
            TIFFCleanup(tif_);
            throw std::runtime_error("cannot set the tags of the tile codec: " + error_);
        }
        bytes_ = static_cast<std::int64_t>(tile_w) * tile_h * layout.channels;
        buf_.resize(static_cast<std::size_t>(bytes_));
        jpeg_ = layout.channels == 3 && layout.jpeg;
    }
    ~TileCodec() {
        capture_ = nullptr;  // the directory TIFFCleanup writes goes nowhere
        if (tif_) TIFFCleanup(tif_);
    }
    TileCodec(const TileCodec&) = delete;
    TileCodec& operator=(const TileCodec&) = delete;

    // The stored bytes of a tile of `bytes_` bytes; false (out untouched but cleared) when
    // libtiff failed, so the caller can fall back to encoding in the file itself.
    bool encode(const std::uint8_t* data, std::vector<std::uint8_t>& out) {
        out.clear();
        if (broken_) return false;
        std::memcpy(buf_.data(), data, buf_.size());  // encoders may work in place
        capture_ = &out;
        const tmsize_t n = TIFFWriteEncodedTile(tif_, 0, buf_.data(), bytes_);
        capture_ = nullptr;
        if (n < 0 || !error_.empty() || TIFFGetStrileByteCount(tif_, 0) != out.size()) {
            broken_ = true;
            out.clear();
            return false;
        }
        if (jpeg_ && tables_.empty()) tables_ = jpeg_tables_of(tif_);
        return true;
    }

    // JPEGTABLES of the codec's directory (JPEG only, after the first encode): raw tiles are
    // abbreviated JPEG streams, valid only with the tables of the directory they land in.
    const std::vector<std::uint8_t>& jpeg_tables() const { return tables_; }

private:
    // A file that only ever receives the bytes of the tile being encoded: every seek lands
    // just past the header, so offsets stay small however many tiles go through.
    static tsize_t read_proc(thandle_t, tdata_t, tsize_t) { return 0; }
    static tsize_t write_proc(thandle_t h, tdata_t data, tsize_t n) {
        auto* self = static_cast<TileCodec*>(h);
        if (self->capture_ && n > 0) {
            const auto* p = static_cast<const std::uint8_t*>(data);
            self->capture_->insert(self->capture_->end(), p, p + n);
        }
        return n;
    }
    static toff_t seek_proc(thandle_t, toff_t off, int whence) { return whence == SEEK_SET ? off : 16; }
    static int close_proc(thandle_t) { return 0; }
    static toff_t size_proc(thandle_t) { return 16; }
    static int map_proc(thandle_t, tdata_t*, toff_t*) { return 0; }
    static void unmap_proc(thandle_t, tdata_t, toff_t) {}

    TIFF* tif_ = nullptr;
    std::string error_;
    std::vector<std::uint8_t>* capture_ = nullptr;
    std::vector<std::uint8_t> buf_;
    std::int64_t bytes_ = 0;
    bool jpeg_ = false;
    bool broken_ = false;
    std::vector<std::uint8_t> tables_;
};

}  // namespace flowinfer::tiff
