// Aperio-style JPEG 2000 SVS slides: OpenJPEG encodes each tile as a raw J2K codestream and
// libtiff stores it as is (TIFFWriteRawTile). libtiff accepts Compression 33003 / 33005 though
// it has no codec for them: it only ever copies the bytes, as Aperio's own files need.
//
// Layout, as in Aperio's files (and as OpenSlide 3.4.1's aperio reader expects): directory 0
// the tiled level 0, whose ImageDescription starts "Aperio"; directory 1 a stripped thumbnail
// (OpenSlide lists it as the associated image "thumbnail"); then the tiled reduced levels,
// downsample 4 each, with the same tile size and compression.
//
// Thread safety: reentrant; tiles are rendered and encoded on the current oneTBB arena.
#include "pipeline/synthetic_jp2k.hpp"

#include "pipeline/synthetic_pixels.hpp"
#include "stages/atomic_file.hpp"
#include "stages/tiff/openjpeg.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tiffio.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace flowinfer {

namespace {

using tiff::Jp2kColour;

// Raw sample bits per coded bit of every codestream: lossy enough to keep files and encode
// time small, close enough that the slide still looks like its SyntheticPixels.
constexpr float kCompressionRatio = 12.0f;
constexpr int kThumbnailSide = 256;  // the thumbnail's longer side at most

struct Image {
    std::int64_t w = 0, h = 0;
    std::vector<std::uint8_t> rgb;
    const std::uint8_t* at(std::int64_t x, std::int64_t y) const { return &rgb[3 * static_cast<std::size_t>(y * w + x)]; }
};

// ---- JPEG 2000 encoding -------------------------------------------------------------------

// The codestream, collected in memory. J2K writing may seek back to patch a length.
struct Sink {
    std::vector<std::uint8_t> bytes;
    std::size_t pos = 0;
};

OPJ_SIZE_T sink_write(void* buf, OPJ_SIZE_T n, void* user) {
    auto& s = *static_cast<Sink*>(user);
    try {
        if (s.pos + n > s.bytes.size()) s.bytes.resize(s.pos + n);
    } catch (...) {
        return static_cast<OPJ_SIZE_T>(-1);  // OpenJPEG then fails the encode
    }
    std::memcpy(s.bytes.data() + s.pos, buf, n);
    s.pos += n;
    return n;
}

OPJ_OFF_T sink_skip(OPJ_OFF_T n, void* user) {
    auto& s = *static_cast<Sink*>(user);
    if (n < 0 && static_cast<std::uint64_t>(-n) > s.pos) return -1;
    s.pos = static_cast<std::size_t>(static_cast<OPJ_OFF_T>(s.pos) + n);
    return n;
}

OPJ_BOOL sink_seek(OPJ_OFF_T to, void* user) {
    if (to < 0) return OPJ_FALSE;
    static_cast<Sink*>(user)->pos = static_cast<std::size_t>(to);
    return OPJ_TRUE;
}


// As many wavelet levels as OpenJPEG's default (6) while the coarsest keeps >= 2 samples.
int resolutions(int side) {
    int n = 1;
    while (n < 6 && (side >> n) >= 2) ++n;
    return n;
}

inline OPJ_INT32 to_sample(double v) { return static_cast<OPJ_INT32>(std::clamp(std::lround(v), 0l, 255l)); }

// JFIF (full-range BT.601) YCbCr, chroma averaged over horizontal pixel pairs: what Aperio's
// 33003 stores and OpenSlide's tables invert.
void to_ycbcr(const std::uint8_t* rgb, int T, opj_image_comp_t* c) {
    for (int y = 0; y < T; ++y) {
        const std::uint8_t* row = rgb + static_cast<std::size_t>(y) * T * 3;
        for (int x = 0; x < T; ++x) {
            const std::uint8_t* p = row + 3 * x;
            c[0].data[static_cast<std::size_t>(y) * c[0].w + x] = to_sample(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]);
        }
        for (std::uint32_t i = 0; i < c[1].w; ++i) {
            const int x0 = 2 * static_cast<int>(i), n = std::min(2, T - x0);
            double r = 0, g = 0, b = 0;
            for (int k = 0; k < n; ++k) {
                r += row[3 * (x0 + k)];
                g += row[3 * (x0 + k) + 1];
                b += row[3 * (x0 + k) + 2];
            }
            r /= n, g /= n, b /= n;
            const std::size_t at = static_cast<std::size_t>(y) * c[1].w + i;
            c[1].data[at] = to_sample(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
            c[2].data[at] = to_sample(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
        }
    }
}

// A T x T RGB tile as a raw J2K codestream. Throws std::runtime_error.
std::vector<std::uint8_t> encode_tile(const std::uint8_t* rgb, int T, Jp2kColour colour) {
    const bool ycc = colour == Jp2kColour::ycbcr;
    const auto side = static_cast<OPJ_UINT32>(T), chroma_w = ycc ? (side + 1) / 2 : side;
    opj_image_cmptparm_t parm[3];
    std::memset(parm, 0, sizeof parm);
    for (int k = 0; k < 3; ++k) {
        parm[k].dx = ycc && k > 0 ? 2 : 1;
        parm[k].dy = 1;
        parm[k].w = k > 0 ? chroma_w : side;
        parm[k].h = side;
        parm[k].prec = 8;
        parm[k].sgnd = 0;
    }
    tiff::OpjImage image(
        opj_image_create(3, parm, ycc ? OPJ_CLRSPC_SYCC : OPJ_CLRSPC_SRGB));
    if (!image) throw std::runtime_error("OpenJPEG cannot allocate the image");
    image->x0 = image->y0 = 0;
    image->x1 = image->y1 = side;
    if (ycc) {
        to_ycbcr(rgb, T, image->comps);
    } else {
        const std::size_t n = static_cast<std::size_t>(T) * T;
        for (std::size_t i = 0; i < n; ++i)
            for (int k = 0; k < 3; ++k) image->comps[k].data[i] = rgb[3 * i + k];
    }

    opj_cparameters_t p;
    opj_set_default_encoder_parameters(&p);
    p.tcp_numlayers = 1;
    p.tcp_rates[0] = kCompressionRatio;
    p.cp_disto_alloc = 1;
    p.irreversible = 1;
    // RGB goes through the irreversible colour transform, as any JPEG 2000 RGB encoder does;
    // 33003's components are already YCbCr (and of unequal sizes, which the transform forbids).
    p.tcp_mct = ycc ? 0 : 1;
    p.numresolution = resolutions(static_cast<int>(std::min(side, chroma_w)));

    std::string error;
    tiff::OpjCodec codec(opj_create_compress(OPJ_CODEC_J2K));
    if (!codec) throw std::runtime_error("OpenJPEG cannot create an encoder");
    opj_set_info_handler(codec.get(), tiff::ignore_opj_message, nullptr);
    opj_set_warning_handler(codec.get(), tiff::ignore_opj_message, nullptr);
    opj_set_error_handler(codec.get(), tiff::keep_first_opj_error, &error);
    const auto fail = [&](const char* what) {
        throw std::runtime_error(error.empty() ? std::string(what) : fmt::format("{}: OpenJPEG error: {}", what, error));
    };
    if (!opj_setup_encoder(codec.get(), &p, image.get())) fail("cannot set up the JPEG 2000 encoder");
    opj_codec_set_threads(codec.get(), 0);  // the tiles are already encoded in parallel

    Sink sink;
    tiff::OpjStream stream(opj_stream_create(std::size_t(1) << 16, OPJ_FALSE));
    if (!stream) throw std::runtime_error("OpenJPEG cannot create an output stream");
    opj_stream_set_user_data(stream.get(), &sink, nullptr);
    opj_stream_set_write_function(stream.get(), sink_write);
    opj_stream_set_skip_function(stream.get(), sink_skip);
    opj_stream_set_seek_function(stream.get(), sink_seek);
    if (!opj_start_compress(codec.get(), image.get(), stream.get()) || !opj_encode(codec.get(), stream.get()) ||
        !opj_end_compress(codec.get(), stream.get()))
        fail("cannot encode a JPEG 2000 tile");
    return std::move(sink.bytes);
}

// ---- Pyramid -----------------------------------------------------------------------------

// Row j of `dst`, the 4x4 area average of an sw x sh level whose pixels `at(x, y)` gives; a box
// cut by the level's edge averages the pixels it holds.
template <class At>
void reduce_row(const At& at, std::int64_t sw, std::int64_t sh, std::int64_t j, Image& dst) {
    const std::int64_t y0 = 4 * j, y1 = std::min(sh, y0 + 4);
    std::uint8_t* out = &dst.rgb[3 * static_cast<std::size_t>(j * dst.w)];
    for (std::int64_t i = 0; i < dst.w; ++i, out += 3) {
        const std::int64_t x0 = 4 * i, x1 = std::min(sw, x0 + 4);
        unsigned sum[3] = {0, 0, 0};
        for (std::int64_t y = y0; y < y1; ++y)
            for (std::int64_t x = x0; x < x1; ++x) {
                const std::uint8_t* p = at(x, y);
                sum[0] += p[0], sum[1] += p[1], sum[2] += p[2];
            }
        const auto n = static_cast<unsigned>((x1 - x0) * (y1 - y0));
        for (int k = 0; k < 3; ++k) out[k] = static_cast<std::uint8_t>((sum[k] + n / 2) / n);
    }
}

// ---- TIFF --------------------------------------------------------------------------------

int keep_tiff_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
    auto& first = *static_cast<std::string*>(user);
    if (first.empty()) {
        char buf[1024];
        std::vsnprintf(buf, sizeof buf, fmt, ap);
        first = module && *module ? fmt::format("{}: {}", module, buf) : std::string(buf);
    }
    return 1;  // handled: libtiff prints nothing
}
int ignore_tiff_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// The file being written, under partial_path(path) until commit(); removed if never committed.
class SvsFile {
public:
    SvsFile(std::string path, bool bigtiff) : path_(std::move(path)), partial_(partial_path(path_)) {
        const int fd = ::open(partial_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) throw OutputError(path_, fmt::format("cannot create {}: {}", partial_, std::strerror(errno)));
        TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
        TIFFOpenOptionsSetErrorHandlerExtR(opts, keep_tiff_error, &error_);
        TIFFOpenOptionsSetWarningHandlerExtR(opts, ignore_tiff_warning, nullptr);
        tif_ = TIFFFdOpenExt(fd, partial_.c_str(), bigtiff ? "w8" : "w", opts);
        TIFFOpenOptionsFree(opts);
        if (!tif_) {
            ::close(fd);
            ::unlink(partial_.c_str());
            fail("cannot open TIFF for writing");
        }
    }
    ~SvsFile() {
        if (tif_) TIFFClose(tif_);
        if (!committed_) ::unlink(partial_.c_str());
    }
    SvsFile(const SvsFile&) = delete;
    SvsFile& operator=(const SvsFile&) = delete;

    [[noreturn]] void fail(const std::string& what) const {
        throw OutputError(path_, error_.empty() ? what : fmt::format("{}: {}", what, error_));
    }

    void begin_tiled(std::int64_t w, std::int64_t h, int T, Jp2kColour colour, const std::string& description) {
        common_tags(w, h, description);
        bool ok = TIFFSetField(tif_, TIFFTAG_TILEWIDTH, static_cast<std::uint32_t>(T)) == 1;
        ok &= TIFFSetField(tif_, TIFFTAG_TILELENGTH, static_cast<std::uint32_t>(T)) == 1;
        ok &= TIFFSetField(tif_, TIFFTAG_COMPRESSION,
                           colour == Jp2kColour::ycbcr ? 33003 : 33005) == 1;
        if (!ok || !error_.empty()) fail("cannot set the tags of a tiled directory");
    }
    void write_tile(std::uint32_t index, const std::vector<std::uint8_t>& bytes) {
        if (TIFFWriteRawTile(tif_, index, const_cast<std::uint8_t*>(bytes.data()),
                             static_cast<tmsize_t>(bytes.size())) < 0)
            fail(fmt::format("cannot write tile {}", index));
    }
    void end_directory(const std::string& what) {
        if (!TIFFWriteDirectory(tif_) || !error_.empty()) fail("cannot write the directory of " + what);
    }
    void write_thumbnail(const Image& img, const std::string& description) {
        common_tags(img.w, img.h, description);
        bool ok = TIFFSetField(tif_, TIFFTAG_COMPRESSION, COMPRESSION_NONE) == 1;
        ok &= TIFFSetField(tif_, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif_, 0)) == 1;
        if (!ok) fail("cannot set the thumbnail's tags");
        std::vector<std::uint8_t> row(static_cast<std::size_t>(img.w) * 3);  // libtiff may scribble on it
        for (std::int64_t y = 0; y < img.h; ++y) {
            std::memcpy(row.data(), img.at(0, y), row.size());
            if (TIFFWriteScanline(tif_, row.data(), static_cast<std::uint32_t>(y), 0) < 0)
                fail("cannot write the thumbnail");
        }
        end_directory("the thumbnail");
    }
    // Closes, syncs and renames the file to its final name.
    void commit() {
        TIFFClose(tif_);
        tif_ = nullptr;
        if (!error_.empty()) fail("cannot close TIFF");
        committed_ = true;  // sync_and_commit removes the partial file itself when it fails
        sync_and_commit(partial_, path_);
    }

private:
    void common_tags(std::int64_t w, std::int64_t h, const std::string& description) {
        bool ok = TIFFSetField(tif_, TIFFTAG_IMAGEWIDTH, static_cast<std::uint32_t>(w)) == 1;
        ok &= TIFFSetField(tif_, TIFFTAG_IMAGELENGTH, static_cast<std::uint32_t>(h)) == 1;
        ok &= TIFFSetField(tif_, TIFFTAG_BITSPERSAMPLE, 8) == 1;
        ok &= TIFFSetField(tif_, TIFFTAG_SAMPLESPERPIXEL, 3) == 1;
        ok &= TIFFSetField(tif_, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) == 1;
        // Aperio says RGB for both codecs: the colour space lives in the codestream.
        ok &= TIFFSetField(tif_, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB) == 1;
        ok &= TIFFSetField(tif_, TIFFTAG_IMAGEDESCRIPTION, description.c_str()) == 1;
        if (!ok) fail("cannot set the tags of a directory");
    }

    std::string path_, partial_, error_;
    TIFF* tif_ = nullptr;
    bool committed_ = false;
};

// Encodes the tiles of one row in parallel (`fill(tx, buf)` makes tile tx's pixels), then
// stores them in order.
template <class Fill>
void write_tile_row(SvsFile& file, std::int64_t ty, std::int64_t tiles_x, int T, Jp2kColour colour,
                    const Fill& fill) {
    std::vector<std::vector<std::uint8_t>> coded(static_cast<std::size_t>(tiles_x));
    try {
        tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, tiles_x, 1), [&](const tbb::blocked_range<std::int64_t>& r) {
            for (std::int64_t tx = r.begin(); tx < r.end(); ++tx)
                coded[static_cast<std::size_t>(tx)] = encode_tile(fill(tx), T, colour);
        });
    } catch (const std::exception& e) {
        file.fail(e.what());
    }
    for (std::int64_t tx = 0; tx < tiles_x; ++tx)
        file.write_tile(static_cast<std::uint32_t>(ty * tiles_x + tx), coded[static_cast<std::size_t>(tx)]);
}

}  // namespace

void write_synthetic_jp2k_svs(const std::string& path, const SyntheticSlideSpec& spec, Jp2kColour colour,
                              int tile) {
    const std::int64_t W = spec.width, H = spec.height;
    const int T = tile;
    if (W <= 0 || H <= 0 || W > 0xffffffffll || H > 0xffffffffll)
        throw OutputError(path, fmt::format("invalid image size {}x{}", W, H));
    if (T < 16 || T > 4096 || T % 16 != 0)
        throw OutputError(path, fmt::format("tile size {} is not a multiple of 16 in 16..4096", T));

    std::vector<std::pair<std::int64_t, std::int64_t>> dims{{W, H}};
    while (std::max(dims.back().first, dims.back().second) > T)
        dims.emplace_back(std::max<std::int64_t>(1, dims.back().first / 4),
                          std::max<std::int64_t>(1, dims.back().second / 4));

    const char* codec = colour == Jp2kColour::ycbcr ? "J2K/YUV16" : "J2K/RGB";
    const std::string head = fmt::format("Aperio Image Library v10.0.50\r\n{}x{} [0,0 {}x{}] ({}x{})", W, H, W, H, T, T);
    std::string props = fmt::format("|Filename = flowinfer-synthetic|Seed = {}", spec.seed);
    if (spec.mpp > 0)
        props = fmt::format("|AppMag = {}|MPP = {}", std::lround(10 / spec.mpp), spec.mpp) + props;

    // Under 2 GiB of raw level-0 pixels the compressed file is far below classic TIFF's 4 GiB.
    SvsFile file(path, W * H * 3 > (std::int64_t(2) << 30));
    const SyntheticPixels pixels(spec);

    // Level 0, one row of tiles at a time; level 1 and the thumbnail are gathered on the way.
    const std::int64_t tiles_x = (W + T - 1) / T, tiles_y = (H + T - 1) / T;
    const std::size_t tile_bytes = static_cast<std::size_t>(T) * T * 3;
    std::vector<std::vector<std::uint8_t>> row(static_cast<std::size_t>(tiles_x), std::vector<std::uint8_t>(tile_bytes));
    Image next;
    if (dims.size() > 1) {
        next.w = dims[1].first, next.h = dims[1].second;
        next.rgb.resize(static_cast<std::size_t>(next.w * next.h * 3));
    }
    const std::int64_t step = std::max<std::int64_t>(1, (std::max(W, H) + kThumbnailSide - 1) / kThumbnailSide);
    Image thumb;
    thumb.w = (W + step - 1) / step, thumb.h = (H + step - 1) / step;
    thumb.rgb.resize(static_cast<std::size_t>(thumb.w * thumb.h * 3));

    file.begin_tiled(W, H, T, colour, head + fmt::format(" {} Q=70", codec) + props);
    for (std::int64_t ty = 0; ty < tiles_y; ++ty) {
        write_tile_row(file, ty, tiles_x, T, colour, [&](std::int64_t tx) {
            std::uint8_t* buf = row[static_cast<std::size_t>(tx)].data();
            pixels.render(tx * T, ty * T, T, T, buf);
            return buf;
        });
        const std::int64_t y_begin = ty * T, y_end = std::min(H, y_begin + T);
        const auto at = [&](std::int64_t x, std::int64_t y) {
            return &row[static_cast<std::size_t>(x / T)][3 * static_cast<std::size_t>((y - y_begin) * T + x % T)];
        };
        // T is a multiple of 4, so a row of tiles holds whole 4x4 boxes.
        for (std::int64_t j = y_begin / 4; j < next.h && 4 * j < y_end; ++j) reduce_row(at, W, H, j, next);
        for (std::int64_t j = (y_begin + step - 1) / step; j * step < y_end; ++j)
            for (std::int64_t i = 0; i < thumb.w; ++i)
                std::memcpy(&thumb.rgb[3 * static_cast<std::size_t>(j * thumb.w + i)], at(i * step, j * step), 3);
    }
    row.clear();
    row.shrink_to_fit();
    file.end_directory("level 0");
    file.write_thumbnail(thumb, fmt::format("Aperio Image Library v10.0.50\r\n{}x{} -> {}x{} - ", W, H, thumb.w, thumb.h) + props);

    // The reduced levels, from memory: each is written, then reduced again.
    std::vector<std::vector<std::uint8_t>> scratch(static_cast<std::size_t>((dims[0].first + T - 1) / T));
    for (std::size_t k = 1; k < dims.size(); ++k) {
        Image level = std::move(next);
        if (k + 1 < dims.size()) {
            next = Image{};
            next.w = dims[k + 1].first, next.h = dims[k + 1].second;
            next.rgb.resize(static_cast<std::size_t>(next.w * next.h * 3));
            const auto at = [&](std::int64_t x, std::int64_t y) { return level.at(x, y); };
            for (std::int64_t j = 0; j < next.h; ++j) reduce_row(at, level.w, level.h, j, next);
        }
        const std::int64_t ltx = (level.w + T - 1) / T, lty = (level.h + T - 1) / T;
        file.begin_tiled(level.w, level.h, T, colour,
                         head + fmt::format(" -> {}x{} {} Q=70", level.w, level.h, codec) + props);
        for (std::int64_t ty = 0; ty < lty; ++ty)
            write_tile_row(file, ty, ltx, T, colour, [&](std::int64_t tx) {
                auto& buf = scratch[static_cast<std::size_t>(tx)];
                buf.assign(tile_bytes, 255);  // past the level's edge: white (OpenSlide clips it)
                const std::int64_t x0 = tx * T, y0 = ty * T;
                const std::int64_t cw = std::min<std::int64_t>(T, level.w - x0), ch = std::min<std::int64_t>(T, level.h - y0);
                for (std::int64_t y = 0; y < ch; ++y)
                    std::memcpy(&buf[3 * static_cast<std::size_t>(y * T)], level.at(x0, y0 + y), 3 * static_cast<std::size_t>(cw));
                return buf.data();
            });
        file.end_directory(fmt::format("level {}", k));
    }
    file.commit();
}

}  // namespace flowinfer
