// The native tile reader against OpenSlide: the same levels, the same pixels wherever
// OpenSlide reads a level pixel-aligned, exact level pixels everywhere; its tile cache
// (each tile decoded once, bounded memory); scaled JPEG decoding against area averaging; and
// bad tiles.
#define BOOST_TEST_MODULE reader
#include "test_support.hpp"

#include "pipeline/synthetic_jp2k.hpp"
#include "stages/layout.hpp"
#include "stages/plan.hpp"
#include "stages/read_region.hpp"
#include "stages/slide.hpp"
#include "stages/tiff/directory.hpp"
#include "stages/tiff/jpeg_decoder.hpp"
#include "stages/tiff/tile_cache.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <tbb/parallel_for.h>
#include <tiffio.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

using namespace flowinfer;
namespace fs = std::filesystem;

namespace {

std::string synthetic(const fit::TempDir& dir, const std::string& name, std::int64_t w, std::int64_t h, int quality,
                      std::uint32_t seed = 1) {
    SyntheticSlideSpec spec;
    spec.width = w;
    spec.height = h;
    spec.jpeg_quality = quality;
    spec.seed = seed;
    write_synthetic_slide(dir / name, spec);
    return dir / name;
}

// An Aperio-style JPEG 2000 SVS of 1003x701 (levels of downsample 4.0089, 16.09: not integers).
std::string jp2k(const fit::TempDir& dir, const std::string& name, tiff::Jp2kColour colour) {
    SyntheticSlideSpec spec;
    spec.width = 1003;
    spec.height = 701;
    spec.seed = 3;
    write_synthetic_jp2k_svs(dir / name, spec, colour, 240);
    return dir / name;
}

// (x, y, w, h) of `img` (a whole level), white outside it.
fit::Image crop(const fit::Image& img, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h) {
    fit::Image c;
    c.width = w;
    c.height = h;
    c.rgb.assign(static_cast<std::size_t>(w * h * 3), 255);
    for (std::int64_t yy = 0; yy < h; ++yy)
        for (std::int64_t xx = 0; xx < w; ++xx) {
            const std::int64_t sx = x + xx, sy = y + yy;
            if (sx < 0 || sy < 0 || sx >= img.width || sy >= img.height) continue;
            std::copy_n(img.at(sx, sy), 3, &c.rgb[static_cast<std::size_t>((yy * w + xx) * 3)]);
        }
    return c;
}

std::vector<std::uint8_t> read(const Slide& s, int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h) {
    std::vector<std::uint8_t> rgb(static_cast<std::size_t>(w * h * 3));
    s.read_level(level, x, y, w, h, rgb.data());
    return rgb;
}

std::int64_t differing(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b, int tolerance = 0) {
    std::int64_t n = 0;
    for (std::size_t i = 0; i < a.size(); ++i) n += std::abs(int(a[i]) - int(b[i])) > tolerance;
    return n;
}

// Directory `dir` decoded whole by libtiff (TIFFReadRGBAImageOriented), composited onto white.
fit::Image libtiff_image(const std::string& path, int dir) {
    TIFF* t = TIFFOpen(path.c_str(), "r");
    BOOST_REQUIRE(t);
    BOOST_REQUIRE(TIFFSetDirectory(t, static_cast<tdir_t>(dir)));
    std::uint32_t w = 0, h = 0;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
    std::vector<std::uint32_t> raster(static_cast<std::size_t>(w) * h);
    BOOST_REQUIRE(TIFFReadRGBAImageOriented(t, w, h, raster.data(), ORIENTATION_TOPLEFT, 0));
    TIFFClose(t);
    fit::Image img;
    img.width = w;
    img.height = h;
    for (std::uint32_t p : raster)
        for (int c = 0; c < 3; ++c) img.rgb.push_back(static_cast<std::uint8_t>(((p >> (8 * c)) & 0xff) + 255 - (p >> 24)));
    return img;
}

}  // namespace

// Every shared slide and both kinds of synthetic slide: the native reader takes them, with
// OpenSlide's levels, and at every level its regions (anywhere, partly outside, crossing
// tiles) equal OpenSlide's read of the whole level from its origin, which is pixel-aligned
// at any downsample. JPEG and libtiff-decoded tiles alike: byte for byte.
BOOST_AUTO_TEST_CASE(native_pixels_equal_openslides_aligned_reads) {
    fit::TempDir dir;
    const std::vector<std::pair<std::string, std::string>> slides = {
        {fit::shared_slide("CMU-1-Small-Region.svs"), "jpeg"},
        {fit::shared_slide("CropBreastSlide.tiff"), "jpeg"},
        {fit::shared_slide("boxes.tiff"), "AdobeDeflate"},
        {fit::shared_slide("small.svs"), "jpeg"},
        {synthetic(dir, "jpeg.tiff", 1500, 1100, 80), "jpeg"},
        {synthetic(dir, "deflate.tiff", 1100, 900, 0), "AdobeDeflate"},
        {jp2k(dir, "ycbcr.svs", tiff::Jp2kColour::ycbcr), "jpeg2000"},
        {jp2k(dir, "rgb.svs", tiff::Jp2kColour::rgb), "jpeg2000"},
    };
    std::mt19937 rng(7);
    for (const auto& [path, codec] : slides) {
        BOOST_TEST_CONTEXT(path) {
            const Slide native(path, SlideReader::native);
            const Slide os(path, SlideReader::openslide);
            BOOST_TEST(std::string(native.reader()) == "native");
            BOOST_TEST(std::string(os.reader()) == "openslide");
            BOOST_TEST(native.native_unavailable().empty());
            BOOST_REQUIRE(native.level_count() == fit::level_count(path));
            for (int l = 0; l < native.level_count(); ++l) {
                BOOST_TEST_CONTEXT("level " << l) {
                    // OpenSlide 3.4.1 with libtiff >= 4.5 garbles the libtiff-decoded levels
                    // narrower or shorter than a tile (see rgba_decoder.cpp): there libtiff's
                    // own decode of the whole directory is the reference (generic TIFFs: the
                    // directory index is the level's).
                    const bool small = native.level_width(l) < native.tile_width(l) ||
                                       native.level_height(l) < native.tile_height(l);
                    const fit::Image whole =
                        codec == "AdobeDeflate" && small ? libtiff_image(path, l) : fit::read_level(path, l);
                    BOOST_TEST(native.codec(l) == codec);
                    BOOST_TEST(native.tile_width(l) > 0);
                    BOOST_TEST(native.level_width(l) == whole.width);
                    BOOST_TEST(native.level_height(l) == whole.height);
                    BOOST_TEST((read(native, l, 0, 0, whole.width, whole.height) == whole.rgb));
                    std::uniform_int_distribution<std::int64_t> px(-40, std::max<std::int64_t>(0, whole.width - 10));
                    std::uniform_int_distribution<std::int64_t> py(-40, std::max<std::int64_t>(0, whole.height - 10));
                    for (int k = 0; k < 12; ++k) {
                        const std::int64_t x = px(rng), y = py(rng), w = 1 + k * 23, h = 1 + k * 19;
                        BOOST_TEST((read(native, l, x, y, w, h) == crop(whole, x, y, w, h).rgb),
                                   "region " << x << "," << y << " " << w << "x" << h);
                    }
                }
            }
        }
    }
}

// CropBreastSlide's levels have non-integer downsamples (2.0012, 4.0035, ...): OpenSlide's
// read at level-0 coordinates resamples them by the sub-pixel remainder, the native read
// gives the level's own pixels at any position.
BOOST_AUTO_TEST_CASE(native_reads_exact_level_pixels_where_openslide_resamples) {
    const std::string path = fit::shared_slide("CropBreastSlide.tiff");
    const Slide native(path, SlideReader::native);
    const Slide os(path, SlideReader::openslide);
    for (int l = 1; l < 3; ++l) {
        BOOST_TEST_CONTEXT("level " << l) {
            BOOST_TEST(native.level_downsample(l) != std::round(native.level_downsample(l)));
            const fit::Image whole = fit::read_level(path, l);
            std::int64_t os_off = 0, total = 0;
            for (std::int64_t x : {101, 203, 333})
                for (std::int64_t y : {77, 150}) {
                    const std::vector<std::uint8_t> want = crop(whole, x, y, 128, 128).rgb;
                    BOOST_TEST((read(native, l, x, y, 128, 128) == want));
                    os_off += differing(read(os, l, x, y, 128, 128), want, 3);
                    total += static_cast<std::int64_t>(want.size());
                }
            BOOST_TEST_MESSAGE(fmt::format("level {}: OpenSlide differs by more than 3 in {:.1f}% of the samples",
                                           l, 100.0 * os_off / total));
        }
    }
}

// Decoding JPEG at 1/2, 1/4, 1/8 in the DCT domain against area-averaging the full decode:
// what the plan's shrink by 2/4/8 gets instead. Measured on a synthetic H&E-like slide
// (quality 80): mean |diff| 0.49, 0.44, 0.28 grey levels at 1/2, 1/4, 1/8; 99.9th
// percentile 9, 6, 4; max 31, 16, 8 (at sharp edges, where the DCT's ringing differs).
BOOST_AUTO_TEST_CASE(scaled_jpeg_decode_is_close_to_area_averaging) {
    fit::TempDir dir;
    const std::string path = synthetic(dir, "s.tiff", 2048, 1536, 80);
    const Slide s(path, SlideReader::native);
    BOOST_TEST(!s.reads_scaled(0, 3));
    BOOST_TEST(!Slide(path, SlideReader::openslide).reads_scaled(0, 2));
    const std::vector<std::uint8_t> full = read(s, 0, 0, 0, 2048, 1536);
    for (int scale : {2, 4, 8}) {
        BOOST_TEST_CONTEXT("1/" << scale) {
            BOOST_REQUIRE(s.reads_scaled(0, scale));
            const int n = 2048 / scale;
            std::vector<std::uint8_t> scaled(static_cast<std::size_t>(n * n * 3));
            s.read_level_scaled(0, scale, 0, 0, n, n, scaled.data());
            std::vector<std::uint8_t> box(scaled.size());
            area_resize(full.data(), 2048, 1536, 0, 0, scale, n, box.data());
            // Rows past the level's height are white in both.
            const std::size_t rows = static_cast<std::size_t>(1536 / scale);
            std::vector<int> diffs;
            double sum = 0;
            for (std::size_t i = 0; i < rows * n * 3; ++i) {
                const int d = std::abs(int(scaled[i]) - int(box[i]));
                diffs.push_back(d);
                sum += d;
            }
            std::sort(diffs.begin(), diffs.end());
            const double mean = sum / diffs.size();
            const int p999 = diffs[diffs.size() * 999 / 1000];
            BOOST_TEST_MESSAGE(fmt::format("1/{}: mean |diff| {:.2f}, 99.9th percentile {}, max {}", scale, mean, p999,
                                           diffs.back()));
            BOOST_TEST(mean < 1.5);
            BOOST_TEST(p999 <= 12);
            BOOST_TEST(scaled[rows * n * 3] == 255);
        }
    }
}

// The walk of a plan at overlap 0.8 decodes each tile it touches exactly once, from two
// readers at once, with the cache the plan stage gives it.
BOOST_AUTO_TEST_CASE(walk_decodes_each_tile_once_at_any_overlap) {
    fit::TempDir dir;
    const std::string path = synthetic(dir, "s.tiff", 3000, 2000, 80);
    for (int overlap : {0, 204}) {
        BOOST_TEST_CONTEXT("overlap " << overlap) {
            const Slide s(path, SlideReader::native);
            Config cfg;
            cfg.patch_size = 256;
            cfg.overlap = overlap;
            const SlidePlan plan = plan_slide(s, 0, tiling_for(cfg, ModelConfig{}), cfg);
            const std::int64_t cache = tile_cache_bytes(s, {plan}, cfg.tile_cache_mb);
            s.set_tile_cache_bytes(cache);
            // A band as deep as a section (2 patch rows: 512 or 308 px, 2 tile rows) and one more
            // tile row, 12 tiles across.
            BOOST_TEST(cache == 3 * 12 * 256 * 256 * 3);
            std::set<std::pair<std::int64_t, std::int64_t>> tiles;
            for (std::uint64_t i = 0; i < plan.count(); ++i) {
                const PatchKey k = plan.key(i);
                for (std::int64_t ty = k.y / 256; ty <= (k.y + 255) / 256; ++ty)
                    for (std::int64_t tx = k.x / 256; tx <= (k.x + 255) / 256; ++tx) tiles.insert({tx, ty});
            }
            // Two readers, a few patches apart in the walk, as the pipeline's readers are.
            std::atomic<std::uint64_t> next{0};
            const auto reader = [&] {
                std::vector<std::uint8_t> rgb(256 * 256 * 3);
                for (std::uint64_t i; (i = next.fetch_add(1)) < plan.count();) {
                    const PatchKey k = plan.key(i);
                    s.read_level(0, k.x, k.y, 256, 256, rgb.data());
                }
            };
            std::thread a(reader), b(reader);
            a.join();
            b.join();
            const Slide::ReadStats st = s.read_stats();
            BOOST_TEST(st.tiles_decoded == static_cast<std::int64_t>(tiles.size()));
            BOOST_TEST(st.tile_cache_peak_bytes <= cache + 256 * 256 * 3);
            BOOST_TEST_MESSAGE(fmt::format("{} patches, {} tiles decoded, {} hits, {} waits", plan.count(),
                                           st.tiles_decoded, st.tile_cache_hits, st.tile_cache_waits));
        }
    }
}

// The cache itself: concurrent misses decode once, an error reaches every waiter and is not
// kept, least recently used tiles go first, and the bytes stay within capacity + one tile.
BOOST_AUTO_TEST_CASE(tile_cache_decodes_once_and_stays_bounded) {
    tiff::TileCache cache(10 * 300);
    std::atomic<int> decodes{0};
    const auto tile = [&](int bytes, int sleep_ms = 0) {
        return [&decodes, bytes, sleep_ms] {
            ++decodes;
            std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
            tiff::DecodedTile t;
            t.width = 10;
            t.height = 10;
            t.rgb.assign(static_cast<std::size_t>(bytes), static_cast<std::uint8_t>(bytes % 251));
            return t;
        };
    };
    std::vector<std::shared_ptr<const tiff::DecodedTile>> got(8);
    tbb::parallel_for(0, 8, [&](int i) { got[static_cast<std::size_t>(i)] = cache.get(1, tile(300, 50)); });
    BOOST_TEST(decodes == 1);
    for (const auto& g : got) BOOST_TEST(g.get() == got[0].get());

    std::atomic<int> failures{0};
    tbb::parallel_for(0, 4, [&](int) {
        try {
            cache.get(2, [&]() -> tiff::DecodedTile {
                ++decodes;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                throw std::runtime_error("corrupt");
            });
        } catch (const std::runtime_error& e) {
            failures += std::string(e.what()) == "corrupt";
        }
    });
    BOOST_TEST(failures == 4);
    BOOST_TEST(decodes <= 5);  // the failed decode is not kept: a later get tries again
    const int before = decodes;
    BOOST_TEST(cache.get(2, tile(300))->rgb.size() == 300u);
    BOOST_TEST(decodes == before + 1);

    for (std::uint64_t k = 10; k < 30; ++k) cache.get(k, tile(300));
    const tiff::TileCacheStats st = cache.stats();
    BOOST_TEST(st.peak_bytes <= 10 * 300 + 300);
    BOOST_TEST(st.evicted >= 10);
    const int d = decodes;
    cache.get(29, tile(300));  // most recent: still there
    BOOST_TEST(decodes == d);
    cache.get(10, tile(300));  // least recent: gone
    BOOST_TEST(decodes == d + 1);
}

// Corrupt JPEG data: the error names the slide, the level and the tile; reads of other
// tiles go on working (no state shared with the broken one).
BOOST_AUTO_TEST_CASE(corrupt_tile_names_level_and_tile) {
    const std::string bad = fit::shared_slide("negative/unreadable.svs");
    const Slide s(bad, SlideReader::native);
    std::vector<std::uint8_t> rgb;
    std::string message;
    try {
        read(s, 0, 0, 0, s.level_width(0), s.level_height(0));
    } catch (const SlideError& e) {
        message = e.what();
    }
    BOOST_TEST_MESSAGE(message);
    BOOST_TEST(message.find(bad) != std::string::npos);
    BOOST_TEST(message.find("level 0 tile (") != std::string::npos);
    BOOST_TEST(message.find("JPEG") != std::string::npos);

    // A tile overwritten with garbage in a synthetic slide: only the patches on it fail.
    fit::TempDir dir;
    const std::string path = synthetic(dir, "s.tiff", 1024, 768, 80);
    {
        TIFF* t = TIFFOpen(path.c_str(), "r");
        BOOST_REQUIRE(t);
        const std::uint64_t off = TIFFGetStrileOffset(t, 5), n = TIFFGetStrileByteCount(t, 5);  // tile (1, 1)
        TIFFClose(t);
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(off + n / 3));
        const std::string junk(static_cast<std::size_t>(n / 3), '\xff');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    const Slide g(path, SlideReader::native);
    BOOST_CHECK_EXCEPTION(read(g, 0, 300, 300, 64, 64), SlideError, [](const SlideError& e) {
        return std::string(e.what()).find("level 0 tile (1, 1): JPEG") != std::string::npos;
    });
    BOOST_CHECK_NO_THROW(read(g, 0, 0, 0, 256, 256));
    BOOST_CHECK_NO_THROW(read(g, 0, 600, 300, 64, 64));
}

// A file cut short under a reader (a copy still in progress) is an error that says so.
BOOST_AUTO_TEST_CASE(tile_past_the_end_of_the_file) {
    fit::TempDir dir;
    const std::string path = synthetic(dir, "s.tiff", 1024, 768, 80);
    TIFF* t = TIFFOpen(path.c_str(), "r");
    BOOST_REQUIRE(t);
    const std::uint64_t off = TIFFGetStrileOffset(t, 11);  // the last level-0 tile
    TIFFClose(t);
    const Slide s(path, SlideReader::native);  // directories read before the cut
    fs::resize_file(path, off + 10);
    BOOST_CHECK_EXCEPTION(read(s, 0, 1000, 700, 16, 16), SlideError, [](const SlideError& e) {
        BOOST_TEST_MESSAGE(e.what());
        return std::string(e.what()).find("level 0 tile (3, 2): the file ends inside the tile's bytes: truncated?") !=
               std::string::npos;
    });
}

// runtime.reader = "native" on a file it cannot read fails the slide with the reason; auto
// falls back to OpenSlide.
BOOST_AUTO_TEST_CASE(native_refuses_what_it_cannot_read_and_auto_falls_back) {
    fit::TempDir dir;
    const std::string path = dir / "lab.tiff";
    {
        // CIE L*a*b* pixels (photometric 8): libtiff's RGBA interface has no conversion for
        // this photometric with these tags, so neither reader can decode it.
        TIFF* t = TIFFOpen(path.c_str(), "w");
        BOOST_REQUIRE(t);
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 64);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, 64);
        TIFFSetField(t, TIFFTAG_TILEWIDTH, 64);
        TIFFSetField(t, TIFFTAG_TILELENGTH, 64);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 2);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_SEPARATED);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        std::vector<std::uint8_t> px(64 * 64 * 2, 100);
        TIFFWriteEncodedTile(t, 0, px.data(), static_cast<tmsize_t>(px.size()));
        TIFFClose(t);
    }
    BOOST_CHECK_EXCEPTION(Slide(path, SlideReader::native), SlideError, [](const SlideError& e) {
        BOOST_TEST_MESSAGE(e.what());
        return std::string(e.what()).find("runtime.reader = \"native\" cannot read it: directory 0") != std::string::npos;
    });
    const Slide a(path, SlideReader::automatic);
    BOOST_TEST(std::string(a.reader()) == "openslide");
    BOOST_TEST(!a.native_unavailable().empty());
}

// Aperio's zero-length tiles (an encoder bug): OpenSlide draws them transparent at level 0
// and from the level above at lower levels, and so does the native reader (white; area
// averaging where OpenSlide paints with cairo). The slide: a synthetic JPEG pyramid's
// directories 0 and 2 copied tile by tile into an Aperio-described file, leaving out level-0
// tile (2, 1) and level-1 tile (0, 1).
BOOST_AUTO_TEST_CASE(aperio_zero_length_tiles_are_drawn_like_openslide) {
    fit::TempDir dir;
    const std::string src = synthetic(dir, "src.tiff", 2048, 1536, 80);
    const std::string path = dir / "holes.svs";
    {
        TIFF* in = TIFFOpen(src.c_str(), "r");
        TIFF* out = TIFFOpen(path.c_str(), "w");
        BOOST_REQUIRE(in && out);
        for (const int d : {0, 2}) {
            BOOST_REQUIRE(TIFFSetDirectory(in, static_cast<tdir_t>(d)));
            // Tile (2, 1) of directory 0 (8 tiles across), tile (0, 1) of directory 2 (2 across).
            const std::uint32_t hole = d == 0 ? 1 * 8 + 2 : 1 * 2 + 0;
            BOOST_REQUIRE(tiff::copy_directory_raw(
                in, out,
                d == 0 ? "Aperio Image Library v11.2.1\r\n2048x1536 [0,0 2048x1536] (256x256) JPEG/RGB Q=80|AppMag = 40|MPP = 0.25"
                       : "",
                [hole](std::uint32_t t) { return t != hole; }));
        }
        TIFFClose(out);
        TIFFClose(in);
    }
    BOOST_REQUIRE(fit::property(path, "openslide.vendor") == "aperio");
    const Slide native(path, SlideReader::native);
    BOOST_REQUIRE(native.level_count() == 2);
    // Level 0: the hole is white in both, every pixel equal.
    const fit::Image l0 = fit::read_level(path, 0);
    const std::vector<std::uint8_t> n0 = read(native, 0, 0, 0, 2048, 1536);
    BOOST_TEST((n0 == l0.rgb));
    BOOST_TEST(crop(l0, 512, 256, 256, 256).rgb == std::vector<std::uint8_t>(256 * 256 * 3, 255));
    // Level 1: tile (0, 1) is left out, and tile (0, 0) holds the level-0 hole's area, so
    // OpenSlide draws both from level 0, as the native reader does; the rest is the file's.
    const fit::Image l1 = fit::read_level(path, 1);
    const std::vector<std::uint8_t> n1 = read(native, 1, 0, 0, 512, 384);
    std::int64_t off_inside = 0, inside = 0, off_outside = 0;
    double sum = 0;
    for (std::int64_t y = 0; y < 384; ++y)
        for (std::int64_t x = 0; x < 512; ++x)
            for (int c = 0; c < 3; ++c) {
                const int d = std::abs(int(n1[(y * 512 + x) * 3 + c]) - int(l1.at(x, y)[c]));
                if (x < 256) {  // tiles (0, 0) and (0, 1)
                    ++inside;
                    sum += d;
                    off_inside += d > 12;
                } else {
                    off_outside += d != 0;
                }
            }
    BOOST_TEST_MESSAGE(fmt::format("drawn tiles: mean |diff| from OpenSlide {:.2f}, {} of {} off by more than 12",
                                   sum / inside, off_inside, inside));
    BOOST_TEST(off_outside == 0);
    BOOST_TEST(sum / inside < 2.0);
    BOOST_TEST(off_inside < inside / 100);
    // Read at 1/2, a drawn tile is the level above area-averaged straight to that size: the
    // full-size drawn tile (0, 0) averaged by 2, to the rounding of the two steps.
    std::vector<std::uint8_t> half(128 * 128 * 3), box(128 * 128 * 3);
    native.read_level_scaled(1, 2, 0, 0, 128, 128, half.data());
    std::vector<std::uint8_t> full(256 * 256 * 3);
    for (std::int64_t y = 0; y < 256; ++y)
        std::copy_n(&n1[static_cast<std::size_t>(y * 512 * 3)], 256 * 3, &full[static_cast<std::size_t>(y * 256 * 3)]);
    area_resize(full.data(), 256, 256, 0, 0, 2, 128, box.data());
    BOOST_TEST(differing(half, box, 1) == 0);
}

// flowinfer synth --format svs: the generic pyramid's tiles in an Aperio file with levels at
// 4x, which both readers open as "aperio" and plan at 0.5 µm/px as level 0 shrunk by 2.
BOOST_AUTO_TEST_CASE(synthetic_svs_is_aperio_with_levels_every_4x) {
    fit::TempDir dir;
    SyntheticSlideSpec spec;
    spec.width = 2048;
    spec.height = 1536;
    spec.jpeg_quality = 80;
    write_synthetic_slide(dir / "s.tiff", spec);
    write_synthetic_svs(dir / "s.svs", spec);
    BOOST_TEST(fit::property(dir / "s.svs", "openslide.vendor") == "aperio");
    BOOST_TEST(fit::property(dir / "s.svs", "openslide.mpp-x") == "0.25");
    BOOST_REQUIRE(fit::level_count(dir / "s.svs") == 2);
    BOOST_TEST(fit::level_downsample(dir / "s.svs", 1) == 4.0);
    BOOST_TEST((fit::read_level(dir / "s.svs", 0).rgb == fit::read_level(dir / "s.tiff", 0).rgb));
    BOOST_TEST((fit::read_level(dir / "s.svs", 1).rgb == fit::read_level(dir / "s.tiff", 2).rgb));
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
    BOOST_TEST(files == 2u);  // no scratch pyramid left behind
    const Slide s(dir / "s.svs", SlideReader::native);
    Config cfg;
    cfg.patch_size = 256;
    cfg.mpp = 0.5;
    const SlidePlan plan = plan_slide(s, 0, tiling_for(cfg, ModelConfig{}), cfg);
    BOOST_TEST(plan.level == 0);
    BOOST_TEST(plan.resize == 2.0);
    BOOST_TEST(s.reads_scaled(0, 2));
}

// The JPEG decoder on its own: an abbreviated tile needs its directory's JPEGTables, tables
// must be a tables-only stream, and the stream must be the tile size the directory says.
BOOST_AUTO_TEST_CASE(jpeg_decoder_needs_tables_and_the_right_size) {
    fit::TempDir dir;
    const std::string path = synthetic(dir, "s.tiff", 512, 512, 80);
    TIFF* t = TIFFOpen(path.c_str(), "r");
    BOOST_REQUIRE(t);
    std::uint32_t n = 0;
    void* p = nullptr;
    BOOST_REQUIRE(TIFFGetField(t, TIFFTAG_JPEGTABLES, &n, &p));
    const std::vector<std::uint8_t> tables(static_cast<const std::uint8_t*>(p), static_cast<const std::uint8_t*>(p) + n);
    std::vector<std::uint8_t> tile(static_cast<std::size_t>(TIFFGetStrileByteCount(t, 0)));
    BOOST_REQUIRE(TIFFReadRawTile(t, 0, tile.data(), static_cast<tmsize_t>(tile.size())) > 0);
    TIFFClose(t);
    using tiff::decode_jpeg_tile;
    const tiff::DecodedTile ok = decode_jpeg_tile(tables, tile.data(), tile.size(), tiff::JpegColour::ycbcr, 256, 256);
    BOOST_TEST(ok.width == 256);
    BOOST_TEST(ok.rgb.size() == 256u * 256 * 3);
    const auto fails = [&](const std::vector<std::uint8_t>& tb, int w, int scale, const std::string& says) {
        try {
            decode_jpeg_tile(tb, tile.data(), tile.size(), tiff::JpegColour::ycbcr, w, 256, scale);
        } catch (const tiff::TileDecodeError& e) {
            BOOST_TEST_MESSAGE(e.what());
            return std::string(e.what()).find(says) != std::string::npos;
        }
        return false;
    };
    BOOST_TEST(fails({}, 256, 1, "JPEG: "));  // no Huffman tables
    BOOST_TEST(fails(std::vector<std::uint8_t>(tile.begin(), tile.begin() + 600), 256, 1, "JPEG"));
    BOOST_TEST(fails(tables, 240, 1, "tile is 256x256 with 3 components, expected 240x256"));
    BOOST_TEST(fails(tables, 256, 3, "scale 1/3"));
    BOOST_TEST(fails(tables, 256, 1, "") == false);  // the good case does not throw
}
