// Single-image decoder (stages/image/decode.hpp): PNG of every colour type, JPEG, TIFF
// (striped, tiled, each kind of alpha, and the layouts left to libtiff's RGBA interface),
// checked against the pixels written: exact where the format is lossless, alpha composited
// on white by the formula computed here. And the refusals, each checked for the exception
// type, the path and the phrase that names the problem, with nothing on stderr.
//
// Thread safety: single-threaded tests; files under a temporary directory removed at the end.
#define BOOST_TEST_MODULE image_decode
#include <boost/test/unit_test.hpp>

#include "tests/test_support.hpp"

#include "stages/image/decode.hpp"

#include <png.h>
#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include <fcntl.h>
#include <unistd.h>

using namespace flowinfer;
using Bytes = std::vector<std::uint8_t>;

namespace {

std::string tmp(const std::string& name) {
    static const fit::TempDir dir;  // removed when the test ends
    return dir / name;
}

Bytes random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    Bytes b(n);
    for (auto& v : b) v = static_cast<std::uint8_t>(rng() & 0xff);
    return b;
}

// Written here rather than taken from decode.cpp: round((a*c + (255-a)*255) / 255).
std::uint8_t over_white(int c, int a) { return static_cast<std::uint8_t>(std::lround((a * c + (255.0 - a) * 255) / 255)); }

Bytes grey_to_rgb(const Bytes& g) {
    Bytes out;
    for (std::uint8_t v : g) out.insert(out.end(), {v, v, v});
    return out;
}

// libpng's full write API, for what the simplified one cannot write: palettes, low bit
// depths, interlacing. `rows` holds packed rows of the given bit depth.
void write_png_raw(const std::string& path, int w, int h, int depth, int type, const Bytes& packed, bool interlace = false,
                   const std::vector<png_color>& palette = {}, const Bytes& trns = {}) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    BOOST_REQUIRE(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    const std::size_t stride = packed.size() / h;
    std::vector<png_bytep> rows(h);
    for (int y = 0; y < h; ++y) rows[y] = const_cast<png_bytep>(packed.data()) + stride * y;
    bool ok = false;
    if (!setjmp(png_jmpbuf(png))) {
        png_init_io(png, f);
        png_set_IHDR(png, info, w, h, depth, type, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
        if (!trns.empty()) png_set_tRNS(png, info, trns.data(), static_cast<int>(trns.size()), nullptr);
        png_write_info(png, info);
        png_write_image(png, rows.data());
        png_write_end(png, nullptr);
        ok = true;
    }
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    BOOST_REQUIRE_MESSAGE(ok, "cannot write " << path);
}

std::uint32_t crc32(const std::uint8_t* p, std::size_t n) {
    std::uint32_t c = 0xffffffffu;
    for (std::size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

// A PNG signature and IHDR (RGB, 8-bit) claiming w x h, with a valid CRC, and nothing else.
void write_png_header(const std::string& path, std::uint32_t w, std::uint32_t h) {
    Bytes b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (std::uint32_t v : {w, h}) b.insert(b.end(), {std::uint8_t(v >> 24), std::uint8_t(v >> 16), std::uint8_t(v >> 8), std::uint8_t(v)});
    b.insert(b.end(), {8, 2, 0, 0, 0});
    const std::uint32_t crc = crc32(b.data() + 12, 17);
    b.insert(b.end(), {std::uint8_t(crc >> 24), std::uint8_t(crc >> 16), std::uint8_t(crc >> 8), std::uint8_t(crc)});
    fit::write_text(path, std::string(b.begin(), b.end()));
}

// How write_tiff lays a TIFF out: 8-bit unsigned samples, deflate, alpha unassociated when
// spp is 2 or 4; tiled when `tile` > 0, else striped.
struct TiffSpec {
    int spp = 3, tile = 0, rows_per_strip = 8;
    int pages = 1;  // page k holds the samples + k
    int bits = 8, format = SAMPLEFORMAT_UINT, photometric = -1;  // -1: grey or RGB by spp
    std::uint16_t extra = EXTRASAMPLE_UNASSALPHA;
    bool separate = false;  // one plane per sample (striped only)
    bool jpeg = false;      // JPEG-compressed YCbCr (RGB in, 3 samples)
    TiffSpec(int s, int t, int r) : spp(s), tile(t), rows_per_strip(r) {}
};

void write_tiff(const std::string& path, const Bytes& px, int w, int h, const TiffSpec& s) {
    TIFF* t = TIFFOpen(path.c_str(), "w");
    BOOST_REQUIRE(t);
    const int spp = s.spp;
    for (int page = 0; page < s.pages; ++page) {
        Bytes p = px;
        for (auto& v : p) v = static_cast<std::uint8_t>(v + page);
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, spp);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, s.bits);
        TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, s.format);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, s.photometric >= 0 ? s.photometric : spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, s.separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_COMPRESSION, s.jpeg ? COMPRESSION_JPEG : COMPRESSION_ADOBE_DEFLATE);
        if (s.jpeg) {
            TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
            TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);  // libjpeg converts from RGB
            TIFFSetField(t, TIFFTAG_JPEGQUALITY, 95);
        }
        if (spp == 2 || spp == 4) TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &s.extra);
        const std::size_t stride = std::size_t(w) * spp * s.bits / 8;
        if (s.tile > 0) {
            const int tile = s.tile;
            TIFFSetField(t, TIFFTAG_TILEWIDTH, tile);
            TIFFSetField(t, TIFFTAG_TILELENGTH, tile);
            Bytes buf(std::size_t(tile) * tile * spp * s.bits / 8);
            for (int ty = 0; ty < h; ty += tile)
                for (int tx = 0; tx < w; tx += tile) {
                    std::fill(buf.begin(), buf.end(), 0);
                    for (int y = ty; y < std::min(h, ty + tile); ++y)
                        for (int x = tx; x < std::min(w, tx + tile); ++x)
                            std::copy_n(&p[y * stride + std::size_t(x) * spp], spp,
                                        &buf[(std::size_t(y - ty) * tile + (x - tx)) * spp]);
                    BOOST_REQUIRE(TIFFWriteTile(t, buf.data(), tx, ty, 0, 0) > 0);
                }
        } else {
            TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, s.rows_per_strip);
            Bytes plane(w);
            for (int c = 0; c < (s.separate ? spp : 1); ++c)  // separate: every row of plane 0, then plane 1...
                for (int y = 0; y < h; ++y) {
                    if (!s.separate) {
                        BOOST_REQUIRE(TIFFWriteScanline(t, &p[y * stride], y, 0) == 1);
                        continue;
                    }
                    for (int x = 0; x < w; ++x) plane[x] = p[y * stride + std::size_t(x) * spp + c];
                    BOOST_REQUIRE(TIFFWriteScanline(t, plane.data(), y, static_cast<std::uint16_t>(c)) == 1);
                }
        }
        BOOST_REQUIRE(TIFFWriteDirectory(t));
    }
    TIFFClose(t);
}

void truncate_copy(const std::string& from, const std::string& to, double share) {
    const std::string all = fit::read_text(from);
    fit::write_text(to, all.substr(0, static_cast<std::size_t>(all.size() * share)));
}

void check_info(const std::string& path, image::Format f, int w, int h, int channels) {
    const image::Info info = image::read_info(path);
    BOOST_TEST((info.format == f), path << ": " << image::to_string(info.format));
    BOOST_TEST(info.width == w);
    BOOST_TEST(info.height == h);
    BOOST_TEST(info.channels == channels);
}

void check_exact(const std::string& path, const Bytes& want) {
    image::Info info;
    const Bytes got = image::decode_rgb(path, &info);
    BOOST_TEST(info.width * info.height * 3 == std::int64_t(got.size()));
    BOOST_TEST_REQUIRE(got.size() == want.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] != want[i];
    BOOST_TEST(bad == 0u, path << ": " << bad << " bytes differ");
}

bool has(const std::string& s, const std::string& part) {
    if (s.find(part) != std::string::npos) return true;
    BOOST_TEST_MESSAGE("'" << part << "' not in: " << s);
    return false;
}

// decode_rgb (and read_info when the header alone tells) throw SlideError naming the path.
void check_refused(const std::string& path, const std::string& phrase, bool header_too = true) {
    auto ok = [&](const SlideError& e) { return e.slide() == path && has(e.what(), path) && has(e.what(), phrase); };
    BOOST_CHECK_EXCEPTION(image::decode_rgb(path), SlideError, ok);
    if (header_too) BOOST_CHECK_EXCEPTION(image::read_info(path), SlideError, ok);
}

// Points stderr (fd 2) at `path` until destroyed.
class StderrToFile {
public:
    explicit StderrToFile(std::string path) : path_(std::move(path)) {
        std::fflush(stderr);
        saved_ = ::dup(2);
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        BOOST_REQUIRE(saved_ >= 0 && fd >= 0);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~StderrToFile() {
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
    }
    std::string text() const {
        std::fflush(stderr);
        return fit::read_text(path_);
    }

private:
    std::string path_;
    int saved_ = -1;
};

}  // namespace

BOOST_AUTO_TEST_CASE(png_colour_types) {
    const int w = 37, h = 23;
    const std::size_t n = std::size_t(w) * h;
    const Bytes rgb = random_bytes(n * 3, 1), grey = random_bytes(n, 2);
    fit::write_png_image(tmp("rgb.png"), rgb, w, h, 3);
    check_info(tmp("rgb.png"), image::Format::png, w, h, 3);
    check_exact(tmp("rgb.png"), rgb);

    Bytes rgba = random_bytes(n * 4, 3), want(n * 3);
    for (std::size_t i = 0; i < n; ++i) {
        if (i % 5 == 0) rgba[4 * i + 3] = i % 10 ? 0 : 255;  // the extremes, besides random alphas
        for (int c = 0; c < 3; ++c) want[3 * i + c] = over_white(rgba[4 * i + c], rgba[4 * i + 3]);
    }
    fit::write_png_image(tmp("rgba.png"), rgba, w, h, 4);
    check_info(tmp("rgba.png"), image::Format::png, w, h, 4);
    check_exact(tmp("rgba.png"), want);

    fit::write_png_image(tmp("grey.png"), grey, w, h, 1);
    check_info(tmp("grey.png"), image::Format::png, w, h, 1);
    check_exact(tmp("grey.png"), grey_to_rgb(grey));

    const Bytes ga = random_bytes(n * 2, 4);
    Bytes ga_want;
    for (std::size_t i = 0; i < n; ++i) ga_want.insert(ga_want.end(), 3, over_white(ga[2 * i], ga[2 * i + 1]));
    write_png_raw(tmp("ga.png"), w, h, 8, PNG_COLOR_TYPE_GRAY_ALPHA, ga);
    check_info(tmp("ga.png"), image::Format::png, w, h, 2);
    check_exact(tmp("ga.png"), ga_want);

    write_png_raw(tmp("rgb-adam7.png"), w, h, 8, PNG_COLOR_TYPE_RGB, rgb, true);
    check_exact(tmp("rgb-adam7.png"), rgb);
}

BOOST_AUTO_TEST_CASE(png_palette_and_low_bit_grey) {
    const int w = 13, h = 9;  // 13: rows end mid-byte at 1, 2 and 4 bits
    const std::vector<png_color> pal = {{255, 0, 0}, {0, 128, 255}, {10, 20, 30}, {200, 200, 200}, {0, 0, 0}};
    const Bytes alpha = {0, 128, 255, 64};  // tRNS for the first 4 entries; the 5th is opaque
    Bytes idx(std::size_t(w) * h), want, want_opaque;
    for (std::size_t i = 0; i < idx.size(); ++i) {
        idx[i] = static_cast<std::uint8_t>((i * 7 + i / w) % pal.size());
        const png_color& c = pal[idx[i]];
        const int a = idx[i] < alpha.size() ? alpha[idx[i]] : 255;
        want.insert(want.end(), {over_white(c.red, a), over_white(c.green, a), over_white(c.blue, a)});
        want_opaque.insert(want_opaque.end(), {c.red, c.green, c.blue});
    }
    write_png_raw(tmp("pal.png"), w, h, 8, PNG_COLOR_TYPE_PALETTE, idx, false, pal, alpha);
    check_info(tmp("pal.png"), image::Format::png, w, h, 4);
    check_exact(tmp("pal.png"), want);
    // 4-bit palette without tRNS: two indices a byte, high nibble first.
    Bytes packed4;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; x += 2)
            packed4.push_back(std::uint8_t(idx[y * w + x] << 4 | (x + 1 < w ? idx[y * w + x + 1] : 0)));
    write_png_raw(tmp("pal4.png"), w, h, 4, PNG_COLOR_TYPE_PALETTE, packed4, false, pal);
    check_info(tmp("pal4.png"), image::Format::png, w, h, 3);
    check_exact(tmp("pal4.png"), want_opaque);

    for (int depth : {1, 2, 4}) {
        const int levels = (1 << depth) - 1;
        Bytes packed, grey;
        for (int y = 0; y < h; ++y) {
            int acc = 0, nbits = 0;
            for (int x = 0; x < w; ++x) {
                const int v = (x * 3 + y * 5) % (levels + 1);
                grey.push_back(static_cast<std::uint8_t>(v * 255 / levels));  // bit replication = scaling
                acc = acc << depth | v, nbits += depth;
                if (nbits == 8) packed.push_back(std::uint8_t(acc)), acc = 0, nbits = 0;
            }
            if (nbits) packed.push_back(std::uint8_t(acc << (8 - nbits)));
        }
        const std::string path = tmp("grey" + std::to_string(depth) + ".png");
        write_png_raw(path, w, h, depth, PNG_COLOR_TYPE_GRAY, packed);
        check_info(path, image::Format::png, w, h, 1);
        check_exact(path, grey_to_rgb(grey));
    }
}

BOOST_AUTO_TEST_CASE(jpeg_rgb_and_grey) {
    const int w = 96, h = 64;
    Bytes rgb, grey;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            rgb.push_back(static_cast<std::uint8_t>(40 + 2 * x));
            rgb.push_back(static_cast<std::uint8_t>(30 + 3 * y));
            rgb.push_back(static_cast<std::uint8_t>(128 + 100 * std::sin((x + y) / 15.0)));
            grey.push_back(static_cast<std::uint8_t>(128 + 90 * std::cos(x / 11.0) * std::sin(y / 9.0)));
        }
    fit::write_jpeg_image(tmp("rgb.jpg"), rgb, w, h, 3, 100);
    check_info(tmp("rgb.jpg"), image::Format::jpeg, w, h, 3);
    const Bytes got = image::decode_rgb(tmp("rgb.jpg"));
    BOOST_TEST_REQUIRE(got.size() == rgb.size());
    double err = 0;
    for (std::size_t i = 0; i < got.size(); ++i) err += std::abs(int(got[i]) - int(rgb[i]));
    BOOST_TEST_MESSAGE("JPEG q=100 RGB: mean |error| " << err / got.size());
    BOOST_TEST(err / got.size() < 3);

    fit::write_jpeg_image(tmp("grey.jpg"), grey, w, h, 1, 100);
    check_info(tmp("grey.jpg"), image::Format::jpeg, w, h, 1);
    const Bytes g = image::decode_rgb(tmp("grey.jpg"));
    BOOST_TEST_REQUIRE(g.size() == grey.size() * 3);
    double gerr = 0;
    std::size_t unequal = 0;
    for (std::size_t i = 0; i < grey.size(); ++i) {
        unequal += g[3 * i] != g[3 * i + 1] || g[3 * i] != g[3 * i + 2];
        gerr += std::abs(int(g[3 * i]) - int(grey[i]));
    }
    BOOST_TEST(unequal == 0u);
    BOOST_TEST(gerr / grey.size() < 3);
}

BOOST_AUTO_TEST_CASE(tiff_striped_tiled_grey_alpha_pages) {
    // Sizes not multiples of the tile or strip: partial tiles and a short last strip.
    const int w = 301, h = 533;
    const Bytes rgb = random_bytes(std::size_t(w) * h * 3, 5), grey = random_bytes(std::size_t(w) * h, 6);
    write_tiff(tmp("striped.tif"), rgb, w, h, TiffSpec(3, 0, 7));
    check_info(tmp("striped.tif"), image::Format::tiff, w, h, 3);
    check_exact(tmp("striped.tif"), rgb);
    write_tiff(tmp("tiled.tif"), rgb, w, h, TiffSpec(3, 32, 0));
    check_info(tmp("tiled.tif"), image::Format::tiff, w, h, 3);
    check_exact(tmp("tiled.tif"), rgb);
    fit::write_gray_tiff(tmp("grey.tif"), grey, w, h);
    check_info(tmp("grey.tif"), image::Format::tiff, w, h, 1);
    check_exact(tmp("grey.tif"), grey_to_rgb(grey));
    write_tiff(tmp("grey-tiled.tif"), grey, w, h, TiffSpec(1, 16, 0));
    check_exact(tmp("grey-tiled.tif"), grey_to_rgb(grey));

    // RGBA with unassociated alpha, with associated alpha (colour <= alpha), with an extra
    // sample that is not alpha (ignored).
    Bytes rgba = random_bytes(std::size_t(w) * h * 4, 7), assoc = rgba, want, want_assoc, want_extra;
    for (std::size_t i = 0; i < rgba.size(); i += 4)
        for (int c = 0; c < 3; ++c) {
            assoc[i + c] = static_cast<std::uint8_t>(rgba[i + c] * rgba[i + 3] / 255);
            want.push_back(over_white(rgba[i + c], rgba[i + 3]));
            want_assoc.push_back(static_cast<std::uint8_t>(assoc[i + c] + 255 - rgba[i + 3]));
            want_extra.push_back(rgba[i + c]);
        }
    write_tiff(tmp("rgba.tif"), rgba, w, h, TiffSpec(4, 0, 16));
    check_info(tmp("rgba.tif"), image::Format::tiff, w, h, 4);
    check_exact(tmp("rgba.tif"), want);
    TiffSpec spec(4, 64, 0);
    spec.extra = EXTRASAMPLE_ASSOCALPHA;
    write_tiff(tmp("rgba-assoc.tif"), assoc, w, h, spec);
    check_exact(tmp("rgba-assoc.tif"), want_assoc);
    spec.extra = EXTRASAMPLE_UNSPECIFIED;
    write_tiff(tmp("rgb-extra.tif"), rgba, w, h, spec);
    check_exact(tmp("rgb-extra.tif"), want_extra);

    // Grey + alpha in partial tiles (which libtiff 4.5's RGBA interface misplaces).
    const Bytes ga = random_bytes(std::size_t(w) * h * 2, 10);
    Bytes ga_want;
    for (std::size_t i = 0; i < ga.size(); i += 2) ga_want.insert(ga_want.end(), 3, over_white(ga[i], ga[i + 1]));
    write_tiff(tmp("ga.tif"), ga, w, h, TiffSpec(2, 32, 0));
    check_info(tmp("ga.tif"), image::Format::tiff, w, h, 2);
    check_exact(tmp("ga.tif"), ga_want);

    write_tiff(tmp("pages.tif"), rgb, 40, 30, [] { TiffSpec s(3, 0, 8); s.pages = 3; return s; }());
    check_exact(tmp("pages.tif"), Bytes(rgb.begin(), rgb.begin() + 40 * 30 * 3));
}

// What the plain strip/tile reader leaves to libtiff's RGBA interface.
BOOST_AUTO_TEST_CASE(tiff_through_libtiff_rgba) {
    const int w = 150, h = 97;
    const Bytes rgb = random_bytes(std::size_t(w) * h * 3, 11), grey = random_bytes(std::size_t(w) * h, 12);
    TiffSpec separate(3, 0, 10);
    separate.separate = true;
    write_tiff(tmp("separate.tif"), rgb, w, h, separate);
    check_exact(tmp("separate.tif"), rgb);

    TiffSpec white(1, 0, 10);
    white.photometric = PHOTOMETRIC_MINISWHITE;
    write_tiff(tmp("miniswhite.tif"), grey, w, h, white);
    Bytes inverted;
    for (std::uint8_t v : grey) inverted.insert(inverted.end(), 3, static_cast<std::uint8_t>(255 - v));
    check_exact(tmp("miniswhite.tif"), inverted);

    Bytes smooth;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            smooth.insert(smooth.end(), {std::uint8_t(x), std::uint8_t(2 * y), std::uint8_t(128 + 100 * std::sin((x + y) / 15.0))});
    TiffSpec jpeg(3, 32, 0);
    jpeg.jpeg = true;
    write_tiff(tmp("jpeg.tif"), smooth, w, h, jpeg);
    check_info(tmp("jpeg.tif"), image::Format::tiff, w, h, 3);
    const Bytes got = image::decode_rgb(tmp("jpeg.tif"));
    BOOST_TEST_REQUIRE(got.size() == smooth.size());
    double err = 0;
    for (std::size_t i = 0; i < got.size(); ++i) err += std::abs(int(got[i]) - int(smooth[i]));
    BOOST_TEST_MESSAGE("JPEG-in-TIFF (YCbCr, q=95): mean |error| " << err / got.size());
    BOOST_TEST(err / got.size() < 3);

    // An EOI marker in the middle of one tile's scan data: libjpeg only warns ("premature end
    // of data segment") and pads the tile; the warning reaches us through libtiff.
    std::uint64_t *offsets = nullptr, *counts = nullptr, at = 0;
    TIFF* t = TIFFOpen(tmp("jpeg.tif").c_str(), "r");
    BOOST_REQUIRE(t && TIFFGetField(t, TIFFTAG_TILEOFFSETS, &offsets) && TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts));
    at = offsets[5] + counts[5] / 2;
    TIFFClose(t);
    std::string bytes = fit::read_text(tmp("jpeg.tif"));
    bytes[at] = '\xff', bytes[at + 1] = '\xd9';
    fit::write_text(tmp("jpeg-corrupt.tif"), bytes);
    check_refused(tmp("jpeg-corrupt.tif"), "corrupt or truncated TIFF data (libtiff: JPEGLib: Corrupt JPEG data", false);
}

// Each refusal with stderr pointed at a file: the libraries' default handlers, which print,
// must all have been replaced.
BOOST_AUTO_TEST_CASE(refusals) {
    const StderrToFile quiet(tmp("stderr.txt"));
    const int w = 64, h = 48;
    const Bytes rgb = random_bytes(std::size_t(w) * h * 3, 8);
    fit::write_png_image(tmp("full.png"), rgb, w, h, 3);
    truncate_copy(tmp("full.png"), tmp("half.png"), 0.5);
    check_refused(tmp("half.png"), "truncated PNG", false);
    BOOST_TEST(image::read_info(tmp("half.png")).width == w);  // the header is intact

    const int jw = 512, jh = 384;  // big enough that most of the file is scan data
    Bytes smooth;
    for (int i = 0; i < jw * jh * 3; ++i) smooth.push_back(static_cast<std::uint8_t>(i / 3 % jw / 2 + i % 3 * 40));
    fit::write_jpeg_image(tmp("full.jpg"), smooth, jw, jh);
    truncate_copy(tmp("full.jpg"), tmp("part.jpg"), 0.6);
    check_refused(tmp("part.jpg"), "truncated JPEG: the file ends before the image does", false);
    // An EOI marker inside the scan data: libjpeg only warns ("premature end of data
    // segment") and pads the rest with grey.
    std::string corrupt = fit::read_text(tmp("full.jpg"));
    corrupt[corrupt.size() * 7 / 10] = '\xff', corrupt[corrupt.size() * 7 / 10 + 1] = '\xd9';
    fit::write_text(tmp("corrupt.jpg"), corrupt);
    check_refused(tmp("corrupt.jpg"), "corrupt JPEG data (libjpeg: Corrupt JPEG data", false);

    fit::write_jpeg_image(tmp("cmyk.jpg"), random_bytes(std::size_t(w) * h * 4, 9), w, h, 4);
    check_refused(tmp("cmyk.jpg"), "CMYK JPEG is not supported: convert it to RGB");

    fit::write_png16_image(tmp("grey16.png"), std::vector<std::uint16_t>(std::size_t(w) * h, 40000), w, h, 1);
    check_refused(tmp("grey16.png"), "16-bit images are not supported (8 bits per sample expected)");
    fit::write_png16_image(tmp("rgb16.png"), std::vector<std::uint16_t>(std::size_t(w) * h * 3, 7), w, h, 3);
    check_refused(tmp("rgb16.png"), "16-bit images are not supported (8 bits per sample expected)");
    TiffSpec spec(3, 0, 8);
    spec.bits = 16;
    write_tiff(tmp("rgb16.tif"), Bytes(std::size_t(w) * h * 6, 1), w, h, spec);
    check_refused(tmp("rgb16.tif"), "16-bit images are not supported (8 bits per sample expected)");
    spec = TiffSpec(1, 0, 8);
    spec.bits = 32, spec.format = SAMPLEFORMAT_IEEEFP;
    write_tiff(tmp("float.tif"), Bytes(std::size_t(w) * h * 4, 0), w, h, spec);
    check_refused(tmp("float.tif"), "TIFF with floating-point samples is not supported");
    spec.bits = 8, spec.format = SAMPLEFORMAT_INT;
    write_tiff(tmp("signed.tif"), Bytes(std::size_t(w) * h, 0), w, h, spec);
    check_refused(tmp("signed.tif"), "TIFF with signed integer samples is not supported");

    write_png_header(tmp("zero.png"), 0, 10);
    check_refused(tmp("zero.png"), "0 x 10 pixels: an empty image cannot be decoded");
    write_png_header(tmp("huge.png"), 100000, 100000);
    check_refused(tmp("huge.png"), "too large (the limit is 2^31 pixels and 4 GiB as RGB)");

    fit::write_text(tmp("x.png"), "hello, I am text\n");
    check_refused(tmp("x.png"), "not a PNG, JPEG or TIFF image: the first bytes (68 65 6c 6c 6f 2c 20 49)");
    check_refused(tmp("x.png"), "supported formats: PNG, JPEG, TIFF");
    fit::write_text(tmp("empty.jpg"), "");
    check_refused(tmp("empty.jpg"), "empty file (0 bytes)");
    fit::write_text(tmp("sig-only.png"), "\x89PNG\r\n\x1a\n");
    check_refused(tmp("sig-only.png"), "PNG");
    check_refused(tmp("missing.png"), "cannot open the image file: No such file or directory");
    std::filesystem::create_directory(tmp("dir.png"));
    check_refused(tmp("dir.png"), "is a directory");
    BOOST_TEST(quiet.text() == "");
}
