#include "stages/tiff/reader.hpp"

#include "stages/read_region.hpp"
#include "stages/tiff/tile.hpp"
#include "stages/tiff/ifd.hpp"
#include "stages/tiff/jp2k_decoder.hpp"
#include "stages/tiff/jpeg_decoder.hpp"
#include "stages/tiff/rgba_decoder.hpp"

#include <fmt/format.h>
#include <tiffio.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace flowinfer::tiff {

namespace {

constexpr std::uint16_t kAperioJp2kYcbcr = 33003, kAperioJp2kRgb = 33005;

enum class Codec { jpeg, jp2k, rgba };

struct Level {
    TiffDirectory dir;
    LevelShape shape;
    Codec codec = Codec::rgba;
    JpegColour jpeg_colour = JpegColour::ycbcr;
    Jp2kColour jp2k_colour = Jp2kColour::ycbcr;
    std::vector<bool> missing;  // Aperio's zero-length tiles, and those built from one
};

int log2_scale(int scale) { return scale == 1 ? 0 : scale == 2 ? 1 : scale == 4 ? 2 : 3; }

// The directories OpenSlide 3.4.1 makes levels of: Aperio, every tiled directory in file
// order; generic TIFF, the tiled directories that are the first or marked reduced, widest
// first.
std::vector<const TiffDirectory*> level_directories(const std::vector<TiffDirectory>& dirs, bool aperio) {
    std::vector<const TiffDirectory*> out;
    for (const TiffDirectory& d : dirs)
        if (d.tiled && (aperio || d.index == 0 || (d.subfile_type & FILETYPE_REDUCEDIMAGE))) out.push_back(&d);
    if (!aperio)
        std::stable_sort(out.begin(), out.end(),
                         [](const TiffDirectory* a, const TiffDirectory* b) { return a->width > b->width; });
    return out;
}

}  // namespace

struct TiffTileReader::Impl {
    int fd = -1;
    std::int64_t file_size = 0;
    bool aperio = false;
    std::vector<Level> levels;
    std::unique_ptr<RgbaDecoder> rgba;
    mutable TileCache cache;

    ~Impl() {
        if (fd >= 0) ::close(fd);
    }

    std::vector<std::uint8_t> raw(const Level& l, std::int64_t tile) const {
        const std::uint64_t off = l.dir.offsets[static_cast<std::size_t>(tile)];
        const std::uint64_t n = l.dir.byte_counts[static_cast<std::size_t>(tile)];
        if (n == 0) throw TileDecodeError("the tile is empty (0 bytes)");
        if (off > static_cast<std::uint64_t>(file_size) || n > static_cast<std::uint64_t>(file_size) - off)
            throw TileDecodeError(fmt::format("the tile's {} bytes at offset {} lie past the end of the file "
                                              "({} bytes): truncated?", n, off, file_size));
        std::vector<std::uint8_t> buf(static_cast<std::size_t>(n));
        std::size_t done = 0;
        while (done < buf.size()) {
            const ssize_t r = ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(off + done));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0)
                throw TileDecodeError(r == 0 ? std::string("the file ends inside the tile's bytes: truncated?")
                                             : fmt::format("cannot read the tile: {}", std::strerror(errno)));
            done += static_cast<std::size_t>(r);
        }
        return buf;
    }

    // A zero-length Aperio tile at 1/scale: the level above's pixels over its footprint,
    // area-averaged (OpenSlide paints them with cairo; white at level 0, where there is
    // nothing above).
    DecodedTile draw_missing(int level, int scale, std::int64_t col, std::int64_t row) const {
        const Level& l = levels[static_cast<std::size_t>(level)];
        DecodedTile t;
        t.width = l.dir.tile_w / scale;  // scales() holds: the tile divides by the scale
        t.height = l.dir.tile_h / scale;
        t.rgb.assign(static_cast<std::size_t>(t.width) * t.height * 3, 255);
        if (level == 0) return t;
        if (t.width != t.height) {
            // area_resize makes square outputs: draw row by row of squares is not worth it
            // for an encoder bug; such tiles stay white.
            return t;
        }
        const Level& up = levels[static_cast<std::size_t>(level - 1)];
        const double rel = l.shape.downsample / up.shape.downsample * scale;  // level-above pixels per output pixel
        const double fx = static_cast<double>(col * t.width) * rel, fy = static_cast<double>(row * t.height) * rel;
        const auto x0 = static_cast<std::int64_t>(std::floor(fx)), y0 = static_cast<std::int64_t>(std::floor(fy));
        const auto span = static_cast<std::int64_t>(std::ceil(t.width * rel)) + 1;
        std::vector<std::uint8_t> src(static_cast<std::size_t>(span * span * 3));
        read(level - 1, x0, y0, span, span, 1, src.data());
        area_resize(src.data(), span, span, fx - x0, fy - y0, rel, t.width, t.rgb.data());
        return t;
    }

    // `scale` > 1 only where scales() said so: JPEG levels, decoded smaller by libjpeg.
    DecodedTile decode(int level, int scale, std::int64_t col, std::int64_t row) const {
        const Level& l = levels[static_cast<std::size_t>(level)];
        const std::int64_t tile = row * l.dir.tiles_across() + col;
        if (!l.missing.empty() && l.missing[static_cast<std::size_t>(tile)]) return draw_missing(level, scale, col, row);
        if (l.codec == Codec::jpeg) {
            const std::vector<std::uint8_t> bytes = raw(l, tile);
            return decode_jpeg_tile(l.dir.jpeg_tables, bytes.data(), bytes.size(), l.jpeg_colour, l.dir.tile_w,
                                    l.dir.tile_h, scale);
        }
        DecodedTile t;
        t.width = l.dir.tile_w;
        t.height = l.dir.tile_h;
        t.rgb.resize(static_cast<std::size_t>(t.width) * t.height * 3);
        if (l.codec == Codec::rgba) {
            rgba->decode(l.dir.index, col, row, t.width, t.height, t.rgb.data());
        } else {
            const std::vector<std::uint8_t> bytes = raw(l, tile);
            decode_jp2k_tile(bytes.data(), bytes.size(), l.jp2k_colour, t.width, t.height, t.rgb.data());
        }
        return t;
    }

    std::shared_ptr<const DecodedTile> tile(int level, int scale, std::int64_t col, std::int64_t row) const {
        const Level& l = levels[static_cast<std::size_t>(level)];
        const std::uint64_t index = static_cast<std::uint64_t>(row * l.dir.tiles_across() + col);
        const std::uint64_t key = (std::uint64_t(level) << 56) | (std::uint64_t(log2_scale(scale)) << 52) | index;
        try {
            return cache.get(key, [&] { return decode(level, scale, col, row); });
        } catch (const TileDecodeError& e) {
            // Named once, where the tile is known (a missing tile's own read names its source).
            if (std::strncmp(e.what(), "level ", 6) == 0) throw;
            throw TileDecodeError(fmt::format("level {} tile ({}, {}): {}", level, col, row, e.what()));
        }
    }

    void read(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h, int scale,
              std::uint8_t* rgb) const {
        const Level& l = levels[static_cast<std::size_t>(level)];
        const std::int64_t tw = l.dir.tile_w / scale, th = l.dir.tile_h / scale;
        const std::int64_t W = (l.dir.width + scale - 1) / scale, H = (l.dir.height + scale - 1) / scale;
        const std::int64_t ix0 = std::max<std::int64_t>(x, 0), iy0 = std::max<std::int64_t>(y, 0);
        const std::int64_t ix1 = std::min(x + w, W), iy1 = std::min(y + h, H);
        if (ix0 > x || iy0 > y || ix1 < x + w || iy1 < y + h) std::memset(rgb, 255, static_cast<std::size_t>(w * h * 3));
        if (ix0 >= ix1 || iy0 >= iy1) return;
        for (std::int64_t row = iy0 / th; row <= (iy1 - 1) / th; ++row)
            for (std::int64_t col = ix0 / tw; col <= (ix1 - 1) / tw; ++col) {
                const std::shared_ptr<const DecodedTile> t = tile(level, scale, col, row);
                if (t->width < tw || t->height < th)
                    throw TileDecodeError(fmt::format("level {} tile ({}, {}): decoded {}x{}, expected {}x{}", level,
                                                      col, row, t->width, t->height, tw, th));
                const std::int64_t cx0 = std::max(ix0, col * tw), cx1 = std::min(ix1, (col + 1) * tw);
                const std::int64_t cy0 = std::max(iy0, row * th), cy1 = std::min(iy1, (row + 1) * th);
                const auto bytes = static_cast<std::size_t>((cx1 - cx0) * 3);
                for (std::int64_t yy = cy0; yy < cy1; ++yy)
                    std::memcpy(rgb + ((yy - y) * w + (cx0 - x)) * 3,
                                t->rgb.data() + ((yy - row * th) * t->width + (cx0 - col * tw)) * 3, bytes);
            }
    }
};

TiffTileReader::TiffTileReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TiffTileReader::~TiffTileReader() = default;

std::unique_ptr<TiffTileReader> TiffTileReader::open(const std::string& path, const std::string& vendor,
                                                     const std::vector<LevelShape>& shapes, std::string& why_not) {
    if (vendor != "aperio" && vendor != "generic-tiff") {
        why_not = fmt::format("the native reader reads Aperio and generic TIFF slides, not {}", vendor.empty() ? "this format" : vendor);
        return nullptr;
    }
    auto d = std::make_unique<Impl>();
    d->cache.set_capacity(32 << 20);  // OpenSlide's, until the plan sizes it (Slide::set_tile_cache_bytes)
    d->aperio = vendor == "aperio";
    const std::vector<TiffDirectory> dirs = read_directories(path);
    const std::vector<const TiffDirectory*> chosen = level_directories(dirs, d->aperio);
    if (chosen.size() != shapes.size()) {
        why_not = fmt::format("{} tiled directories for OpenSlide's {} levels", chosen.size(), shapes.size());
        return nullptr;
    }
    d->rgba = std::make_unique<RgbaDecoder>(path);
    for (std::size_t i = 0; i < chosen.size(); ++i) {
        Level l;
        l.dir = *chosen[i];
        l.shape = shapes[i];
        const TiffDirectory& t = l.dir;
        if (t.width != l.shape.width || t.height != l.shape.height) {
            why_not = fmt::format("directory {} is {}x{}, OpenSlide's level {} {}x{}", t.index, t.width, t.height, i,
                                  l.shape.width, l.shape.height);
            return nullptr;
        }
        if (t.planar != PLANARCONFIG_CONTIG && t.offsets.size() != static_cast<std::size_t>(t.tiles_across() * t.tiles_down())) {
            why_not = fmt::format("directory {}: separate colour planes", t.index);
            return nullptr;
        }
        if (t.compression == COMPRESSION_JPEG && t.planar == PLANARCONFIG_CONTIG && t.bits == 8 && t.samples == 3 &&
            (t.photometric == PHOTOMETRIC_RGB || t.photometric == PHOTOMETRIC_YCBCR)) {
            l.codec = Codec::jpeg;
            l.jpeg_colour = t.photometric == PHOTOMETRIC_RGB ? JpegColour::rgb : JpegColour::ycbcr;
        } else if (d->aperio && (t.compression == kAperioJp2kYcbcr || t.compression == kAperioJp2kRgb)) {
            l.codec = Codec::jp2k;
            l.jp2k_colour = t.compression == kAperioJp2kRgb ? Jp2kColour::rgb : Jp2kColour::ycbcr;
        } else if (!TIFFIsCODECConfigured(t.compression)) {
            why_not = fmt::format("directory {}: compression {} is not one libtiff decodes", t.index, t.compression);
            return nullptr;
        } else if (std::string e = d->rgba->check(t.index); !e.empty()) {
            why_not = fmt::format("directory {}: {}", t.index, e);
            return nullptr;
        }
        if (d->aperio) {
            l.missing.assign(t.byte_counts.size(), false);
            for (std::size_t k = 0; k < t.byte_counts.size(); ++k) l.missing[k] = t.byte_counts[k] == 0;
        }
        d->levels.push_back(std::move(l));
    }
    // Aperio: a tile built from a missing one is sometimes corrupt too; OpenSlide marks it
    // missing, and so must we to draw the same pixels.
    for (std::size_t i = 0; d->aperio && i + 1 < d->levels.size(); ++i) {
        const Level& a = d->levels[i];
        Level& b = d->levels[i + 1];
        const auto cx = std::max<std::int64_t>(1, std::llround(double(a.dir.tiles_across()) / b.dir.tiles_across()));
        const auto cy = std::max<std::int64_t>(1, std::llround(double(a.dir.tiles_down()) / b.dir.tiles_down()));
        for (std::size_t k = 0; k < a.missing.size(); ++k) {
            if (!a.missing[k]) continue;
            const std::int64_t col = static_cast<std::int64_t>(k) % a.dir.tiles_across() / cx;
            const std::int64_t row = static_cast<std::int64_t>(k) / a.dir.tiles_across() / cy;
            const std::int64_t n = row * b.dir.tiles_across() + col;
            if (col < b.dir.tiles_across() && row < b.dir.tiles_down()) b.missing[static_cast<std::size_t>(n)] = true;
        }
    }
    d->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (d->fd < 0 || ::fstat(d->fd, &st) != 0)
        throw TileDecodeError(fmt::format("cannot open it: {}", std::strerror(errno)));
    d->file_size = st.st_size;
    return std::unique_ptr<TiffTileReader>(new TiffTileReader(std::move(d)));
}

void TiffTileReader::read(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h, int scale,
                          std::uint8_t* rgb) const {
    if (level < 0 || level >= static_cast<int>(impl_->levels.size()))
        throw TileDecodeError(fmt::format("level {} does not exist", level));
    if (scale != 1 && !scales(level, scale)) throw TileDecodeError(fmt::format("level {} cannot be read at 1/{}", level, scale));
    impl_->read(level, x, y, w, h, scale, rgb);
}

bool TiffTileReader::scales(int level, int scale) const {
    if (level < 0 || level >= static_cast<int>(impl_->levels.size())) return false;
    const Level& l = impl_->levels[static_cast<std::size_t>(level)];
    if (scale == 1) return true;
    if (scale != 2 && scale != 4 && scale != 8) return false;
    return l.codec == Codec::jpeg && l.dir.tile_w % scale == 0 && l.dir.tile_h % scale == 0;
}

int TiffTileReader::tile_width(int level) const { return impl_->levels.at(static_cast<std::size_t>(level)).dir.tile_w; }
int TiffTileReader::tile_height(int level) const { return impl_->levels.at(static_cast<std::size_t>(level)).dir.tile_h; }

std::string TiffTileReader::codec(int level) const {
    const Level& l = impl_->levels.at(static_cast<std::size_t>(level));
    if (l.codec == Codec::jpeg) return "jpeg";
    if (l.codec == Codec::jp2k) return "jpeg2000";
    const TIFFCodec* c = TIFFFindCODEC(l.dir.compression);
    return c && c->name ? c->name : fmt::format("compression {}", l.dir.compression);
}

void TiffTileReader::set_cache_bytes(std::int64_t bytes) { impl_->cache.set_capacity(bytes); }
std::int64_t TiffTileReader::cache_bytes() const { return impl_->cache.capacity(); }
TileCacheStats TiffTileReader::cache_stats() const { return impl_->cache.stats(); }

}  // namespace flowinfer::tiff
