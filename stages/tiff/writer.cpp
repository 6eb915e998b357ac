#include "stages/tiff/writer.hpp"

#include "stages/atomic_file.hpp"
#include "stages/tiff/directory.hpp"
#include "stages/tiff/halve.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tiffio.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

namespace flowinfer {

using namespace tiff;

namespace {

// A finished lower-level tile: either held in memory or at `offset` in the spill file.
struct StoredTile {
    std::vector<std::uint8_t> data;
    std::int64_t offset = -1;
    bool present = false;
};

// A lower-level tile still receiving its children's quadrants.
struct PartialTile {
    std::vector<std::uint8_t> data;
    int received = 0;
};

}  // namespace

struct PyramidTiffWriter::Impl {
    std::string final_path;
    std::string partial_path;
    TiffLayout layout;
    std::vector<LevelGeom> geom;
    std::int64_t tile_bytes = 0;
    bool palette = false;

    TIFF* tif = nullptr;
    std::string tiff_error;  // first libtiff error since the last check
    bool finished = false;
    bool broken = false;  // a libtiff write failed; the file is unusable

    std::vector<bool> written0;
    std::int64_t written0_count = 0;

    // Indexed by level. Level 0 uses the store only when it is not `regular` (thinner than
    // a tile), since its tiles must then be re-cut before they can be written.
    std::vector<std::unordered_map<std::int64_t, PartialTile>> partial;
    std::vector<std::vector<StoredTile>> store;
    std::int64_t stored_mem_bytes = 0;
    std::int64_t partial_mem_bytes = 0;
    std::int64_t peak_bytes = 0;

    int spill_fd = -1;
    std::int64_t spill_end = 0;
    bool spilled = false;

    std::vector<std::uint8_t> scratch;
    // The current directory's codec, for write_uniform(). Precompressed one-value tiles by
    // (bytes, row bytes, value): the row length matters to the predictor.
    bool dir_deflate = false, dir_predictor = false;
    std::map<std::tuple<std::int64_t, int, std::uint8_t>, std::vector<std::uint8_t>> uniform_tiles;
    // Tiles written into the current directory through its own codec, its JPEGTABLES once it
    // has them, and the thread codecs whose tables were found to match them.
    std::int64_t dir_tiles = 0;
    std::vector<std::uint8_t> dir_jpeg_tables;
    std::vector<const TileCodec*> dir_checked_codecs;
    // Per-thread codecs for encode() (regular tiles: layout.tile square), made on first use.
    mutable tbb::enumerable_thread_specific<std::unique_ptr<TileCodec>> codecs;

    [[noreturn]] void fail(const std::string& problem) { throw OutputError(final_path, problem); }

    [[noreturn]] void fail_tiff(const std::string& what) {
        // libtiff's message ("Write error at scanline 0") does not say why; the failed write's
        // errno does when the disk refused it (full, file too large, quota, I/O error).
        const int err = errno;
        const bool disk = err == ENOSPC || err == EFBIG || err == EDQUOT || err == EIO;
        std::string msg = disk ? fmt::format("{}: {}", what, std::strerror(err)) : what;
        if (!tiff_error.empty()) msg = fmt::format("{}: {}", msg, tiff_error);
        tiff_error.clear();
        broken = true;
        fail(msg);
    }

    void note_memory() {
        peak_bytes = std::max(peak_bytes, stored_mem_bytes + partial_mem_bytes);
    }

    void set_tags(int level) {
        dir_deflate = dir_predictor = false;
        if (!tag_directory(tif, layout, palette, geom[level], level, dir_deflate, dir_predictor))
            fail_tiff(fmt::format("cannot set TIFF tags of level {}", level));
        dir_tiles = 0;
        dir_jpeg_tables.clear();
        dir_checked_codecs.clear();
    }

    // Writes into the spill file, opening it on first use. The file is unlinked at once so
    // that nothing is left behind whatever happens to the process.
    std::int64_t spill(const std::uint8_t* data) {
        if (spill_fd < 0) {
            std::string dir = ".";
            auto slash = final_path.find_last_of('/');
            if (slash != std::string::npos) dir = slash == 0 ? "/" : final_path.substr(0, slash);
            std::string templ = dir + "/.flowinfer-spill-XXXXXX";
            spill_fd = mkstemp(templ.data());
            if (spill_fd < 0)
                fail(fmt::format("cannot create spill file in {}: {}", dir, std::strerror(errno)));
            ::unlink(templ.c_str());
        }
        const std::int64_t off = spill_end;
        std::int64_t done = 0;
        while (done < tile_bytes) {
            ssize_t n = ::pwrite(spill_fd, data + done, static_cast<std::size_t>(tile_bytes - done),
                                 static_cast<off_t>(off + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail(fmt::format("cannot write spill file: {}", std::strerror(errno)));
            done += n;
        }
        spill_end += tile_bytes;
        spilled = true;
        return off;
    }

    void load_spilled(std::int64_t off, std::uint8_t* out) {
        std::int64_t done = 0;
        while (done < tile_bytes) {
            ssize_t n = ::pread(spill_fd, out + done, static_cast<std::size_t>(tile_bytes - done),
                                static_cast<off_t>(off + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail(fmt::format("cannot read spill file: {}", std::strerror(errno)));
            done += n;
        }
    }

    // Children of parent (px, py) on `level` that exist on level-1's tile grid.
    int expected_children(int level, std::int64_t px, std::int64_t py) const {
        const LevelGeom& c = geom[level - 1];
        const std::int64_t nx = std::min<std::int64_t>(2, c.tiles_x - 2 * px);
        const std::int64_t ny = std::min<std::int64_t>(2, c.tiles_y - 2 * py);
        return static_cast<int>(nx * ny);
    }

    // Reduces a finished tile of `level` into its quadrant of the parent on level+1, and
    // cascades when the parent is complete.
    void reduce(int level, std::int64_t tx, std::int64_t ty, const std::uint8_t* data) {
        if (level + 1 >= static_cast<int>(geom.size())) return;
        const int T = layout.tile;
        const int ch = layout.channels;
        const LevelGeom& g = geom[level];
        const std::int64_t px = tx / 2, py = ty / 2;
        const int parent_level = level + 1;
        auto& parents = partial[parent_level];
        const std::int64_t key = py * geom[parent_level].tiles_x + px;
        auto it = parents.find(key);
        if (it == parents.end()) {
            it = parents.emplace(key, PartialTile{}).first;
            it->second.data.assign(static_cast<std::size_t>(tile_bytes), 0);
            partial_mem_bytes += tile_bytes;
            note_memory();
        }
        std::uint8_t* out = it->second.data.data();
        const int vw = static_cast<int>(std::min<std::int64_t>(T, g.width - tx * T));
        const int vh = static_cast<int>(std::min<std::int64_t>(T, g.height - ty * T));
        const int ox = static_cast<int>(tx & 1) * (T / 2);
        const int oy = static_cast<int>(ty & 1) * (T / 2);
        if (!palette && vw == T && vh == T) halve_whole(data, T, ch, out, ox, oy);
        else halve_edge(data, T, ch, vw, vh, palette, out, ox, oy);
        if (++it->second.received < expected_children(parent_level, px, py)) return;

        PartialTile done = std::move(it->second);
        parents.erase(it);
        reduce(parent_level, px, py, done.data.data());
        keep(parent_level, key, std::move(done.data));
        partial_mem_bytes -= tile_bytes;
        note_memory();
    }

    void keep(int level, std::int64_t key, std::vector<std::uint8_t>&& data) {
        StoredTile& st = store[level][static_cast<std::size_t>(key)];
        st.present = true;
        if (stored_mem_bytes + tile_bytes > layout.spill_bytes) {
            st.offset = spill(data.data());
        } else {
            st.data = std::move(data);
            stored_mem_bytes += tile_bytes;
        }
        note_memory();
    }

    // Copies stored tile (tx, ty) of `level` into `out` and releases its memory.
    void take(int level, std::int64_t tx, std::int64_t ty, std::uint8_t* out) {
        StoredTile& st = store[level][static_cast<std::size_t>(ty * geom[level].tiles_x + tx)];
        if (!st.present) fail(fmt::format("level {} tile ({}, {}) was never built", level, tx, ty));
        if (st.offset >= 0) {
            load_spilled(st.offset, out);
        } else {
            std::memcpy(out, st.data.data(), static_cast<std::size_t>(tile_bytes));
            // Free as we go so finish() does not hold a level twice.
            stored_mem_bytes -= tile_bytes;
            std::vector<std::uint8_t>().swap(st.data);
        }
        st.present = false;
    }

    // A deflate tile of one value (background, mostly) is compressed once and its bytes
    // reused: deflating the same 64 KiB of zeros tile after tile was most of the write
    // stage's time on a half-empty slide. The bytes are what libtiff's encoder would make
    // of it: a zlib stream of the tile after the horizontal predictor (each row: its first
    // pixel, then zero differences).
    bool write_uniform(int level, ttile_t t, const std::uint8_t* buf, std::int64_t bytes) {
        if (!dir_deflate || !one_value(buf, bytes)) return false;
        const int ch = layout.channels;
        const int row_bytes = geom[level].file_tw * ch;
        const auto key = std::make_tuple(bytes, dir_predictor ? row_bytes : 0, buf[0]);
        auto it = uniform_tiles.find(key);
        if (it == uniform_tiles.end()) {
            std::vector<std::uint8_t> plain(static_cast<std::size_t>(bytes), buf[0]);
            if (dir_predictor)
                for (std::int64_t row = 0; row < bytes; row += row_bytes)
                    std::fill(plain.begin() + row + ch, plain.begin() + std::min(bytes, row + row_bytes), 0);
            uLongf size = compressBound(static_cast<uLong>(bytes));
            std::vector<std::uint8_t> packed(size);
            if (compress2(packed.data(), &size, plain.data(), static_cast<uLong>(bytes), layout.deflate_level) != Z_OK)
                return false;
            packed.resize(size);
            it = uniform_tiles.emplace(key, std::move(packed)).first;
        }
        if (TIFFWriteRawTile(tif, t, it->second.data(), static_cast<tmsize_t>(it->second.size())) < 0 ||
            !tiff_error.empty())
            fail_tiff(fmt::format("cannot write level {} tile {}", level, t));
        return true;
    }

    void write_encoded(int level, std::uint32_t x, std::uint32_t y, std::uint8_t* buf, std::int64_t bytes) {
        const ttile_t t = TIFFComputeTile(tif, x, y, 0, 0);
        if (write_uniform(level, t, buf, bytes)) return;
        if (TIFFWriteEncodedTile(tif, t, buf, bytes) < 0 || !tiff_error.empty())
            fail_tiff(fmt::format("cannot write level {} tile at ({}, {})", level, x, y));
        ++dir_tiles;
        if (jpeg() && dir_jpeg_tables.empty()) dir_jpeg_tables = jpeg_tables_of(tif);
    }

    bool jpeg() const { return layout.channels == 3 && layout.jpeg; }

    // A regular tile (layout.tile square) compressed by this thread's codec, off the
    // writer's thread. Empty (codec null) when it is better written by write_encoded():
    // one-value deflate tiles come from the cache, and a failed codec falls back.
    EncodedTile encode(const std::uint8_t* data) const {
        EncodedTile e;
        const bool deflate = !jpeg() && layout.compression == Compression::deflate;
        if (deflate && one_value(data, tile_bytes)) return e;
        std::unique_ptr<TileCodec>& c = codecs.local();
        if (!c) {
            try {
                c = std::make_unique<TileCodec>(layout, palette, layout.tile, layout.tile);
            } catch (const std::exception&) {
                return e;
            }
        }
        if (c->encode(data, e.bytes)) {
            e.owner = this;
            e.codec = c.get();
        }
        return e;
    }

    // Stores tile t of the current directory from a codec's bytes; false when they cannot be
    // used here, and the caller encodes the tile in the file instead. A JPEG tile is an
    // abbreviated stream that needs the directory's JPEGTABLES: those exist once the
    // directory's own codec has encoded a tile, and must equal the codec's.
    bool write_precoded(int level, ttile_t t, const EncodedTile& e) {
        if (e.owner != this || !e.codec || e.bytes.empty()) return false;
        const auto* codec = static_cast<const TileCodec*>(e.codec);
        if (jpeg()) {
            if (dir_jpeg_tables.empty()) return false;
            if (std::find(dir_checked_codecs.begin(), dir_checked_codecs.end(), codec) == dir_checked_codecs.end()) {
                if (codec->jpeg_tables() != dir_jpeg_tables) return false;
                dir_checked_codecs.push_back(codec);
            }
        }
        if (TIFFWriteRawTile(tif, t, const_cast<std::uint8_t*>(e.bytes.data()), static_cast<tmsize_t>(e.bytes.size())) <
                0 ||
            !tiff_error.empty())
            fail_tiff(fmt::format("cannot write level {} tile {}", level, t));
        return true;
    }

    // Writes the stored tiles of `level` into the current directory, re-cut to the level's
    // file tile size when that differs from the grid they were built on.
    void write_level(int level) {
        const LevelGeom& g = geom[level];
        const int T = layout.tile, ch = layout.channels;
        std::vector<std::uint8_t> buf(static_cast<std::size_t>(tile_bytes));
        if (g.regular(T)) {
            // In batches of a few tiles per thread: taken (and read back from the spill file)
            // in order, compressed in parallel, written in order.
            const std::int64_t n = g.tile_count();
            const std::int64_t batch = std::min<std::int64_t>(n, 4 * tbb::this_task_arena::max_concurrency());
            std::vector<std::uint8_t> raw(static_cast<std::size_t>(batch * tile_bytes));
            std::vector<EncodedTile> enc(static_cast<std::size_t>(batch));
            for (std::int64_t k0 = 0; k0 < n; k0 += batch) {
                const std::int64_t m = std::min(batch, n - k0);
                for (std::int64_t i = 0; i < m; ++i)
                    take(level, (k0 + i) % g.tiles_x, (k0 + i) / g.tiles_x,
                         raw.data() + static_cast<std::size_t>(i * tile_bytes));
                // Isolated: waiting for the batch must not run unrelated work (another graph
                // node) on this thread.
                tbb::this_task_arena::isolate([&] {
                    tbb::parallel_for(std::int64_t(0), m, [&](std::int64_t i) {
                        enc[static_cast<std::size_t>(i)] = encode(raw.data() + static_cast<std::size_t>(i * tile_bytes));
                    });
                });
                for (std::int64_t i = 0; i < m; ++i) {
                    const auto x = static_cast<std::uint32_t>((k0 + i) % g.tiles_x * T);
                    const auto y = static_cast<std::uint32_t>((k0 + i) / g.tiles_x * T);
                    EncodedTile& e = enc[static_cast<std::size_t>(i)];
                    if (!write_precoded(level, TIFFComputeTile(tif, x, y, 0, 0), e))
                        write_encoded(level, x, y, raw.data() + static_cast<std::size_t>(i * tile_bytes), tile_bytes);
                    e = EncodedTile{};
                }
            }
            return;
        }
        // Only a level thinner than one tile gets here, so along that dimension there is a
        // single source tile: walk source tiles in order and cut each into output tiles.
        // Output tiles never straddle source tiles because file_tw/th divide T or cover the
        // whole thin extent.
        const int tw = g.file_tw, th = g.file_th;
        const std::int64_t out_bytes = static_cast<std::int64_t>(tw) * th * ch;
        std::vector<std::uint8_t> out(static_cast<std::size_t>(out_bytes));
        for (std::int64_t ty = 0; ty < g.tiles_y; ++ty)
            for (std::int64_t tx = 0; tx < g.tiles_x; ++tx) {
                take(level, tx, ty, buf.data());
                for (int oy = 0; oy < T && ty * T + oy < g.height; oy += th)
                    for (int ox = 0; ox < T && tx * T + ox < g.width; ox += tw) {
                        for (int r = 0; r < th; ++r) {
                            std::uint8_t* dst = out.data() + static_cast<std::size_t>(r) * tw * ch;
                            if (oy + r < T)
                                std::memcpy(dst, buf.data() + (static_cast<std::size_t>(oy + r) * T + ox) * ch,
                                            static_cast<std::size_t>(std::min(tw, T - ox)) * ch);
                        }
                        write_encoded(level, static_cast<std::uint32_t>(tx * T + ox),
                                      static_cast<std::uint32_t>(ty * T + oy), out.data(), out_bytes);
                    }
            }
    }

    void close_and_remove() {
        if (tif) {
            TIFFClose(tif);
            tif = nullptr;
        }
        if (!finished && !partial_path.empty()) ::unlink(partial_path.c_str());
        if (spill_fd >= 0) {
            ::close(spill_fd);
            spill_fd = -1;
        }
    }
};

PyramidTiffWriter::PyramidTiffWriter(std::string final_path, TiffLayout layout)
    : impl_(std::make_unique<Impl>()) {
    Impl& d = *impl_;
    d.final_path = std::move(final_path);
    d.layout = std::move(layout);
    const TiffLayout& L = d.layout;
    if (L.width <= 0 || L.height <= 0 || L.width > 0xffffffffll || L.height > 0xffffffffll)
        d.fail(fmt::format("invalid image size {}x{}", L.width, L.height));
    if (L.channels != 1 && L.channels != 3) d.fail(fmt::format("unsupported channels {}", L.channels));
    if (L.tile < 16 || L.tile % 16 != 0) d.fail(fmt::format("tile size {} is not a multiple of 16", L.tile));
    // Whatever the compression: a level thinner than a tile is deflated even with `none`, and
    // libtiff would only refuse the level in finish(), after every tile was written.
    if (L.deflate_level < 1 || L.deflate_level > 9)
        d.fail(fmt::format("deflate level {} is not 1..9", L.deflate_level));
    if (!L.palette_rgb.empty() && (L.channels != 1 || L.palette_rgb.size() != 256 * 3))
        d.fail("a palette needs 1 channel and 256*3 entries");
    d.palette = !L.palette_rgb.empty();
    d.tile_bytes = static_cast<std::int64_t>(L.tile) * L.tile * L.channels;

    std::int64_t w = L.width, h = L.height;
    std::int64_t raw_total = 0;
    for (;;) {
        LevelGeom g{w, h, (w + L.tile - 1) / L.tile, (h + L.tile - 1) / L.tile,
                    file_tile(w, L.tile), file_tile(h, L.tile)};
        d.geom.push_back(g);
        raw_total += g.tile_count() * d.tile_bytes;
        if (std::max(w, h) <= L.tile) break;
        w = (w + 1) / 2;
        h = (h + 1) / 2;
    }
    d.written0.assign(static_cast<std::size_t>(d.geom[0].tile_count()), false);
    d.partial.resize(d.geom.size());
    d.store.resize(d.geom.size());
    for (std::size_t k = 0; k < d.geom.size(); ++k)
        if (k > 0 || !d.geom[0].regular(L.tile))
            d.store[k].resize(static_cast<std::size_t>(d.geom[k].tile_count()));
    d.scratch.resize(static_cast<std::size_t>(d.tile_bytes));

    // Compression never makes a tile bigger than ~its raw size by much, so a raw total
    // under 2 GB keeps classic TIFF's 32-bit offsets safe.
    const char* mode = raw_total > (2ll << 30) ? "w8" : "w";
    d.partial_path = d.final_path + ".partial";
    int fd = ::open(d.partial_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        const int e = errno;
        d.partial_path.clear();  // nothing of ours to remove
        d.fail(fmt::format("cannot create {}.partial: {}", d.final_path, std::strerror(e)));
    }
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, capture_error, &d.tiff_error);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, ignore_warning, nullptr);
    d.tif = TIFFFdOpenExt(fd, d.partial_path.c_str(), mode, opts);
    TIFFOpenOptionsFree(opts);
    if (!d.tif) {
        ::close(fd);
        ::unlink(d.partial_path.c_str());
        d.partial_path.clear();
        d.fail_tiff("cannot open TIFF for writing");
    }
    try {
        d.set_tags(0);
    } catch (...) {
        d.close_and_remove();
        throw;
    }
}

PyramidTiffWriter::~PyramidTiffWriter() {
    if (impl_) impl_->close_and_remove();
}

std::int64_t PyramidTiffWriter::tiles_x() const { return impl_->geom[0].tiles_x; }
std::int64_t PyramidTiffWriter::tiles_y() const { return impl_->geom[0].tiles_y; }
int PyramidTiffWriter::levels() const { return static_cast<int>(impl_->geom.size()); }
const std::string& PyramidTiffWriter::path() const { return impl_->final_path; }
std::int64_t PyramidTiffWriter::peak_memory_bytes() const { return impl_->peak_bytes; }
bool PyramidTiffWriter::spilled() const { return impl_->spilled; }

bool PyramidTiffWriter::complete() const {
    return impl_->written0_count == impl_->geom[0].tile_count();
}

void PyramidTiffWriter::write_tile(std::int64_t tx, std::int64_t ty, const std::uint8_t* data) {
    write_tile(tx, ty, data, EncodedTile{});
}

EncodedTile PyramidTiffWriter::encode_tile(const std::uint8_t* data) const {
    const Impl& d = *impl_;
    // A level 0 thinner than a tile is re-cut by finish(): nothing to encode yet.
    if (!d.geom[0].regular(d.layout.tile)) return EncodedTile{};
    return d.encode(data);
}

void PyramidTiffWriter::write_tile(std::int64_t tx, std::int64_t ty, const std::uint8_t* data, EncodedTile&& encoded) {
    Impl& d = *impl_;
    if (d.finished || !d.tif) d.fail("write_tile after finish");
    if (d.broken) d.fail("an earlier write failed");
    const LevelGeom& g = d.geom[0];
    if (tx < 0 || ty < 0 || tx >= g.tiles_x || ty >= g.tiles_y)
        d.fail(fmt::format("tile ({}, {}) outside the {}x{} grid", tx, ty, g.tiles_x, g.tiles_y));
    const std::size_t idx = static_cast<std::size_t>(ty * g.tiles_x + tx);
    if (d.written0[idx]) d.fail(fmt::format("tile ({}, {}) written twice", tx, ty));

    if (g.regular(d.layout.tile)) {
        const auto x = static_cast<std::uint32_t>(tx * d.layout.tile);
        const auto y = static_cast<std::uint32_t>(ty * d.layout.tile);
        if (!d.write_precoded(0, TIFFComputeTile(d.tif, x, y, 0, 0), encoded)) {
            // libtiff's encoders may work in place on the buffer they are given; the caller's is const.
            std::memcpy(d.scratch.data(), data, static_cast<std::size_t>(d.tile_bytes));
            d.write_encoded(0, x, y, d.scratch.data(), d.tile_bytes);
        }
    } else {
        d.keep(0, static_cast<std::int64_t>(idx), std::vector<std::uint8_t>(data, data + d.tile_bytes));
    }
    d.written0[idx] = true;
    ++d.written0_count;
    d.reduce(0, tx, ty, data);
}

void PyramidTiffWriter::finish() {
    Impl& d = *impl_;
    if (d.finished) return;
    if (!d.tif) d.fail("writer is closed");
    if (d.broken) d.fail("an earlier write failed");
    const std::int64_t total = d.geom[0].tile_count();
    if (d.written0_count != total)
        d.fail(fmt::format("{} of {} tiles missing", total - d.written0_count, total));

    if (!d.geom[0].regular(d.layout.tile)) d.write_level(0);
    if (!TIFFWriteDirectory(d.tif) || !d.tiff_error.empty()) d.fail_tiff("cannot write level 0 directory");
    for (std::size_t k = 1; k < d.geom.size(); ++k) {
        d.set_tags(static_cast<int>(k));
        d.write_level(static_cast<int>(k));
        if (!TIFFWriteDirectory(d.tif) || !d.tiff_error.empty())
            d.fail_tiff(fmt::format("cannot write level {} directory", k));
    }
    TIFFClose(d.tif);
    d.tif = nullptr;
    if (!d.tiff_error.empty()) d.fail_tiff("cannot close TIFF");
    sync_and_commit(d.partial_path, d.final_path);
    d.finished = true;
    if (d.spill_fd >= 0) {
        ::close(d.spill_fd);
        d.spill_fd = -1;
    }
}

}  // namespace flowinfer
