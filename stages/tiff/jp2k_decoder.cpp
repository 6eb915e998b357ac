// JPEG 2000 tile decoding that reproduces OpenSlide 3.4.1 (src/openslide-decode-jp2k.c and the
// chroma tables of src/make-tables.c) pixel for pixel, written against OpenJPEG 2.5.
//
// Where OpenSlide's unpacking would read outside a component (a component whose size does not
// divide the tile, an origin other than (0, 0)) or divide by zero (a component larger than the
// tile), this decoder throws instead: on every tile it accepts, its output is OpenSlide's.
//
// Thread safety: reentrant. Each call owns its stream, codec and image; the chroma tables are
// built once, under C++11's thread-safe static initialisation, and only read afterwards.
#include "stages/tiff/jp2k_decoder.hpp"

#include "stages/tiff/openjpeg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

namespace flowinfer::tiff {

namespace {

// OpenSlide folds the chroma terms of the JFIF YCbCr->RGB conversion into integer tables. The
// expressions (and their evaluation order) are make-tables.c's, so the doubles, and hence the
// rounded entries, are bit-identical. G's two terms are kept in 16.16 fixed point, +0.5 folded
// into the Cb table, so the sum >> 16 rounds once rather than twice.
struct ChromaTables {
    std::int16_t r_cr[256];
    std::int32_t g_cb[256];
    std::int32_t g_cr[256];
    std::int16_t b_cb[256];

    ChromaTables() {
        for (int i = 0; i < 256; ++i) {
            r_cr[i] = static_cast<std::int16_t>(std::round(1.402 * (i - 128)));
            g_cb[i] = static_cast<std::int32_t>(std::round((1 << 16) * (0.5 - 0.34414 * (i - 128))));
            g_cr[i] = static_cast<std::int32_t>(std::round((1 << 16) * -0.71414 * (i - 128)));
            b_cb[i] = static_cast<std::int16_t>(std::round(1.772 * (i - 128)));
        }
    }
};

const ChromaTables& chroma_tables() {
    static const ChromaTables tables;
    return tables;
}

// OpenSlide's ">> 16" on a negative sum is an arithmetic (flooring) shift on every compiler it
// is built with; C++17 leaves it implementation-defined, so make sure ours floors too.
static_assert((-1 >> 16) == -1 && (-65537 >> 16) == -2, "arithmetic right shift required");

inline std::uint8_t clamp_byte(int v) { return static_cast<std::uint8_t>(std::clamp(v, 0, 255)); }

struct YcbcrPixel {
    const ChromaTables* t = &chroma_tables();
    void operator()(std::uint8_t* out, std::uint8_t y, std::uint8_t cb, std::uint8_t cr) const {
        out[0] = clamp_byte(y + t->r_cr[cr]);
        out[1] = clamp_byte(y + ((t->g_cb[cb] + t->g_cr[cr]) >> 16));
        out[2] = clamp_byte(y + t->b_cb[cb]);
    }
};

struct RgbPixel {
    void operator()(std::uint8_t* out, std::uint8_t r, std::uint8_t g, std::uint8_t b) const {
        out[0] = r;
        out[1] = g;
        out[2] = b;
    }
};

// OpenSlide takes the low byte of each decoded sample (a C cast to uint8_t); with the 8-bit
// unsigned components accepted here OpenJPEG has already clamped them to 0..255.
inline std::uint8_t low_byte(OPJ_INT32 v) { return static_cast<std::uint8_t>(v); }

// Component k covers the tile at sub[k] x 1 pixels per sample; OpenSlide's fast paths are
// (1, 1, 1) and (1, 2, 2), which compile to loops without divisions.
template <int S0, int S1, int S2, class Px>
void unpack_fixed(const opj_image_comp_t* c, int w, int h, std::uint8_t* out, const Px& px) {
    for (int y = 0; y < h; ++y) {
        const OPJ_INT32* r0 = c[0].data + static_cast<std::size_t>(y) * c[0].w;
        const OPJ_INT32* r1 = c[1].data + static_cast<std::size_t>(y) * c[1].w;
        const OPJ_INT32* r2 = c[2].data + static_cast<std::size_t>(y) * c[2].w;
        for (int x = 0; x < w; ++x, out += 3)
            px(out, low_byte(r0[x / S0]), low_byte(r1[x / S1]), low_byte(r2[x / S2]));
    }
}

// Any other subsampling: nearest-sample upsampling by the integer factors tile / component,
// as OpenSlide's slow fallback does.
template <class Px>
void unpack_any(const opj_image_comp_t* c, int w, int h, std::uint8_t* out, const Px& px) {
    int sx[3], sy[3];
    for (int k = 0; k < 3; ++k) {
        sx[k] = w / static_cast<int>(c[k].w);
        sy[k] = h / static_cast<int>(c[k].h);
    }
    for (int y = 0; y < h; ++y) {
        const OPJ_INT32* r[3];
        for (int k = 0; k < 3; ++k) r[k] = c[k].data + static_cast<std::size_t>(y / sy[k]) * c[k].w;
        for (int x = 0; x < w; ++x, out += 3)
            px(out, low_byte(r[0][x / sx[0]]), low_byte(r[1][x / sx[1]]), low_byte(r[2][x / sx[2]]));
    }
}

template <class Px>
void unpack(const opj_image_comp_t* c, int w, int h, std::uint8_t* out, const Px& px) {
    const auto is = [&](int k, OPJ_UINT32 sub_x) {
        return c[k].w * sub_x == static_cast<OPJ_UINT32>(w) && c[k].h == static_cast<OPJ_UINT32>(h);
    };
    if (is(0, 1) && is(1, 1) && is(2, 1))
        unpack_fixed<1, 1, 1>(c, w, h, out, px);
    else if (is(0, 1) && is(1, 2) && is(2, 2))
        unpack_fixed<1, 2, 2>(c, w, h, out, px);
    else
        unpack_any(c, w, h, out, px);
}

// The unpacking above reads sample (x / (w / cw), y / (h / ch)) of each component: it stays
// inside the component, and on the row it belongs to, exactly when cw divides w and ch divides
// h. A codestream that says anything else (or is not 8-bit unsigned) is not an Aperio tile.
void check_component(const opj_image_comp_t& c, int k, int w, int h) {
    if (!c.data) throw TileDecodeError(fmt::format("JPEG 2000 component {} has no decoded data", k));
    if (c.prec != 8 || c.sgnd != 0)
        throw TileDecodeError(fmt::format("JPEG 2000 component {} is {}-bit {}, expected 8-bit unsigned", k,
                                          c.prec, c.sgnd ? "signed" : "unsigned"));
    const auto W = static_cast<OPJ_UINT32>(w), H = static_cast<OPJ_UINT32>(h);
    const bool fits = c.w > 0 && c.h > 0 && c.dx > 0 && c.dy > 0 && c.w <= W && c.h <= H &&
                      W % c.w == 0 && H % c.h == 0 && c.w == (W + c.dx - 1) / c.dx &&
                      c.h == (H + c.dy - 1) / c.dy;
    if (!fits)
        throw TileDecodeError(fmt::format(
            "JPEG 2000 component {} is {}x{} with subsampling {}x{}, which does not evenly cover the {}x{} tile",
            k, c.w, c.h, c.dx, c.dy, w, h));
}

// The codestream, read in place: OpenJPEG pulls bytes through these callbacks.
struct Source {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t pos;
};

OPJ_SIZE_T source_read(void* buf, OPJ_SIZE_T count, void* user) {
    auto& s = *static_cast<Source*>(user);
    if (s.pos >= s.size) return static_cast<OPJ_SIZE_T>(-1);  // OpenJPEG's end-of-stream
    const std::size_t n = std::min<std::size_t>(count, s.size - s.pos);
    std::memcpy(buf, s.data + s.pos, n);
    s.pos += n;
    return n;
}

// Like a file: skipping or seeking past the end succeeds and the next read reports the end.
OPJ_OFF_T source_skip(OPJ_OFF_T n, void* user) {
    auto& s = *static_cast<Source*>(user);
    if (n < 0) {
        if (static_cast<std::uint64_t>(-n) > s.pos) return -1;
        s.pos -= static_cast<std::size_t>(-n);
        return n;
    }
    s.pos += std::min<std::uint64_t>(static_cast<std::uint64_t>(n), s.size - s.pos);
    return n;
}

OPJ_BOOL source_seek(OPJ_OFF_T to, void* user) {
    auto& s = *static_cast<Source*>(user);
    if (to < 0) return OPJ_FALSE;
    s.pos = std::min<std::uint64_t>(static_cast<std::uint64_t>(to), s.size);
    return OPJ_TRUE;
}


[[noreturn]] void fail_opj(const std::string& opj_error, const char* fallback) {
    if (!opj_error.empty()) throw TileDecodeError("OpenJPEG error: " + opj_error);
    throw TileDecodeError(fallback);
}

// OpenJPEG sizes its per-tile coding parameters from the SIZ marker while it reads the main
// header, before the size checks in decode_jp2k_tile can run: a few corrupt SIZ bytes (a huge
// width, thousands of components, 1 x 1 codestream tiles) make opj_read_header allocate
// hundreds of MB for a tile of a few kB (found by fuzz/fuzz_tile_decoders.cpp). So SIZ is
// checked first: the same checks as after the header, and at most kMaxCodestreamTiles J2K
// tiles (each costs OpenJPEG about 12 kB with 3 components; encoders write one per TIFF tile).
// The standard puts SIZ right after SOC (ISO/IEC 15444-1 A.5.1) but OpenJPEG skips unknown
// bytes in between until it finds it, so a stream that starts with SOC and not SIZ is rejected
// here: otherwise these checks would see a SIZ other than the one OpenJPEG reads. A stream
// that does not start with SOC, or is too short to hold SIZ, is left for OpenJPEG to reject
// with its own message.
constexpr std::uint64_t kMaxCodestreamTiles = 1024;

std::uint32_t be32(const std::uint8_t* p) {
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}

void check_siz(const std::uint8_t* data, std::size_t size, int w, int h) {
    // SOC, SIZ, Lsiz, Rsiz (2 bytes each), then Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz,
    // YTOsiz (4 bytes each) and Csiz (2): ISO/IEC 15444-1 A.5.1.
    if (size < 4 || data[0] != 0xff || data[1] != 0x4f) return;
    if (data[2] != 0xff || data[3] != 0x51)
        throw TileDecodeError("JPEG 2000 codestream: SOC is not followed by the SIZ marker");
    if (size < 42) return;
    const std::uint8_t* p = data + 8;
    const std::uint32_t x1 = be32(p), y1 = be32(p + 4), x0 = be32(p + 8), y0 = be32(p + 12);
    const std::uint32_t tdx = be32(p + 16), tdy = be32(p + 20), tx0 = be32(p + 24), ty0 = be32(p + 28);
    const unsigned comps = unsigned(p[32]) << 8 | p[33];
    // The messages are those of the checks after opj_read_header.
    if (x1 != static_cast<std::uint32_t>(w) || y1 != static_cast<std::uint32_t>(h))
        throw TileDecodeError(fmt::format("JPEG 2000 tile is {}x{}, expected {}x{}", x1, y1, w, h));
    if (x0 != 0 || y0 != 0)
        throw TileDecodeError(
            fmt::format("JPEG 2000 tile's image area starts at ({}, {}), expected (0, 0)", x0, y0));
    if (comps != 3) throw TileDecodeError(fmt::format("expected 3 components, found {}", comps));
    if (tdx == 0 || tdy == 0 || tx0 != 0 || ty0 != 0) return;  // invalid: OpenJPEG says so
    const std::uint64_t tiles = ((std::uint64_t(x1) + tdx - 1) / tdx) * ((std::uint64_t(y1) + tdy - 1) / tdy);
    if (tiles > kMaxCodestreamTiles)
        throw TileDecodeError(fmt::format("JPEG 2000 tile is split into {} codestream tiles of {}x{}, more than {}",
                                          tiles, tdx, tdy, kMaxCodestreamTiles));
}


}  // namespace

void decode_jp2k_tile(const std::uint8_t* data, std::size_t size, Jp2kColour colour, int w, int h,
                      std::uint8_t* rgb) {
    if (w <= 0 || h <= 0) throw TileDecodeError(fmt::format("invalid JPEG 2000 tile size {}x{}", w, h));
    if (!data || size == 0) throw TileDecodeError("JPEG 2000 tile is empty (0 bytes)");
    check_siz(data, size, w, h);

    Source source{data, size, 0};
    // OpenJPEG copies through a buffer of this size; a tile is rarely more than a few 100 kB.
    const std::size_t chunk = std::min<std::size_t>(size, std::size_t(1) << 20);
    OpjStream stream(opj_stream_create(chunk, OPJ_TRUE));
    if (!stream) throw TileDecodeError("cannot create an OpenJPEG stream (out of memory)");
    opj_stream_set_user_data(stream.get(), &source, nullptr);
    opj_stream_set_user_data_length(stream.get(), size);
    opj_stream_set_read_function(stream.get(), source_read);
    opj_stream_set_skip_function(stream.get(), source_skip);
    opj_stream_set_seek_function(stream.get(), source_seek);

    // Declared after the stream so that it is destroyed before it, as OpenSlide does.
    OpjCodec codec(opj_create_decompress(OPJ_CODEC_J2K));
    if (!codec) throw TileDecodeError("cannot create an OpenJPEG decoder (out of memory)");
    std::string error;
    opj_set_info_handler(codec.get(), ignore_opj_message, nullptr);
    opj_set_warning_handler(codec.get(), ignore_opj_message, nullptr);
    opj_set_error_handler(codec.get(), keep_first_opj_error, &error);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);  // OpenSlide's: full resolution, all layers
    if (!opj_setup_decoder(codec.get(), &params)) fail_opj(error, "cannot set up the OpenJPEG decoder");
    // Callers decode tiles on many threads already; OPJ_NUM_THREADS must not add more.
    opj_codec_set_threads(codec.get(), 0);

    opj_image_t* raw_image = nullptr;
    const bool header_ok = opj_read_header(stream.get(), codec.get(), &raw_image);
    OpjImage image(raw_image);
    if (!header_ok || !image) fail_opj(error, "cannot read the JPEG 2000 tile's main header");
    error.clear();  // as OpenSlide: a message from a header that was read after all is spurious

    if (image->x1 != static_cast<OPJ_UINT32>(w) || image->y1 != static_cast<OPJ_UINT32>(h))
        throw TileDecodeError(fmt::format("JPEG 2000 tile is {}x{}, expected {}x{}", image->x1, image->y1, w, h));
    if (image->x0 != 0 || image->y0 != 0)
        throw TileDecodeError(fmt::format("JPEG 2000 tile's image area starts at ({}, {}), expected (0, 0)",
                                          image->x0, image->y0));
    if (image->numcomps != 3 || !image->comps)
        throw TileDecodeError(fmt::format("expected 3 components, found {}", image->numcomps));

    if (!opj_decode(codec.get(), stream.get(), image.get())) fail_opj(error, "cannot decode the JPEG 2000 tile");
    for (int k = 0; k < 3; ++k) check_component(image->comps[k], k, w, h);

    if (colour == Jp2kColour::ycbcr)
        unpack(image->comps, w, h, rgb, YcbcrPixel{});
    else
        unpack(image->comps, w, h, rgb, RgbPixel{});
}

// OpenJPEG reports through callbacks (by default it says nothing). Keep its first error, as
// OpenSlide does; the callbacks run inside C code, so nothing may escape them.
void keep_first_opj_error(const char* msg, void* user) noexcept {
    auto& first = *static_cast<std::string*>(user);
    if (!first.empty() || !msg) return;
    try {
        std::string m(msg);
        while (!m.empty() && std::isspace(static_cast<unsigned char>(m.back()))) m.pop_back();
        first = std::move(m);
    } catch (...) {
    }
}
void ignore_opj_message(const char*, void*) noexcept {}

}  // namespace flowinfer::tiff
