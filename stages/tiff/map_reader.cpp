#include "stages/tiff/map_reader.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <stdexcept>

namespace flowinfer {

namespace {

int capture_tiff_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    auto* out = static_cast<std::string*>(user);
    if (out->empty()) *out = std::string(module ? module : "libtiff") + ": " + buf;
    return 1;
}

int ignore_tiff_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct TiffClose {
    void operator()(TIFF* t) const { TIFFClose(t); }
};

}  // namespace

MapLevel read_map_level(const std::string& path,
                        const std::function<std::size_t(const std::vector<MapDirectory>&)>& choose,
                        const char* purpose) {
    std::string error;
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, capture_tiff_error, &error);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, ignore_tiff_warning, nullptr);
    std::unique_ptr<TIFF, TiffClose> tif(TIFFOpenExt(path.c_str(), "r", opts));
    TIFFOpenOptionsFree(opts);
    if (!tif) throw OutputError(path, fmt::format("cannot open the map {}: {}", purpose, error));
    TIFF* t = tif.get();

    MapLevel m;
    std::vector<MapDirectory> dirs;
    do {
        std::uint32_t w = 0, h = 0;
        std::uint16_t spp = 1, bps = 1;
        TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
        TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
        TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
        TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
        if (dirs.empty() && m.width0 == 0) {
            m.width0 = w;
            m.height0 = h;
            if (spp != 1 || bps != 8)
                throw OutputError(path, fmt::format("a map must be 8-bit with 1 sample per pixel, "
                                                    "not {}-bit with {}", bps, spp));
        }
        // Levels of the same map only (a stray thumbnail or label image would not match).
        if (spp == 1 && bps == 8 && w > 0 && h > 0) dirs.push_back({static_cast<int>(TIFFCurrentDirectory(t)), w, h});
    } while (TIFFReadDirectory(t));
    if (dirs.empty() || m.width0 == 0 || m.height0 == 0) throw OutputError(path, "the map has no image");

    const std::size_t chosen = choose(dirs);
    if (chosen >= dirs.size()) throw std::logic_error("read_map_level: the chooser picked no directory");
    const MapDirectory* pick = &dirs[chosen];
    if (!TIFFSetDirectory(t, static_cast<tdir_t>(pick->index)))
        throw OutputError(path, "cannot read a map directory: " + error);
    m.width = pick->width;
    m.height = pick->height;
    m.directory = pick->index;
    m.scale_x = double(m.width0) / double(m.width);
    m.scale_y = double(m.height0) / double(m.height);

    std::uint16_t photometric = PHOTOMETRIC_MINISBLACK;
    TIFFGetFieldDefaulted(t, TIFFTAG_PHOTOMETRIC, &photometric);
    m.palette = photometric == PHOTOMETRIC_PALETTE;
    if (m.palette) {
        std::uint16_t *r = nullptr, *g = nullptr, *b = nullptr;
        if (TIFFGetField(t, TIFFTAG_COLORMAP, &r, &g, &b) && r && g && b) {
            m.colormap.resize(256);
            for (int i = 0; i < 256; ++i)  // 16-bit entries, written as 8-bit * 257
                m.colormap[static_cast<std::size_t>(i)] = {static_cast<std::uint8_t>(r[i] >> 8), static_cast<std::uint8_t>(g[i] >> 8),
                                 static_cast<std::uint8_t>(b[i] >> 8)};
        }
    }

    // Raw decoding (TIFFReadTile / TIFFReadEncodedStrip), not TIFFReadRGBA*: the latter would
    // turn palette indices into colours and lose the class numbers.
    const std::size_t W = m.width, H = m.height;
    m.pixels.assign(W * H, 0);
    if (TIFFIsTiled(t)) {
        std::uint32_t tw = 0, th = 0;
        TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
        if (tw == 0 || th == 0) throw OutputError(path, "the map has a tile size of 0");
        std::vector<std::uint8_t> tile(static_cast<std::size_t>(TIFFTileSize(t)));
        if (tile.size() < static_cast<std::size_t>(tw) * th) throw OutputError(path, "bad map tile size");
        for (std::uint32_t y = 0; y < H; y += th)
            for (std::uint32_t x = 0; x < W; x += tw) {
                if (TIFFReadTile(t, tile.data(), x, y, 0, 0) < 0)
                    throw OutputError(path, fmt::format("cannot read the map tile at {},{}: {}", x, y, error));
                const std::size_t cw = std::min<std::size_t>(tw, W - x), ch = std::min<std::size_t>(th, H - y);
                for (std::size_t r = 0; r < ch; ++r)
                    std::copy_n(tile.data() + r * tw, cw, m.pixels.data() + (y + r) * W + x);
            }
    } else {
        std::uint32_t rps = 0;
        TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &rps);
        rps = std::min<std::uint32_t>(std::max<std::uint32_t>(rps, 1), m.height);
        const tstrip_t strips = TIFFNumberOfStrips(t);
        for (tstrip_t s = 0; s < strips; ++s) {
            const std::size_t y0 = static_cast<std::size_t>(s) * rps;
            if (y0 >= H) break;
            const std::size_t rows = std::min<std::size_t>(rps, H - y0);
            if (TIFFReadEncodedStrip(t, s, m.pixels.data() + y0 * W, static_cast<tmsize_t>(rows * W)) < 0)
                throw OutputError(path, fmt::format("cannot read map strip {}: {}", s, error));
        }
    }
    return m;
}

}  // namespace flowinfer
