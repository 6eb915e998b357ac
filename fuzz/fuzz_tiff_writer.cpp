// libFuzzer target: the pyramid TIFF writer's input validation and tile bookkeeping
// (stages/tiff/writer.hpp).
//
// The input chooses a TiffLayout (sizes, channels, tile, compression, palette, spill budget,
// resolution) and a sequence of write_tile() calls (in range, out of range, repeated), then
// maybe finish(). Invalid layouts and calls must throw flowinfer::OutputError (an Error);
// anything else (another exception type, a crash, a sanitizer report) is a bug. A finished
// file is read back with libtiff: every level is there and level 0 holds the pixels written
// (lossless compressions). Files go to a scratch directory, emptied after every input.

#include "stages/tiff/writer.hpp"

#include <flowinfer/errors.hpp>

#include <fuzzer/FuzzedDataProvider.h>
#include <tiffio.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;

std::string g_context;  // the layout and last error of the current input, printed by bug()

[[noreturn]] void bug(const char* what) {
    std::fprintf(stderr, "fuzz_tiff_writer: invariant violated: %s\n%s\n", what, g_context.c_str());
    std::abort();
}

struct Sandbox {
    fs::path dir;
    Sandbox() {
        std::string templ = (fs::temp_directory_path() / "flowinfer-fuzz-tiff-XXXXXX").string();
        if (!mkdtemp(templ.data())) bug("cannot create the scratch directory");
        dir = templ;
    }
    ~Sandbox() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    void empty() const {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(dir, ec)) fs::remove_all(e.path(), ec);
    }
};

Sandbox& sandbox() {
    static Sandbox s;
    return s;
}

// Mostly small, sometimes a value the writer must reject.
std::int64_t pick_extent(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
        case 0: return in.ConsumeIntegral<std::int64_t>();                   // anything
        case 1: return in.ConsumeIntegralInRange<std::int64_t>(-2, 0);        // empty/negative
        case 2: return 0xffffffffll + in.ConsumeIntegralInRange<int>(0, 2);    // past 32 bits
        case 3: return in.ConsumeIntegralInRange<std::int64_t>(1, 4096);
        default: return in.ConsumeIntegralInRange<std::int64_t>(1, 600);
    }
}

int pick_tile(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: return in.ConsumeIntegral<int>();
        case 1: return 16 * in.ConsumeIntegralInRange<int>(1, 16);
        default: return in.PickValueInArray({16, 32, 64, 128, 256});
    }
}

// Pixels of tile (tx, ty) as the fuzz input describes them: a seed and a pattern, so the
// read-back check can recompute them.
std::uint8_t pixel(std::uint32_t seed, std::int64_t x, std::int64_t y, int c) {
    std::uint64_t h = seed ^ (static_cast<std::uint64_t>(x) * 0x9E3779B97F4A7C15ull) ^
                      (static_cast<std::uint64_t>(y) * 0xC2B2AE3D27D4EB4Full) ^
                      static_cast<std::uint64_t>(c) * 0x165667B19E3779F9ull;
    h ^= h >> 29;
    return static_cast<std::uint8_t>(h * 0xBF58476D1CE4E5B9ull >> 56);
}

void fill_tile(std::vector<std::uint8_t>& buf, std::uint32_t seed, std::int64_t tx,
               std::int64_t ty, int tile, int ch) {
    for (int y = 0; y < tile; ++y)
        for (int x = 0; x < tile; ++x)
            for (int c = 0; c < ch; ++c)
                buf[(static_cast<std::size_t>(y) * tile + x) * ch + c] =
                    pixel(seed, tx * tile + x, ty * tile + y, c);
}

void ignore_tiff(const char*, const char*, va_list) {}

// Reads the finished file back: one directory per level with the expected sizes, and level 0's
// pixels as written when the compression is lossless.
void check_file(const std::string& path, const flowinfer::TiffLayout& L, int levels,
                std::uint32_t seed) {
    std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpen(path.c_str(), "r"), TIFFClose);
    if (!tif) bug("finished file does not open");
    std::int64_t w = L.width, h = L.height;
    for (int level = 0; level < levels; ++level) {
        if (level > 0 && !TIFFReadDirectory(tif.get())) bug("a level is missing");
        std::uint32_t fw = 0, fh = 0, tw = 0, th = 0;
        std::uint16_t spp = 0;
        TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &fw);
        TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &fh);
        TIFFGetField(tif.get(), TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif.get(), TIFFTAG_TILELENGTH, &th);
        TIFFGetField(tif.get(), TIFFTAG_SAMPLESPERPIXEL, &spp);
        if (fw != w || fh != h) bug("level size");
        if (spp != L.channels) bug("samples per pixel");
        if (tw == 0 || th == 0 || tw % 16 || th % 16) bug("tile size");
        if (level == 0 && !(L.jpeg && L.channels == 3)) {
            std::vector<std::uint8_t> buf(TIFFTileSize(tif.get()));
            for (std::uint32_t y0 = 0; y0 < fh; y0 += th)
                for (std::uint32_t x0 = 0; x0 < fw; x0 += tw) {
                    if (TIFFReadTile(tif.get(), buf.data(), x0, y0, 0, 0) < 0) bug("tile unreadable");
                    for (std::uint32_t y = y0; y < std::min(fh, y0 + th); ++y)
                        for (std::uint32_t x = x0; x < std::min(fw, x0 + tw); ++x)
                            for (int c = 0; c < L.channels; ++c)
                                if (buf[((y - y0) * tw + (x - x0)) * L.channels + c] !=
                                    pixel(seed, x, y, c))
                                    bug("level 0 pixel differs from what was written");
                }
        }
        w = (w + 1) / 2;
        h = (h + 1) / 2;
    }
    if (TIFFReadDirectory(tif.get())) bug("more levels than levels()");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    TIFFSetWarningHandler(ignore_tiff);
    TIFFSetErrorHandler(ignore_tiff);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    flowinfer::TiffLayout L;
    L.width = pick_extent(in);
    L.height = pick_extent(in);
    L.channels = in.ConsumeBool() ? in.PickValueInArray({1, 3}) : in.ConsumeIntegral<int>();
    L.tile = pick_tile(in);
    L.compression = in.PickValueInArray(
        {flowinfer::Compression::deflate, flowinfer::Compression::lzw, flowinfer::Compression::none});
    L.deflate_level = in.ConsumeBool() ? in.ConsumeIntegralInRange<int>(1, 9) : in.ConsumeIntegral<int>();
    L.jpeg = in.ConsumeBool();
    L.jpeg_quality = in.ConsumeIntegral<int>();
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
        case 0: L.mpp = 0; break;
        case 1: L.mpp = in.ConsumeFloatingPoint<double>(); break;
        case 2:
            L.mpp = in.PickValueInArray({std::numeric_limits<double>::quiet_NaN(),
                                         std::numeric_limits<double>::infinity(), -1.0, 1e-300,
                                         std::numeric_limits<double>::denorm_min(), 1e-30, 1e300});
            break;
        default: L.mpp = in.ConsumeFloatingPointInRange<double>(0.05, 20.0);
    }
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0: L.palette_rgb.assign(256 * 3, 0); break;
        case 1: L.palette_rgb.assign(in.ConsumeIntegralInRange<std::size_t>(1, 1024), 7); break;
        default: break;
    }
    for (std::size_t i = 0; i < L.palette_rgb.size(); i += 3) L.palette_rgb[i] = static_cast<std::uint8_t>(i);
    L.spill_bytes = in.ConsumeBool() ? in.ConsumeIntegral<std::int64_t>()
                                     : in.ConsumeIntegralInRange<std::int64_t>(0, 1 << 20);
    L.description = in.ConsumeRandomLengthString(64);

    // A valid layout this large is legitimate but would only exhaust memory and time here.
    if (L.tile >= 16 && L.width > 0 && L.height > 0 && (L.channels == 1 || L.channels == 3)) {
        const std::int64_t tx = (std::min<std::int64_t>(L.width, 1ll << 40) + L.tile - 1) / L.tile;
        const std::int64_t ty = (std::min<std::int64_t>(L.height, 1ll << 40) + L.tile - 1) / L.tile;
        if (L.tile > 512 || tx > 64 || ty > 64 || tx * ty > 256) return 0;
    }

    g_context = "layout: " + std::to_string(L.width) + "x" + std::to_string(L.height) +
                " channels " + std::to_string(L.channels) + " tile " + std::to_string(L.tile) +
                " compression " + std::to_string(static_cast<int>(L.compression)) + " deflate_level " +
                std::to_string(L.deflate_level) + " jpeg " + std::to_string(L.jpeg) + " quality " +
                std::to_string(L.jpeg_quality) + " mpp " + std::to_string(L.mpp) + " palette " +
                std::to_string(L.palette_rgb.size()) + " spill " + std::to_string(L.spill_bytes) +
                " description " + std::to_string(L.description.size()) + " bytes";
    const Sandbox& box = sandbox();
    const std::string path = (box.dir / "out.tif").string();
    const std::uint32_t seed = in.ConsumeIntegral<std::uint32_t>();
    bool finished = false;
    int levels = 0;
    {
        std::unique_ptr<flowinfer::PyramidTiffWriter> w;
        try {
            w = std::make_unique<flowinfer::PyramidTiffWriter>(path, L);
        } catch (const flowinfer::Error&) {
            if (fs::exists(path) || fs::exists(path + ".partial")) bug("a rejected layout left a file");
            box.empty();
            return 0;
        }
        levels = w->levels();
        if (levels < 1 || w->tiles_x() < 1 || w->tiles_y() < 1) bug("geometry");
        std::vector<std::uint8_t> buf(static_cast<std::size_t>(L.tile) * L.tile * L.channels);
        const bool in_order = in.ConsumeBool();
        const std::int64_t total = w->tiles_x() * w->tiles_y();
        std::vector<bool> seen(static_cast<std::size_t>(total), false);
        for (std::int64_t call = 0; in.remaining_bytes() > 0 && call < 4 * total + 8; ++call) {
            std::int64_t tx, ty;
            if (in_order && in.ConsumeIntegralInRange<int>(0, 15) != 0) {
                tx = call % w->tiles_x();
                ty = call / w->tiles_x() % w->tiles_y();
            } else {
                tx = in.ConsumeIntegralInRange<std::int64_t>(-1, w->tiles_x());
                ty = in.ConsumeIntegralInRange<std::int64_t>(-1, w->tiles_y());
            }
            const bool inside = tx >= 0 && ty >= 0 && tx < w->tiles_x() && ty < w->tiles_y();
            const bool fresh = inside && !seen[static_cast<std::size_t>(ty * w->tiles_x() + tx)];
            fill_tile(buf, seed, tx, ty, L.tile, L.channels);
            try {
                w->write_tile(tx, ty, buf.data());
                if (!fresh) bug("a tile outside the grid or written twice was accepted");
                seen[static_cast<std::size_t>(ty * w->tiles_x() + tx)] = true;
            } catch (const flowinfer::Error& e) {
                g_context += std::string("\nwrite_tile: ") + e.what();
                if (fresh) bug("a valid tile write was rejected");
            }
            if (in.ConsumeIntegralInRange<int>(0, 31) == 0) break;
        }
        const bool complete = std::all_of(seen.begin(), seen.end(), [](bool b) { return b; });
        if (w->complete() != complete) bug("complete()");
        if (in.ConsumeIntegralInRange<int>(0, 7) != 0) {
            try {
                w->finish();
                finished = true;
                w->finish();  // a second finish() is a no-op
            } catch (const flowinfer::Error& e) {
                g_context += std::string("\nfinish: ") + e.what();
                if (complete) bug("finish() failed on a complete writer");
            }
            if (finished && !complete) bug("finish() accepted missing tiles");
        }
    }  // the writer is destroyed here: an unfinished one removes its .partial file
    if (fs::exists(path + ".partial")) bug("a .partial file outlived its writer");
    if (finished != fs::exists(path)) bug("final file present iff finish() succeeded");
    if (finished) check_file(path, L, levels, seed);
    for (const auto& e : fs::directory_iterator(box.dir))
        if (e.path() != path) bug("a stray file (spill file?) was left behind");
    box.empty();
    return 0;
}
