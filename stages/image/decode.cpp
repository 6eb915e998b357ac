// Single-image decoding (decode.hpp) through libpng, libjpeg(-turbo) and libtiff.
//
// libpng and libjpeg report errors by longjmp. Each setjmp lives in a plain C-style function
// (png_run, jpeg_run) whose state and buffers belong to its caller, so a jump skips no
// destructor and no object it reads afterwards is a local modified after setjmp; the caller
// turns the outcome into an ImageError once the library's frames are gone.
//
// Thread safety: reentrant, no shared state (see decode.hpp).

#include "stages/image/decode.hpp"

#include <fmt/format.h>
#include <png.h>
#include <tiffio.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>

namespace flowinfer::image {

const char* to_string(Format f) noexcept {
    return f == Format::png ? "PNG" : f == Format::jpeg ? "JPEG" : "TIFF";
}

namespace {

// A hostile or broken header must not make us allocate without bound.
constexpr std::uint64_t kMaxPixels = std::uint64_t(1) << 31;
constexpr std::uint64_t kMaxRgbBytes = std::uint64_t(4) << 30;
// A progressive JPEG may hold any number of scans, each a pass over the whole image: a few
// hundred bytes can keep the decoder busy for hours. Real encoders write at most ~20.
constexpr int kMaxJpegScans = 1000;

void check_size(const std::string& path, Format f, std::uint64_t w, std::uint64_t h) {
    const std::string size = fmt::format("the {} image is {} x {} pixels", to_string(f), w, h);
    if (w == 0 || h == 0) throw ImageError(path, size + ": an empty image cannot be decoded");
    if (w * h > kMaxPixels || w * h * 3 > kMaxRgbBytes)
        throw ImageError(path, size + ": too large (the limit is 2^31 pixels and 4 GiB as RGB), refused");
}

[[noreturn]] void bad_depth(const std::string& path, int bits) {
    throw ImageError(path, fmt::format("{}-bit images are not supported (8 bits per sample expected)", bits));
}

struct FileClose { void operator()(std::FILE* f) const { std::fclose(f); } };

struct Opened {
    std::unique_ptr<std::FILE, FileClose> f;
    Format format = Format::png;
    unsigned char head[24] = {};
    std::size_t size = 0;  // bytes in head
};

// Opens `path` and tells its format from the first bytes. O_NONBLOCK so that a FIFO named
// like a patch cannot block the open; it is refused below as not a regular file.
Opened open_image(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw ImageError(path, fmt::format("cannot open the image file: {}", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const bool dir = S_ISDIR(st.st_mode);
        ::close(fd);
        throw ImageError(path, dir ? "is a directory, not an image file" : "not a regular file, not an image file");
    }
    Opened o;
    o.f.reset(::fdopen(fd, "rb"));
    if (!o.f) ::close(fd);
    if (!o.f) throw ImageError(path, "cannot open the image file: out of memory");
    o.size = std::fread(o.head, 1, sizeof o.head, o.f.get());
    if (std::ferror(o.f.get())) throw ImageError(path, fmt::format("cannot read the image file: {}", std::strerror(errno)));
    auto starts = [&](const char* sig, std::size_t n) { return o.size >= n && std::memcmp(o.head, sig, n) == 0; };
    if (starts("\x89PNG\r\n\x1a\n", 8)) o.format = Format::png;
    else if (starts("\xff\xd8\xff", 3)) o.format = Format::jpeg;
    else if (starts("II*\0", 4) || starts("MM\0*", 4) || starts("II+\0", 4) || starts("MM\0+", 4)) o.format = Format::tiff;
    else if (o.size == 0) throw ImageError(path, "empty file (0 bytes): not an image (supported formats: PNG, JPEG, TIFF)");
    else {
        std::string hex;
        for (std::size_t i = 0; i < std::min<std::size_t>(o.size, 8); ++i) hex += fmt::format("{}{:02x}", i ? " " : "", o.head[i]);
        throw ImageError(path, fmt::format("not a PNG, JPEG or TIFF image: the first bytes ({}) are none of their "
                                           "signatures (supported formats: PNG, JPEG, TIFF)", hex));
    }
    std::rewind(o.f.get());
    return o;
}

// How a colour sample and its alpha sample combine: straight (PNG; TIFF "unassociated"),
// premultiplied (TIFF "associated"), or an extra sample that is not alpha.
enum class Alpha { straight, premultiplied, ignored };

std::uint8_t on_white(unsigned c, unsigned a, Alpha mode) {
    if (mode == Alpha::ignored) return static_cast<std::uint8_t>(c);
    // min(): a premultiplied colour over its alpha is invalid; 255 is odd, so no rounding ties.
    if (mode == Alpha::premultiplied) return static_cast<std::uint8_t>(std::min(255u, c + 255 - a));
    return static_cast<std::uint8_t>((a * c + (255 - a) * 255 + 127) / 255);
}

// n pixels of 1 to 4 interleaved 8-bit channels (grey, grey+alpha, RGB, RGBA) to RGB.
void to_rgb(const std::uint8_t* in, int channels, std::size_t n, std::uint8_t* out, Alpha mode = Alpha::straight) {
    for (std::size_t i = 0; i < n; ++i, out += 3, in += channels) {
        if (channels <= 2) out[0] = out[1] = out[2] = channels == 1 ? in[0] : on_white(in[0], in[1], mode);
        else for (int c = 0; c < 3; ++c) out[c] = channels == 3 ? in[c] : on_white(in[c], in[3], mode);
    }
}

// ---- PNG ----

struct PngRead {
    std::FILE* f = nullptr;
    png_structp png = nullptr;
    png_infop info = nullptr;
    char error[256] = "";
    std::vector<std::uint8_t> pixels;  // one row, or the whole image when interlaced
    std::vector<png_bytep> rows;       // into pixels
    ~PngRead() { png_destroy_read_struct(png ? &png : nullptr, info ? &info : nullptr, nullptr); }
};

void png_fail(png_structp png, png_const_charp msg) {
    auto* st = static_cast<PngRead*>(png_get_error_ptr(png));
    std::snprintf(st->error, sizeof st->error, "%s", msg);
    png_longjmp(png, 1);
}

// False on a libpng error (message in st.error). Refusals are thrown from here: no jump is
// under way then, and the objects a throw destroys belong to the caller.
bool png_run(PngRead& st, const std::string& path, Info& info, std::vector<std::uint8_t>* out) {
    if (setjmp(png_jmpbuf(st.png))) return false;
    png_init_io(st.png, st.f);
    png_read_info(st.png, st.info);
    const png_uint_32 w = png_get_image_width(st.png, st.info), h = png_get_image_height(st.png, st.info);
    const int depth = png_get_bit_depth(st.png, st.info), type = png_get_color_type(st.png, st.info);
    const bool trns = png_get_valid(st.png, st.info, PNG_INFO_tRNS) != 0;
    info.width = w, info.height = h;
    info.channels = type == PNG_COLOR_TYPE_GRAY ? 1 : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                    : type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 3;
    if (trns && (type & PNG_COLOR_MASK_ALPHA) == 0) ++info.channels;
    if (depth != 8 && !(depth < 8 && (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_PALETTE)))
        bad_depth(path, depth);
    check_size(path, Format::png, w, h);
    if (!out) return true;
    png_set_expand(st.png);  // palette to RGB, 1/2/4-bit grey to 8-bit, tRNS to alpha: lossless
    const int passes = png_set_interlace_handling(st.png);
    png_read_update_info(st.png, st.info);
    const int channels = png_get_channels(st.png, st.info);
    const std::size_t stride = png_get_rowbytes(st.png, st.info);
    out->resize(std::size_t(w) * h * 3);
    const png_uint_32 held = passes == 1 ? 1 : h;  // row by row, unless Adam7 (each pass fills every row)
    st.pixels.resize(stride * held);
    st.rows.resize(held);
    for (png_uint_32 y = 0; y < held; ++y) st.rows[y] = st.pixels.data() + stride * y;
    if (held > 1) png_read_image(st.png, st.rows.data());
    for (png_uint_32 y = 0; y < h; ++y) {
        if (held == 1) png_read_row(st.png, st.rows[0], nullptr);
        to_rgb(st.rows[held == 1 ? 0 : y], channels, w, out->data() + std::size_t(y) * w * 3);
    }
    png_read_end(st.png, nullptr);  // the last IDAT's CRC and the end of the stream
    return true;
}

void png_decode(const std::string& path, Opened& o, Info& info, std::vector<std::uint8_t>* out) {
    // From IHDR itself, which must come first: libpng would call a zero width a corrupt IHDR,
    // and read on to the first IDAT before an oversized one could be refused.
    if (o.size >= 24 && std::memcmp(o.head + 12, "IHDR", 4) == 0) {
        auto be32 = [&](int at) {
            return std::uint64_t(o.head[at]) << 24 | o.head[at + 1] << 16 | o.head[at + 2] << 8 | o.head[at + 3];
        };
        check_size(path, Format::png, be32(16), be32(20));
    }
    PngRead st;
    st.f = o.f.get();
    st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, png_fail, [](png_structp, png_const_charp) {});
    if (st.png) st.info = png_create_info_struct(st.png);
    if (!st.png || !st.info) throw ImageError(path, "libpng cannot start (out of memory?)");
    if (png_run(st, path, info, out)) return;
    if (!std::feof(st.f)) throw ImageError(path, fmt::format("corrupt PNG data (libpng: {})", st.error));
    throw ImageError(path, fmt::format("truncated PNG: the file ends before the image does (libpng: {})", st.error));
}

// ---- JPEG ----

struct JpegRead {
    jpeg_decompress_struct cinfo{};
    struct Error {
        jpeg_error_mgr pub;
        std::jmp_buf jump;
        char message[JMSG_LENGTH_MAX];
        int code;  // libjpeg's msg_code, or -1: too many scans
    } err{};
    jpeg_progress_mgr progress{};
    ~JpegRead() { jpeg_destroy_decompress(&cinfo); }  // safe on a zeroed or half-made struct
};

void jpeg_fail(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<JpegRead::Error*>(cinfo->err);
    err->code = cinfo->err->msg_code;
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}

// Level -1 is corrupt data ("premature end of data": libjpeg pads the rest with grey, and
// the pixels are not what was encoded): an error, like everywhere else in flowinfer.
void jpeg_message(j_common_ptr cinfo, int level) { if (level < 0) jpeg_fail(cinfo); }

void jpeg_progress(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<JpegRead::Error*>(cinfo->err);
    if (!cinfo->is_decompressor || reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number <= kMaxJpegScans) return;
    err->code = -1;
    std::longjmp(err->jump, 1);
}

// False on a libjpeg error (st.err). Refusals are thrown from here, as in png_run.
bool jpeg_run(JpegRead& st, std::FILE* f, const std::string& path, Info& info, std::vector<std::uint8_t>* out) {
    j_decompress_ptr c = &st.cinfo;
    c->err = jpeg_std_error(&st.err.pub);
    st.err.pub.error_exit = jpeg_fail, st.err.pub.emit_message = jpeg_message;
    st.err.pub.output_message = [](j_common_ptr) {};
    if (setjmp(st.err.jump)) return false;
    jpeg_create_decompress(c);
    st.progress.progress_monitor = jpeg_progress, c->progress = &st.progress;
    jpeg_stdio_src(c, f);
    jpeg_read_header(c, TRUE);  // TRUE: a tables-only stream is an error
    info.width = c->image_width, info.height = c->image_height, info.channels = c->num_components;
    if (c->jpeg_color_space == JCS_CMYK || c->jpeg_color_space == JCS_YCCK)
        throw ImageError(path, "CMYK JPEG is not supported: convert it to RGB");
    if (c->num_components != 1 && c->num_components != 3)
        throw ImageError(path, fmt::format("JPEG with {} components is not supported (1 or 3 expected)", c->num_components));
    check_size(path, Format::jpeg, c->image_width, c->image_height);
    if (!out) return true;
    c->out_color_space = JCS_RGB;  // libjpeg-turbo replicates grey itself
    jpeg_start_decompress(c);  // scale 1/1, so output_width and _height are the image's
    out->resize(std::size_t(c->output_width) * c->output_height * 3);
    while (c->output_scanline < c->output_height) {
        JSAMPROW row = out->data() + std::size_t(c->output_scanline) * c->output_width * 3;
        jpeg_read_scanlines(c, &row, 1);
    }
    jpeg_finish_decompress(c);
    return true;
}

void jpeg_decode(const std::string& path, Opened& o, Info& info, std::vector<std::uint8_t>* out) {
    JpegRead st;
    if (jpeg_run(st, o.f.get(), path, info, out)) return;
    const auto& e = st.err;
    if (e.code == -1) throw ImageError(path, fmt::format("JPEG with over {} progressive scans: refused", kMaxJpegScans));
    if (e.code == JERR_BAD_PRECISION) bad_depth(path, st.cinfo.data_precision);
    if (e.code == JWRN_JPEG_EOF || e.code == JERR_INPUT_EOF || e.code == JERR_INPUT_EMPTY)
        throw ImageError(path, fmt::format("truncated JPEG: the file ends before the image does (libjpeg: {})", e.message));
    throw ImageError(path, fmt::format("corrupt JPEG data (libjpeg: {})", e.message));
}

// ---- TIFF ----

// Keeps the first message in the std::string at `user`.
int tiff_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
    auto* error = static_cast<std::string*>(user);
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    if (error->empty()) *error = module && *module ? fmt::format("{}: {}", module, buf) : std::string(buf);
    return 1;
}

// libtiff's JPEG codec passes libjpeg's corrupt-data warnings on as warnings under the
// module "JPEGLib": errors here, as for a JPEG file. Other warnings (odd tags) are harmless.
int tiff_warning(TIFF* tif, void* user, const char* module, const char* fmt, va_list ap) {
    if (module && std::strcmp(module, "JPEGLib") == 0) return tiff_error(tif, user, module, fmt, ap);
    return 1;
}

struct TiffClose { void operator()(TIFF* t) const { TIFFClose(t); } };

[[noreturn]] void tiff_corrupt(const std::string& path, const std::string& e) {
    throw ImageError(path, fmt::format("corrupt or truncated TIFF data (libtiff: {})", e.empty() ? "short read" : e));
}

// Plain 8-bit grey or RGB (+ alpha), interleaved, top row first: what patch exporters write,
// read strip by strip or tile by tile. TIFFRGBAImage is not used for these: libtiff 4.5
// misplaces the grey+alpha pixels of partial tiles, and the alpha rule is then ours.
void tiff_plain(TIFF* t, const std::string& path, const std::string& error, std::uint32_t w, std::uint32_t h,
                int spp, Alpha mode, std::vector<std::uint8_t>& out) {
    const bool tiled = TIFFIsTiled(t);
    std::uint32_t tw = w, th = 0;
    if (tiled) TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw), TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    else TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &th), th = std::min(th, h);
    if (tw == 0 || th == 0 || std::uint64_t(tw) * th > std::max<std::uint64_t>(std::uint64_t(w) * h, 1u << 24))
        throw ImageError(path, fmt::format("TIFF {} of {} x {} pixels for a {} x {} image", tiled ? "tiles" : "strips", tw, th, w, h));
    std::vector<std::uint8_t> buf(std::size_t(tw) * th * spp);
    for (std::uint32_t y0 = 0; y0 < h; y0 += th) {
        const std::uint32_t rows = std::min(th, h - y0);
        for (std::uint32_t x0 = 0; x0 < w; x0 += tw) {
            const auto want = static_cast<tmsize_t>(tw) * (tiled ? th : rows) * spp;  // the last strip is short
            const tmsize_t got = tiled ? TIFFReadEncodedTile(t, TIFFComputeTile(t, x0, y0, 0, 0), buf.data(), want)
                                       : TIFFReadEncodedStrip(t, TIFFComputeStrip(t, y0, 0), buf.data(), want);
            if (got != want || !error.empty()) tiff_corrupt(path, error);
            for (std::uint32_t r = 0; r < rows; ++r)
                to_rgb(buf.data() + std::size_t(r) * tw * spp, spp, std::min(tw, w - x0),
                       out.data() + (std::size_t(y0 + r) * w + x0) * 3, mode);
        }
    }
}

void tiff_decode(const std::string& path, Info& info, std::vector<std::uint8_t>* out) {
    std::string error;  // the first error, or libjpeg's first warning inside libtiff
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_error, &error);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_warning, &error);
    // "m": read(), not mmap(): a file truncated while mapped would raise SIGBUS.
    std::unique_ptr<TIFF, TiffClose> tif(TIFFOpenExt(path.c_str(), "rm", opts));
    TIFFOpenOptionsFree(opts);
    if (!tif) throw ImageError(path, fmt::format("not a readable TIFF (libtiff: {})", error));
    TIFF* t = tif.get();
    std::uint32_t w = 0, h = 0;
    std::uint16_t spp = 1, bits = 1, format = 1, photometric = PHOTOMETRIC_MINISBLACK, orientation = 1, planar = 1;
    std::uint16_t compression = 1, extras = 0, *extra = nullptr;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w), TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp), TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &format), TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric);
    TIFFGetFieldDefaulted(t, TIFFTAG_ORIENTATION, &orientation), TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetField(t, TIFFTAG_EXTRASAMPLES, &extras, &extra), TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &compression);
    info.width = w, info.height = h;
    info.channels = photometric == PHOTOMETRIC_PALETTE || photometric == PHOTOMETRIC_SEPARATED ? 3 : spp;
    if (format != SAMPLEFORMAT_UINT) {
        const char* what = format == SAMPLEFORMAT_IEEEFP ? "floating-point"
                           : format == SAMPLEFORMAT_INT  ? "signed integer" : "complex or untyped";
        throw ImageError(path, fmt::format("TIFF with {} samples is not supported (8-bit unsigned integers expected)", what));
    }
    if (bits != 8) bad_depth(path, bits);
    if (spp < 1 || spp > 4)
        throw ImageError(path, fmt::format("TIFF with {} samples per pixel is not supported (1 to 4 expected)", spp));
    check_size(path, Format::tiff, w, h);
    if (!TIFFIsCODECConfigured(compression))
        throw ImageError(path, fmt::format("TIFF compression scheme {} is not supported (libtiff has no codec for it)", compression));
    char emsg[1024] = "";
    if (!TIFFRGBAImageOK(t, emsg)) throw ImageError(path, fmt::format("TIFF colour model not supported (libtiff: {})", emsg));
    if (!out) return;
    error.clear();  // what reading the directory reported did not stop it
    out->resize(std::size_t(w) * h * 3);
    const int kind = extras ? extra[0] : EXTRASAMPLE_UNSPECIFIED;  // of the sample after the colours
    if (planar == PLANARCONFIG_CONTIG && orientation == ORIENTATION_TOPLEFT &&
        ((photometric == PHOTOMETRIC_MINISBLACK && spp <= 2) || (photometric == PHOTOMETRIC_RGB && spp >= 3))) {
        const Alpha mode = kind == EXTRASAMPLE_UNASSALPHA ? Alpha::straight
                           : kind == EXTRASAMPLE_ASSOCALPHA ? Alpha::premultiplied : Alpha::ignored;
        return tiff_plain(t, path, error, w, h, spp, mode, *out);
    }
    // Everything else (palette, YCbCr, CMYK, separate planes, other orientations) through
    // libtiff's RGBA interface, which premultiplies colour by unassociated alpha but hands
    // grey + alpha over as stored. An extra sample that is not alpha (img.alpha 0) is ignored.
    TIFFRGBAImage img;
    if (!TIFFRGBAImageBegin(&img, t, 1, emsg)) throw ImageError(path, fmt::format("TIFF cannot be read (libtiff: {})", emsg));
    const std::unique_ptr<TIFFRGBAImage, void (*)(TIFFRGBAImage*)> end(&img, TIFFRGBAImageEnd);
    img.req_orientation = ORIENTATION_TOPLEFT;
    const bool grey = photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE;
    const Alpha mode = !img.alpha ? Alpha::ignored : img.alpha == EXTRASAMPLE_UNASSALPHA && grey ? Alpha::straight : Alpha::premultiplied;
    std::vector<std::uint32_t> raster(std::size_t(w) * h);
    if (!TIFFRGBAImageGet(&img, raster.data(), w, h) || !error.empty()) tiff_corrupt(path, error);
    std::uint8_t* o = out->data();
    for (const std::uint32_t p : raster)  // A B G R from high to low byte
        for (int c = 0; c < 3; ++c) *o++ = on_white(p >> 8 * c & 0xff, TIFFGetA(p), mode);
}

void decode(const std::string& path, Info& info, std::vector<std::uint8_t>* out) {
    Opened o = open_image(path);
    info = Info{};
    info.format = o.format;
    switch (o.format) {
        case Format::png: return png_decode(path, o, info, out);
        case Format::jpeg: return jpeg_decode(path, o, info, out);
        case Format::tiff: o.f.reset(); return tiff_decode(path, info, out);
    }
}

}  // namespace

Info read_info(const std::string& path) {
    Info info;
    decode(path, info, nullptr);
    return info;
}

std::vector<std::uint8_t> decode_rgb(const std::string& path, Info* info) {
    Info local;
    std::vector<std::uint8_t> rgb;
    decode(path, info ? *info : local, &rgb);
    return rgb;
}

}  // namespace flowinfer::image
