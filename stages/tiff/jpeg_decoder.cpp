#include "stages/tiff/jpeg_decoder.hpp"

#include "stages/tiff/tile.hpp"

#include <fmt/format.h>

#include <csetjmp>
#include <cstdio>
#include <string>

#include <jerror.h>
#include <jpeglib.h>

namespace flowinfer::tiff {

namespace {

// libjpeg reports errors by calling error_exit, which must not return: it longjmps back to
// decode(). Unwinding a C++ exception through libjpeg's C frames is not allowed, hence the
// jump, and no object with a destructor lives between setjmp and a jump.
struct ErrorManager {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void error_exit(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

// Corrupt-data warnings ("premature end of data segment", "corrupt JPEG data: N extraneous
// bytes") mean the pixels are not what was encoded: treat them as errors, as a tile that
// decodes to grey garbage must not pass as tissue.
void emit_message(j_common_ptr cinfo, int level) {
    if (level < 0) error_exit(cinfo);
}

void no_output(j_common_ptr) {}

// What decode() found, for the checks and messages made outside the jump's reach.
enum class Outcome { ok, libjpeg_error, tables_invalid, header_invalid, wrong_size };

struct Decode {
    jpeg_decompress_struct cinfo{};
    ErrorManager err{};
    int out_w = 0, out_h = 0, components = 0;
    unsigned image_w = 0, image_h = 0;
};

// Plain C-style control flow only: see ErrorManager.
Outcome decode(Decode& d, const std::vector<std::uint8_t>& tables, const std::uint8_t* data, std::size_t size,
               JpegColour colour, int tile_w, int tile_h, int scale, std::vector<std::uint8_t>& out) {
    jpeg_decompress_struct& cinfo = d.cinfo;
    cinfo.err = jpeg_std_error(&d.err.pub);
    d.err.pub.error_exit = error_exit;
    d.err.pub.emit_message = emit_message;
    d.err.pub.output_message = no_output;
    if (setjmp(d.err.jump)) return Outcome::libjpeg_error;
    jpeg_create_decompress(&cinfo);
    if (!tables.empty()) {
        jpeg_mem_src(&cinfo, tables.data(), static_cast<unsigned long>(tables.size()));
        if (jpeg_read_header(&cinfo, FALSE) != JPEG_HEADER_TABLES_ONLY) return Outcome::tables_invalid;
    }
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) return Outcome::header_invalid;
    d.image_w = cinfo.image_width;
    d.image_h = cinfo.image_height;
    d.components = cinfo.num_components;
    if (cinfo.image_width != static_cast<unsigned>(tile_w) || cinfo.image_height != static_cast<unsigned>(tile_h) ||
        cinfo.num_components != 3)
        return Outcome::wrong_size;
    cinfo.jpeg_color_space = colour == JpegColour::rgb ? JCS_RGB : JCS_YCbCr;
    cinfo.out_color_space = JCS_RGB;
    cinfo.scale_num = 1;
    cinfo.scale_denom = static_cast<unsigned>(scale);
    jpeg_start_decompress(&cinfo);
    d.out_w = static_cast<int>(cinfo.output_width);
    d.out_h = static_cast<int>(cinfo.output_height);
    // Sized before the first scanline so that nothing allocates between the jumps' ends.
    out.resize(static_cast<std::size_t>(d.out_w) * d.out_h * 3);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out.data() + static_cast<std::size_t>(cinfo.output_scanline) * d.out_w * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    return Outcome::ok;
}

struct Destroy {
    jpeg_decompress_struct* cinfo;
    ~Destroy() { jpeg_destroy_decompress(cinfo); }
};

}  // namespace

DecodedTile decode_jpeg_tile(const std::vector<std::uint8_t>& tables, const std::uint8_t* data, std::size_t size,
                          JpegColour colour, int tile_w, int tile_h, int scale) {
    if (scale != 1 && scale != 2 && scale != 4 && scale != 8)
        throw TileDecodeError(fmt::format("JPEG: scale 1/{} is not one of 1, 1/2, 1/4, 1/8", scale));
    if (size == 0) throw TileDecodeError("JPEG: empty tile (0 bytes)");
    DecodedTile tile;
    Decode d;
    // The vector is resized inside decode(); its buffer must exist before the setjmp, and
    // a jump must not skip a destructor: both hold for a vector owned out here.
    const Outcome outcome = decode(d, tables, data, size, colour, tile_w, tile_h, scale, tile.rgb);
    const Destroy destroy{&d.cinfo};
    switch (outcome) {
        case Outcome::ok: break;
        case Outcome::libjpeg_error: throw TileDecodeError(std::string("JPEG: ") + d.err.message);
        case Outcome::tables_invalid: throw TileDecodeError("JPEG: the JPEGTables tag holds no tables-only stream");
        case Outcome::header_invalid: throw TileDecodeError("JPEG: no image in the tile's stream");
        case Outcome::wrong_size:
            throw TileDecodeError(fmt::format("JPEG: tile is {}x{} with {} components, expected {}x{} with 3",
                                              d.image_w, d.image_h, d.components, tile_w, tile_h));
    }
    tile.width = d.out_w;
    tile.height = d.out_h;
    return tile;
}

}  // namespace flowinfer::tiff
