#include "stages/tiff/directory.hpp"

#include <fmt/format.h>

namespace flowinfer::tiff {

// libtiff reports through callbacks; keep the first message so the OutputError says what
// went wrong, and return 1 so nothing is printed to stderr behind the caller's back.
int capture_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
    auto* msg = static_cast<std::string*>(user);
    if (msg->empty()) {
        char buf[1024];
        std::vsnprintf(buf, sizeof buf, fmt, ap);
        *msg = module && *module ? fmt::format("{}: {}", module, buf) : std::string(buf);
    }
    return 1;
}

int ignore_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// Sets the tags of a directory for `level` (geometry g): size, tiles, samples, resolution,
// description, compression. dir_deflate / dir_predictor: what the directory's tiles go through
// (false for JPEG). False when libtiff refused one.
bool tag_directory(TIFF* tif, const TiffLayout& layout, bool palette, const LevelGeom& g, int level,
                   bool& dir_deflate, bool& dir_predictor) {
    const int ch = layout.channels;
    bool ok = true;
    ok &= TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<std::uint32_t>(g.width)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<std::uint32_t>(g.height)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_TILEWIDTH, static_cast<std::uint32_t>(g.file_tw)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_TILELENGTH, static_cast<std::uint32_t>(g.file_th)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, ch) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_SOFTWARE, "flowinfer") == 1;
    if (level > 0) ok &= TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE) == 1;
    if (level == 0 && !layout.description.empty())
        ok &= TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, layout.description.c_str()) == 1;
    if (layout.mpp > 0) {
        // Pixels per centimetre; level k pixels are 2^k times larger.
        const float res = static_cast<float>(1e4 / (layout.mpp * std::ldexp(1.0, level)));
        ok &= TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_XRESOLUTION, res) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_YRESOLUTION, res) == 1;
    }
    if (ch == 3 && layout.jpeg) {
        // YCbCr JPEG is what makes slides compact; JPEGCOLORMODE_RGB lets libtiff do the
        // colour conversion so callers still hand over RGB.
        ok &= TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_JPEG) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_JPEGQUALITY, std::clamp(layout.jpeg_quality, 1, 100)) == 1;
    } else {
        if (ch == 3)
            ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB) == 1;
        else if (palette)
            ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_PALETTE) == 1;
        else
            ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK) == 1;
        Compression comp = layout.compression;
        // libtiff 4.5 refuses to read an uncompressed tile whose byte size differs from
        // its read buffer (rounded to 1 KiB, and reused across directories), so smaller
        // re-cut tiles would be unreadable; these levels are tiny, deflate costs nothing.
        if (comp == Compression::none && !g.regular(layout.tile)) comp = Compression::deflate;
        switch (comp) {
            case Compression::deflate:
                ok &= TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE) == 1;
                ok &= TIFFSetField(tif, TIFFTAG_ZIPQUALITY, layout.deflate_level) == 1;
                break;
            case Compression::lzw:
                ok &= TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_LZW) == 1;
                break;
            case Compression::none:
                ok &= TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_NONE) == 1;
                break;
        }
        // Horizontal differencing helps smooth images; label indices have no order, so
        // differencing them only adds entropy.
        dir_deflate = comp == Compression::deflate;
        dir_predictor = comp != Compression::none && !palette;
        if (dir_predictor) ok &= TIFFSetField(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL) == 1;
    }
    if (palette) {
        std::vector<std::uint16_t> r(256), gr(256), b(256);
        for (int i = 0; i < 256; ++i) {
            r[i] = static_cast<std::uint16_t>(layout.palette_rgb[3 * i] * 257);
            gr[i] = static_cast<std::uint16_t>(layout.palette_rgb[3 * i + 1] * 257);
            b[i] = static_cast<std::uint16_t>(layout.palette_rgb[3 * i + 2] * 257);
        }
        ok &= TIFFSetField(tif, TIFFTAG_COLORMAP, r.data(), gr.data(), b.data()) == 1;
    }
    return ok;
}

bool copy_directory_raw(TIFF* in, TIFF* out, const std::string& description,
                        const std::function<bool(std::uint32_t)>& keep) {
    std::uint32_t w = 0, h = 0, tw = 0, th = 0;
    std::uint16_t compression = 1, photometric = 2, spp = 3, bps = 8, predictor = 1, sub_h = 2, sub_v = 2;
    TIFFGetField(in, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(in, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetField(in, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(in, TIFFTAG_TILELENGTH, &th);
    TIFFGetFieldDefaulted(in, TIFFTAG_COMPRESSION, &compression);
    TIFFGetField(in, TIFFTAG_PHOTOMETRIC, &photometric);
    TIFFGetFieldDefaulted(in, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(in, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFSetField(out, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(out, TIFFTAG_IMAGELENGTH, h);
    TIFFSetField(out, TIFFTAG_TILEWIDTH, tw);
    TIFFSetField(out, TIFFTAG_TILELENGTH, th);
    TIFFSetField(out, TIFFTAG_SAMPLESPERPIXEL, spp);
    TIFFSetField(out, TIFFTAG_BITSPERSAMPLE, bps);
    TIFFSetField(out, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(out, TIFFTAG_COMPRESSION, compression);
    TIFFSetField(out, TIFFTAG_PHOTOMETRIC, photometric);
    if (compression == COMPRESSION_JPEG) {
        TIFFGetFieldDefaulted(in, TIFFTAG_YCBCRSUBSAMPLING, &sub_h, &sub_v);
        TIFFSetField(out, TIFFTAG_YCBCRSUBSAMPLING, sub_h, sub_v);
        const std::vector<std::uint8_t> tables = jpeg_tables_of(in);
        if (!tables.empty())
            TIFFSetField(out, TIFFTAG_JPEGTABLES, static_cast<std::uint32_t>(tables.size()), tables.data());
    } else if (TIFFGetField(in, TIFFTAG_PREDICTOR, &predictor)) {
        TIFFSetField(out, TIFFTAG_PREDICTOR, predictor);
    }
    if (!description.empty()) TIFFSetField(out, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
    float xres = 0, yres = 0;
    std::uint16_t unit = 0;
    if (TIFFGetField(in, TIFFTAG_XRESOLUTION, &xres) && TIFFGetField(in, TIFFTAG_YRESOLUTION, &yres) &&
        TIFFGetField(in, TIFFTAG_RESOLUTIONUNIT, &unit)) {
        TIFFSetField(out, TIFFTAG_XRESOLUTION, xres);
        TIFFSetField(out, TIFFTAG_YRESOLUTION, yres);
        TIFFSetField(out, TIFFTAG_RESOLUTIONUNIT, unit);
    }
    std::vector<std::uint8_t> buf;
    for (ttile_t t = 0; t < TIFFNumberOfTiles(in); ++t) {
        if (keep && !keep(t)) continue;
        buf.resize(static_cast<std::size_t>(TIFFGetStrileByteCount(in, t)));
        if (TIFFReadRawTile(in, t, buf.data(), static_cast<tmsize_t>(buf.size())) < 0) return false;
        if (TIFFWriteRawTile(out, t, buf.data(), static_cast<tmsize_t>(buf.size())) < 0) return false;
    }
    return TIFFWriteDirectory(out) != 0;
}

}  // namespace flowinfer::tiff
