#define BOOST_TEST_MODULE test_tiff_writer
#include <boost/test/unit_test.hpp>

#include "stages/tiff/writer.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

using flowinfer::Compression;
using flowinfer::OutputError;
using flowinfer::PyramidTiffWriter;
using flowinfer::TiffLayout;

namespace {

// Level-0 value of the grey test image: not smooth, so any misplaced tile or pixel shows.
std::uint8_t grey_f(std::int64_t x, std::int64_t y) {
    return static_cast<std::uint8_t>((x * 7 + y * 13 + (x * y) % 31) & 255);
}

using PixelFn = std::function<void(std::int64_t, std::int64_t, std::uint8_t*)>;

// Writes every level-0 tile in a shuffled order. Pixels past the image edge are filled with
// junk: the writer must ignore them.
void write_all(PyramidTiffWriter& w, const TiffLayout& L, const PixelFn& fn, unsigned seed = 7,
               bool shuffle = true) {
    std::vector<std::pair<std::int64_t, std::int64_t>> order;
    for (std::int64_t ty = 0; ty < w.tiles_y(); ++ty)
        for (std::int64_t tx = 0; tx < w.tiles_x(); ++tx) order.emplace_back(tx, ty);
    if (shuffle) std::shuffle(order.begin(), order.end(), std::mt19937(seed));
    const int T = L.tile, ch = L.channels;
    std::vector<std::uint8_t> tile(static_cast<std::size_t>(T) * T * ch);
    for (auto [tx, ty] : order) {
        for (int j = 0; j < T; ++j)
            for (int i = 0; i < T; ++i) {
                std::uint8_t* p = &tile[(static_cast<std::size_t>(j) * T + i) * ch];
                const std::int64_t x = tx * T + i, y = ty * T + j;
                if (x >= L.width || y >= L.height)
                    std::fill(p, p + ch, std::uint8_t(201));
                else
                    fn(x, y, p);
            }
        w.write_tile(tx, ty, tile.data());
    }
}

TiffLayout grey_layout(std::int64_t w, std::int64_t h, Compression c) {
    TiffLayout L;
    L.width = w;
    L.height = h;
    L.channels = 1;
    L.compression = c;
    return L;
}

void write_grey(const std::string& path, const TiffLayout& L, int* levels = nullptr,
                std::int64_t* peak = nullptr, bool* spilled = nullptr, bool shuffle = true) {
    PyramidTiffWriter w(path, L);
    write_all(w, L, [](std::int64_t x, std::int64_t y, std::uint8_t* p) { *p = grey_f(x, y); }, 7,
              shuffle);
    BOOST_TEST(w.complete());
    w.finish();
    if (levels) *levels = w.levels();
    if (peak) *peak = w.peak_memory_bytes();
    if (spilled) *spilled = w.spilled();
}

// Box average (only pixels inside the image) of the 2x2 block of `src` under (x, y).
int box_avg(const fit::Image& src, std::int64_t x, std::int64_t y, int c) {
    int s = 0, n = 0;
    for (std::int64_t yy = 2 * y; yy <= 2 * y + 1 && yy < src.height; ++yy)
        for (std::int64_t xx = 2 * x; xx <= 2 * x + 1 && xx < src.width; ++xx) {
            s += src.at(xx, yy)[c];
            ++n;
        }
    return (s + n / 2) / n;
}

// Each level k >= 1 is the 2x2 box average of level k-1, within +-1 (first channel).
void check_levels_are_box_averages(const std::string& path, fit::Image prev, int levels) {
    for (int k = 1; k < levels; ++k) {
        const fit::Image lk = fit::read_level(path, k);
        BOOST_TEST(lk.width == (prev.width + 1) / 2);
        BOOST_TEST(lk.height == (prev.height + 1) / 2);
        int worst = 0;
        for (std::int64_t y = 0; y < lk.height; ++y)
            for (std::int64_t x = 0; x < lk.width; ++x)
                worst = std::max(worst, std::abs(int(lk.at(x, y)[0]) - box_avg(prev, x, y, 0)));
        BOOST_TEST(worst <= 1, "level " << k << " worst " << worst);
        prev = lk;
    }
}

std::vector<std::string> dir_entries(const std::string& dir) {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(level_geometry) {
    fit::TempDir dir;
    auto levels = [&](std::int64_t w, std::int64_t h) {
        PyramidTiffWriter wr(dir / "g.tif", grey_layout(w, h, Compression::deflate));
        return wr.levels();
    };
    BOOST_TEST(levels(2220, 2967) == 5);
    BOOST_TEST(levels(300, 250) == 2);
    BOOST_TEST(levels(16, 16) == 1);
    BOOST_TEST(levels(257, 1) == 2);
    BOOST_TEST(levels(256, 256) == 1);
    PyramidTiffWriter wr(dir / "g.tif", grey_layout(1001, 701, Compression::deflate));
    BOOST_TEST(wr.tiles_x() == 4);
    BOOST_TEST(wr.tiles_y() == 3);
}

BOOST_AUTO_TEST_CASE(grey_every_compression_round_trips) {
    for (Compression c : {Compression::deflate, Compression::lzw, Compression::none}) {
        BOOST_TEST_CONTEXT("compression " << static_cast<int>(c)) {
            fit::TempDir dir;
            const std::string path = dir / "grey.tif";
            const TiffLayout L = grey_layout(1001, 701, c);
            int levels = 0;
            write_grey(path, L, &levels);
            BOOST_TEST(levels == 3);
            BOOST_TEST(fit::level_count(path) == levels);
            BOOST_TEST(dir_entries(dir.path()).size() == 1u);  // no .partial, no spill file

            const fit::Image l0 = fit::read_level(path, 0);
            BOOST_TEST(l0.width == 1001);
            BOOST_TEST(l0.height == 701);
            std::int64_t bad = 0;
            for (std::int64_t y = 0; y < l0.height; ++y)
                for (std::int64_t x = 0; x < l0.width; ++x)
                    for (int k = 0; k < 3; ++k) bad += l0.at(x, y)[k] != grey_f(x, y);
            BOOST_TEST(bad == 0);

            for (int k = 1; k < levels; ++k) {
                const double ds = fit::level_downsample(path, k);
                BOOST_TEST(std::abs(ds / std::ldexp(1.0, k) - 1) < 0.01, "level " << k << " ds " << ds);
            }

            // Level 1 (501x351: odd edges average 1 or 2 pixels) and level 2 from level 1.
            check_levels_are_box_averages(path, l0, levels);
        }
    }
}

// One-value tiles take the writer's precompressed path; mixed with ordinary tiles, in grey
// (with the predictor) and RGB, on every level down to the thin re-cut ones, every pixel reads
// back through OpenSlide as written, and the file is far smaller than the raw pixels.
BOOST_AUTO_TEST_CASE(uniform_tiles_round_trip) {
    for (int ch : {1, 3}) {
        BOOST_TEST_CONTEXT("channels " << ch) {
            fit::TempDir dir;
            const std::string path = dir / "uniform.tif";
            TiffLayout L = grey_layout(1300, 900, Compression::deflate);
            L.channels = ch;
            // Tile column 2 holds a gradient; every other tile one value that depends on the tile.
            const auto value = [](std::int64_t x, std::int64_t y, int c) -> std::uint8_t {
                const std::int64_t tx = x / 256, ty = y / 256;
                if (tx == 2) return static_cast<std::uint8_t>((x + 3 * y + 50 * c) & 255);
                const std::uint8_t v[] = {0, 255, 7, 0, 128};
                return static_cast<std::uint8_t>(v[(tx + ty) % 5] + 30 * c);
            };
            {
                PyramidTiffWriter w(path, L);
                write_all(w, L, [&](std::int64_t x, std::int64_t y, std::uint8_t* p) {
                    for (int c = 0; c < ch; ++c) p[c] = value(x, y, c);
                });
                w.finish();
            }
            const fit::Image l0 = fit::read_level(path, 0);
            BOOST_TEST_REQUIRE(l0.width == 1300);
            std::int64_t bad = 0;
            for (std::int64_t y = 0; y < l0.height; ++y)
                for (std::int64_t x = 0; x < l0.width; ++x)
                    for (int k = 0; k < 3; ++k) bad += l0.at(x, y)[k] != value(x, y, ch == 1 ? 0 : k);
            BOOST_TEST(bad == 0);
            check_levels_are_box_averages(path, l0, fit::level_count(path));
            BOOST_TEST(std::filesystem::file_size(path) < 1300u * 900 * ch / 8);
        }
    }
}

BOOST_AUTO_TEST_CASE(rgb_box_average_and_tags) {
    fit::TempDir dir;
    const std::string path = dir / "rgb.tif";
    TiffLayout L;
    L.width = 777;
    L.height = 555;
    L.channels = 3;
    L.mpp = 0.5;
    L.description = "rgb test";
    auto fn = [](std::int64_t x, std::int64_t y, std::uint8_t* p) {
        p[0] = static_cast<std::uint8_t>(x & 255);
        p[1] = static_cast<std::uint8_t>(y & 255);
        p[2] = static_cast<std::uint8_t>((x + 3 * y) % 251);
    };
    {
        PyramidTiffWriter w(path, L);
        write_all(w, L, fn);
        w.finish();
        BOOST_TEST(w.levels() == 3);
        BOOST_TEST(w.path() == path);
    }
    const fit::Image l0 = fit::read_level(path, 0);
    std::int64_t bad = 0;
    for (std::int64_t y = 0; y < l0.height; ++y)
        for (std::int64_t x = 0; x < l0.width; ++x) {
            std::uint8_t e[3];
            fn(x, y, e);
            for (int c = 0; c < 3; ++c) bad += l0.at(x, y)[c] != e[c];
        }
    BOOST_TEST(bad == 0);
    const fit::Image l1 = fit::read_level(path, 1);
    int worst = 0;
    for (std::int64_t y = 0; y < l1.height; ++y)
        for (std::int64_t x = 0; x < l1.width; ++x)
            for (int c = 0; c < 3; ++c)
                worst = std::max(worst, std::abs(int(l1.at(x, y)[c]) - box_avg(l0, x, y, c)));
    BOOST_TEST(worst <= 1);

    // OpenSlide 3.4.1 derives no openslide.mpp-x for generic TIFFs; fall back to the tag.
    const std::string mpp = fit::property(path, "openslide.mpp-x");
    if (!mpp.empty()) {
        BOOST_TEST(std::stod(mpp) == 0.5, boost::test_tools::tolerance(1e-4));
    } else {
        BOOST_TEST(fit::property(path, "tiff.ResolutionUnit") == "centimeter");
        BOOST_TEST(std::stod(fit::property(path, "tiff.XResolution")) == 20000.0,
                   boost::test_tools::tolerance(1e-6));
        BOOST_TEST(std::stod(fit::property(path, "tiff.YResolution")) == 20000.0,
                   boost::test_tools::tolerance(1e-6));
    }
    BOOST_TEST(fit::property(path, "openslide.vendor") == "generic-tiff");
    BOOST_TEST(fit::property(path, "tiff.ImageDescription") == "rgb test");
    BOOST_TEST(fit::property(path, "tiff.Software") == "flowinfer");

    // Lower levels: reduced-image directories with resolution halved per level, no description.
    TIFF* t = TIFFOpen(path.c_str(), "r");
    BOOST_REQUIRE(t);
    BOOST_TEST(TIFFNumberOfDirectories(t) == 3);
    for (int k = 0; k < 3; ++k) {
        BOOST_REQUIRE(TIFFSetDirectory(t, static_cast<tdir_t>(k)));
        std::uint32_t sub = 0;
        TIFFGetFieldDefaulted(t, TIFFTAG_SUBFILETYPE, &sub);
        BOOST_TEST(sub == (k == 0 ? 0u : std::uint32_t(FILETYPE_REDUCEDIMAGE)));
        float xr = 0;
        BOOST_TEST(TIFFGetField(t, TIFFTAG_XRESOLUTION, &xr) == 1);
        BOOST_TEST(xr == 20000.0 / std::ldexp(1.0, k), boost::test_tools::tolerance(1e-4));
        char* desc = nullptr;
        BOOST_TEST((TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &desc) == 1) == (k == 0));
        BOOST_TEST(TIFFIsTiled(t));
    }
    TIFFClose(t);
}

BOOST_AUTO_TEST_CASE(no_resolution_tags_without_mpp) {
    fit::TempDir dir;
    const std::string path = dir / "nompp.tif";
    write_grey(path, grey_layout(300, 250, Compression::deflate));
    BOOST_TEST(fit::property(path, "tiff.XResolution").empty());
    BOOST_TEST(fit::property(path, "openslide.mpp-x").empty());
    BOOST_TEST(fit::level_count(path) == 2);
}

BOOST_AUTO_TEST_CASE(palette_colours_and_nearest_reduction) {
    fit::TempDir dir;
    const std::string path = dir / "labels.tif";
    TiffLayout L = grey_layout(613, 389, Compression::deflate);
    L.palette_rgb.resize(256 * 3);
    for (int i = 0; i < 256; ++i) {
        L.palette_rgb[3 * i] = static_cast<std::uint8_t>(i * 37 % 256);
        L.palette_rgb[3 * i + 1] = static_cast<std::uint8_t>(255 - i);
        L.palette_rgb[3 * i + 2] = static_cast<std::uint8_t>(i * 11 % 256);
    }
    auto label = [](std::int64_t x, std::int64_t y) { return static_cast<std::uint8_t>((x / 7 + y / 5) % 6); };
    {
        PyramidTiffWriter w(path, L);
        write_all(w, L, [&](std::int64_t x, std::int64_t y, std::uint8_t* p) { *p = label(x, y); });
        w.finish();
        BOOST_TEST(w.levels() == 3);
    }
    BOOST_TEST(fit::level_count(path) == 3);
    for (int k = 0; k < 3; ++k) {
        const fit::Image img = fit::read_level(path, k);
        const std::int64_t f = std::int64_t(1) << k;  // nearest: top-left of each block
        std::int64_t bad = 0;
        for (std::int64_t y = 0; y < img.height; ++y)
            for (std::int64_t x = 0; x < img.width; ++x) {
                const int l = label(x * f, y * f);
                for (int c = 0; c < 3; ++c) bad += img.at(x, y)[c] != L.palette_rgb[3 * l + c];
            }
        BOOST_TEST(bad == 0, "level " << k);
    }
}

BOOST_AUTO_TEST_CASE(spill_gives_identical_pixels) {
    fit::TempDir dir;
    const std::string a = dir / "mem.tif", b = dir / "spill.tif";
    TiffLayout L = grey_layout(2000, 1500, Compression::deflate);
    std::int64_t peak_mem = 0, peak_spill = 0;
    bool spilled_mem = true, spilled_spill = false;
    int levels = 0;
    // Row-major, the order the pipeline writes in, so the partial parents are bounded.
    write_grey(a, L, &levels, &peak_mem, &spilled_mem, false);
    L.spill_bytes = 0;
    write_grey(b, L, nullptr, &peak_spill, &spilled_spill, false);
    BOOST_TEST(!spilled_mem);
    BOOST_TEST(spilled_spill);
    // In memory: every lower-level tile (4x3 + 2x2 + 1 = 17 of 64 KiB) is held until finish().
    BOOST_TEST(peak_mem >= 17 * 65536);
    // Spilled: only partial parents stay, at most one row of them per level (4 + 2 + 1).
    BOOST_TEST(peak_spill <= 7 * 65536);
    BOOST_TEST(dir_entries(dir.path()).size() == 2u);  // the spill file was unlinked
    BOOST_TEST(levels == 4);
    for (int k = 0; k < levels; ++k) {
        const fit::Image ia = fit::read_level(a, k), ib = fit::read_level(b, k);
        BOOST_TEST(ia.width == ib.width);
        BOOST_TEST((ia.rgb == ib.rgb), "level " << k);
    }
}

BOOST_AUTO_TEST_CASE(unfinished_writer_leaves_nothing) {
    fit::TempDir dir;
    const std::string path = dir / "out.tif";
    TiffLayout L = grey_layout(600, 600, Compression::deflate);
    L.spill_bytes = 0;
    {
        PyramidTiffWriter w(path, L);
        std::vector<std::uint8_t> tile(256 * 256, 9);
        w.write_tile(0, 0, tile.data());
        w.write_tile(1, 0, tile.data());
        w.write_tile(0, 1, tile.data());
        w.write_tile(1, 1, tile.data());  // completes a level-1 tile, which spills
        BOOST_TEST(w.spilled());
        BOOST_TEST(!w.complete());
        BOOST_TEST(fit::exists(path + ".partial"));
        BOOST_TEST(!fit::exists(path));
        try {
            w.finish();
            BOOST_FAIL("finish() with missing tiles did not throw");
        } catch (const OutputError& e) {
            BOOST_TEST(std::string(e.what()).find("5 of 9 tiles missing") != std::string::npos, e.what());
            BOOST_TEST(e.path() == path);
        }
        BOOST_CHECK_THROW(w.write_tile(1, 1, tile.data()), OutputError);  // twice
        BOOST_CHECK_THROW(w.write_tile(3, 0, tile.data()), OutputError);  // outside
    }
    BOOST_TEST(!fit::exists(path));
    BOOST_TEST(!fit::exists(path + ".partial"));
    BOOST_TEST(dir_entries(dir.path()).empty());
}

BOOST_AUTO_TEST_CASE(unwritable_path_throws_output_error) {
    const std::string path = "/nonexistent-flowinfer-dir/sub/out.tif";
    try {
        PyramidTiffWriter w(path, grey_layout(100, 100, Compression::deflate));
        BOOST_FAIL("no error for an unwritable path");
    } catch (const OutputError& e) {
        BOOST_TEST(std::string(e.what()).find(path) != std::string::npos, e.what());
        BOOST_TEST(e.path() == path);
    }
    BOOST_CHECK_THROW(PyramidTiffWriter("x.tif", grey_layout(0, 10, Compression::deflate)), OutputError);
    // Found by fuzz_tiff_writer: with compression none the level was only refused by finish().
    TiffLayout bad_level = grey_layout(100, 100, Compression::none);
    bad_level.deflate_level = 0;
    BOOST_CHECK_THROW(PyramidTiffWriter("x.tif", bad_level), OutputError);
}

BOOST_AUTO_TEST_CASE(synthetic_slide_matches_synthetic_pixel) {
    fit::TempDir dir;
    flowinfer::SyntheticSlideSpec spec;
    spec.width = 1500;
    spec.height = 1100;
    spec.mpp = 0.5;
    spec.seed = 42;
    spec.tissue_fraction = 0.4;
    spec.jpeg_quality = 0;
    const std::string lossless = dir / "deflate.tif";
    flowinfer::write_synthetic_slide(lossless, spec);
    spec.jpeg_quality = 85;
    const std::string lossy = dir / "jpeg.tif";
    flowinfer::write_synthetic_slide(lossy, spec);
    BOOST_TEST(dir_entries(dir.path()).size() == 2u);

    BOOST_TEST(fit::level_count(lossless) == 4);
    BOOST_TEST(fit::property(lossless, "tiff.ImageDescription") ==
               "flowinfer synthetic slide seed=42 mpp=0.5");
    BOOST_TEST(std::stod(fit::property(lossless, "tiff.XResolution")) == 20000.0,
               boost::test_tools::tolerance(1e-6));
    const fit::Image a = fit::read_level(lossless, 0);
    std::int64_t bad = 0, tissue = 0;
    double sum_a[3] = {0, 0, 0};
    for (std::int64_t y = 0; y < a.height; ++y)
        for (std::int64_t x = 0; x < a.width; ++x) {
            std::uint8_t e[3];
            flowinfer::synthetic_pixel(spec, x, y, e);
            const std::uint8_t* p = a.at(x, y);
            for (int c = 0; c < 3; ++c) {
                bad += p[c] != e[c];
                sum_a[c] += p[c];
            }
            tissue += std::min({p[0], p[1], p[2]}) < 220;
        }
    BOOST_TEST(bad == 0);
    const double frac = double(tissue) / double(a.width * a.height);
    BOOST_TEST_MESSAGE("tissue fraction " << frac);
    BOOST_TEST(std::abs(frac - spec.tissue_fraction) < 0.1, "fraction " << frac);

    BOOST_TEST(fit::level_count(lossy) >= 2);
    BOOST_TEST(fit::level_count(lossy) == 4);
    const fit::Image b = fit::read_level(lossy, 0);
    BOOST_REQUIRE(b.width == a.width);
    double sum_b[3] = {0, 0, 0}, abs_err = 0;
    for (std::size_t i = 0; i < b.rgb.size(); ++i) abs_err += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
    for (std::size_t i = 0; i < b.rgb.size(); i += 3)
        for (int c = 0; c < 3; ++c) sum_b[c] += b.rgb[i + c];
    const double n = double(a.width * a.height);
    for (int c = 0; c < 3; ++c) {
        BOOST_TEST_MESSAGE("channel " << c << " mean deflate " << sum_a[c] / n << " jpeg " << sum_b[c] / n);
        BOOST_TEST(std::abs(sum_a[c] - sum_b[c]) / n < 3.0, "channel " << c);
    }
    // Per pixel: catches swapped channels or a wrong colour space, which means would hide.
    BOOST_TEST_MESSAGE("jpeg mean abs error " << abs_err / b.rgb.size());
    BOOST_TEST(abs_err / double(b.rgb.size()) < 8.0);

    // Lower levels of the lossless slide are box averages of level 0.
    const fit::Image l1 = fit::read_level(lossless, 1);
    int worst = 0;
    for (std::int64_t y = 0; y < l1.height; ++y)
        for (std::int64_t x = 0; x < l1.width; ++x)
            for (int c = 0; c < 3; ++c) worst = std::max(worst, std::abs(int(l1.at(x, y)[c]) - box_avg(a, x, y, c)));
    BOOST_TEST(worst <= 1);
}

BOOST_AUTO_TEST_CASE(synthetic_pixel_is_deterministic_and_seeded) {
    flowinfer::SyntheticSlideSpec s1, s2;
    s2.seed = s1.seed + 1;
    int differ = 0;
    for (std::int64_t i = 0; i < 2000; ++i) {
        const std::int64_t x = (i * 7919) % s1.width, y = (i * 104729) % s1.height;
        std::uint8_t a[3], b[3], c[3];
        flowinfer::synthetic_pixel(s1, x, y, a);
        flowinfer::synthetic_pixel(s1, x, y, b);
        flowinfer::synthetic_pixel(s2, x, y, c);
        BOOST_TEST((a[0] == b[0] && a[1] == b[1] && a[2] == b[2]));
        differ += a[0] != c[0] || a[1] != c[1] || a[2] != c[2];
    }
    BOOST_TEST(differ > 500);
}

// Past ~2 GB uncompressed the writer switches to BigTIFF so offsets cannot overflow.
BOOST_AUTO_TEST_CASE(large_image_is_bigtiff) {
    fit::TempDir dir;
    const std::string path = dir / "big.tif";
    TiffLayout L = grey_layout(41000, 41000, Compression::deflate);
    {
        PyramidTiffWriter w(path, L);
        std::vector<std::uint8_t> tile(256 * 256);
        for (std::int64_t ty = 0; ty < w.tiles_y(); ++ty)
            for (std::int64_t tx = 0; tx < w.tiles_x(); ++tx) {
                std::fill(tile.begin(), tile.end(), static_cast<std::uint8_t>((tx + ty) & 255));
                w.write_tile(tx, ty, tile.data());
            }
        w.finish();
    }
    std::FILE* f = std::fopen(path.c_str(), "rb");
    BOOST_REQUIRE(f);
    unsigned char hdr[4] = {0, 0, 0, 0};
    BOOST_TEST(std::fread(hdr, 1, 4, f) == 4u);
    std::fclose(f);
    BOOST_TEST(hdr[2] == 43);  // BigTIFF version (little-endian)
    BOOST_TEST(fit::level_count(path) == 9);
    const fit::Image top = fit::read_level(path, 8);
    BOOST_TEST(top.width == 161);
}

// Levels thinner than a tile get smaller file tiles (OpenSlide 3.4.1 + libtiff 4.5 misread
// tiles larger than the image); pixels must survive the re-cut at every level, level 0 too.
BOOST_AUTO_TEST_CASE(thin_levels_read_back_through_openslide) {
    for (auto [w, h] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             {200, 100}, {1000, 130}, {130, 1000}, {16, 16}, {251, 176}}) {
        BOOST_TEST_CONTEXT(w << "x" << h) {
            fit::TempDir dir;
            const std::string path = dir / "thin.tif";
            TiffLayout L = grey_layout(w, h, w == 1000 ? Compression::none : Compression::deflate);
            L.spill_bytes = 3 * 65536;  // some tiles in memory, the rest spilled
            int levels = 0;
            write_grey(path, L, &levels);
            BOOST_TEST(fit::level_count(path) == levels);
            fit::Image prev = fit::read_level(path, 0);
            std::int64_t bad = 0;
            for (std::int64_t y = 0; y < h; ++y)
                for (std::int64_t x = 0; x < w; ++x) bad += prev.at(x, y)[0] != grey_f(x, y);
            BOOST_TEST(bad == 0);
            check_levels_are_box_averages(path, prev, levels);
        }
    }
}

namespace {

// Reads a whole file (for byte-for-byte comparisons).
std::vector<char> file_bytes(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    BOOST_REQUIRE(f);
    std::vector<char> out;
    char buf[65536];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.insert(out.end(), buf, buf + n);
    std::fclose(f);
    return out;
}

// Level-0 tiles of a smooth but not flat image (so JPEG and the predictor have work), with
// some one-value tiles (the deflate cache) and junk past the edge.
std::vector<std::vector<std::uint8_t>> make_tiles(const TiffLayout& L, std::int64_t nx, std::int64_t ny) {
    const int T = L.tile, ch = L.channels;
    std::vector<std::vector<std::uint8_t>> tiles;
    for (std::int64_t ty = 0; ty < ny; ++ty)
        for (std::int64_t tx = 0; tx < nx; ++tx) {
            std::vector<std::uint8_t> t(static_cast<std::size_t>(T) * T * ch);
            const bool flat = (tx + 2 * ty) % 5 == 3;
            for (int j = 0; j < T; ++j)
                for (int i = 0; i < T; ++i)
                    for (int c = 0; c < ch; ++c) {
                        const std::int64_t x = tx * T + i, y = ty * T + j;
                        std::uint8_t v = flat ? 77 : static_cast<std::uint8_t>(grey_f(x, y) / 4 + 40 * c + x % 50);
                        if (!L.palette_rgb.empty()) v = static_cast<std::uint8_t>((x / 9 + y / 7) % 5);
                        if (x >= L.width || y >= L.height) v = 201;
                        t[(static_cast<std::size_t>(j) * T + i) * ch + c] = v;
                    }
            tiles.push_back(std::move(t));
        }
    return tiles;
}

}  // namespace

// encode_tile() on many threads, then write_tile() with its result, makes the very file that
// write_tile() alone makes, whatever the codec; tiles encoded by another writer are not used.
BOOST_AUTO_TEST_CASE(encoded_tiles_make_the_same_file) {
    struct Case {
        const char* name;
        std::int64_t w, h;
        int channels;
        Compression c;
        bool jpeg, palette;
    };
    const Case cases[] = {
        {"rgb jpeg", 1100, 700, 3, Compression::deflate, true, false},
        {"rgb deflate", 900, 530, 3, Compression::deflate, false, false},
        {"grey lzw", 1300, 520, 1, Compression::lzw, false, false},
        {"grey none", 800, 800, 1, Compression::none, false, false},
        {"palette", 700, 600, 1, Compression::deflate, false, true},
        {"thin level 0", 3000, 100, 3, Compression::deflate, true, false},
    };
    for (const Case& k : cases) {
        BOOST_TEST_CONTEXT(k.name) {
            fit::TempDir dir;
            TiffLayout L;
            L.width = k.w;
            L.height = k.h;
            L.channels = k.channels;
            L.compression = k.c;
            L.jpeg = k.jpeg;
            L.jpeg_quality = 80;
            L.mpp = 0.5;
            L.description = "encoded";
            L.spill_bytes = 2 * 65536 * k.channels;  // some lower-level tiles spill
            if (k.palette) {
                L.palette_rgb.resize(256 * 3);
                for (int i = 0; i < 256 * 3; ++i) L.palette_rgb[i] = static_cast<std::uint8_t>(i * 7);
            }
            std::vector<std::pair<std::int64_t, std::int64_t>> order;
            std::vector<std::vector<std::uint8_t>> tiles;
            std::int64_t nx = 0;
            {
                PyramidTiffWriter w(dir / "plain.tif", L);
                nx = w.tiles_x();
                tiles = make_tiles(L, w.tiles_x(), w.tiles_y());
                for (std::int64_t ty = 0; ty < w.tiles_y(); ++ty)
                    for (std::int64_t tx = 0; tx < w.tiles_x(); ++tx) order.emplace_back(tx, ty);
                std::shuffle(order.begin(), order.end(), std::mt19937(3));
                for (auto [tx, ty] : order) w.write_tile(tx, ty, tiles[ty * nx + tx].data());
                w.finish();
            }
            std::vector<flowinfer::EncodedTile> enc(tiles.size());
            {
                PyramidTiffWriter w(dir / "encoded.tif", L);
                tbb::parallel_for(std::size_t(0), tiles.size(), [&](std::size_t i) { enc[i] = w.encode_tile(tiles[i].data()); });
                std::size_t usable = 0;
                for (const auto& e : enc) usable += !e.bytes.empty();
                if (std::string(k.name) == "thin level 0")
                    BOOST_TEST(usable == 0u);  // re-cut by finish(): nothing to encode early
                else
                    BOOST_TEST(usable > tiles.size() / 2);
                for (auto [tx, ty] : order) w.write_tile(tx, ty, tiles[ty * nx + tx].data(), std::move(enc[ty * nx + tx]));
                w.finish();
            }
            {
                // Encoded by another writer (still alive): write_tile() must compress them itself.
                PyramidTiffWriter other(dir / "other.tif", L);
                PyramidTiffWriter w(dir / "foreign.tif", L);
                for (auto [tx, ty] : order) {
                    const std::uint8_t* data = tiles[ty * nx + tx].data();
                    w.write_tile(tx, ty, data, other.encode_tile(data));
                }
                w.finish();
            }
            const std::vector<char> plain = file_bytes(dir / "plain.tif");
            BOOST_TEST((file_bytes(dir / "encoded.tif") == plain));
            BOOST_TEST((file_bytes(dir / "foreign.tif") == plain));
            BOOST_TEST(fit::level_count(dir / "encoded.tif") >= 2);
            const fit::Image a = fit::read_level(dir / "encoded.tif", 0);
            BOOST_TEST(a.width == k.w);
        }
    }
}

// The progress callback sees every tile row in order, once, then the last phase.
BOOST_AUTO_TEST_CASE(synthetic_slide_progress) {
    fit::TempDir dir;
    flowinfer::SyntheticSlideSpec spec;
    spec.width = 1300;
    spec.height = 700;
    std::vector<flowinfer::SyntheticProgress> seen;
    flowinfer::write_synthetic_slide(dir / "s.tif", spec,
                                     [&](const flowinfer::SyntheticProgress& p) { seen.push_back(p); });
    BOOST_REQUIRE(seen.size() == 5u);  // before, three rows, finishing
    for (std::size_t i = 0; i < seen.size(); ++i) {
        const auto& p = seen[i];
        BOOST_TEST_CONTEXT("call " << i) {
            BOOST_TEST(p.rows_total == 3);
            BOOST_TEST(p.pixels_total == 1300 * 700);
            const std::int64_t rows = std::min<std::int64_t>(static_cast<std::int64_t>(i), 3);
            BOOST_TEST(p.rows_done == rows);
            BOOST_TEST(p.pixels_done == std::min<std::int64_t>(700, rows * 256) * 1300);
            BOOST_TEST(p.finishing == (i == 4));
        }
    }
    BOOST_TEST(fit::level_count(dir / "s.tif") == 4);

    // A callback that throws abandons the slide: the exception comes out, no file stays.
    struct Stop {};
    BOOST_CHECK_THROW(flowinfer::write_synthetic_slide(dir / "t.tif", spec,
                                                       [](const flowinfer::SyntheticProgress& p) {
                                                           if (p.rows_done == 2) throw Stop{};
                                                       }),
                      Stop);
    BOOST_TEST(dir_entries(dir.path()).size() == 1u);
}

// Tiles are made in parallel but written in order: one thread or many, the same file.
BOOST_AUTO_TEST_CASE(synthetic_slide_does_not_depend_on_threads) {
    fit::TempDir dir;
    flowinfer::SyntheticSlideSpec spec;
    spec.width = 2100;
    spec.height = 1000;
    spec.seed = 5;
    for (int q : {85, 0}) {
        spec.jpeg_quality = q;
        flowinfer::write_synthetic_slide(dir / "many.tif", spec);
        tbb::task_arena one(1);
        one.execute([&] { flowinfer::write_synthetic_slide(dir / "one.tif", spec); });
        BOOST_TEST((file_bytes(dir / "many.tif") == file_bytes(dir / "one.tif")), "quality " << q);
    }
}
