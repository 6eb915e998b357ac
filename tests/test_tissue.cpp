// tissue: saturation + Otsu tissue mask, small object/hole removal, fraction queries and the
// PNG preview, checked against independent computations (synthetic_pixel, OpenSlide reads,
// brute-force Otsu, hand-made masks, a PNG decoded back with libpng).
#define BOOST_TEST_MODULE test_tissue
#include <boost/test/unit_test.hpp>

#include "stages/slide.hpp"
#include "stages/tissue.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <png.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

using namespace flowinfer;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Saturation written out again here, independent of hsv_saturation().
double sat_of(const std::uint8_t* p) {
    const double mx = std::max({p[0], p[1], p[2]}), mn = std::min({p[0], p[1], p[2]});
    return mx > 0 ? (mx - mn) / mx : 0.0;
}

// Box average of a whole level read through OpenSlide by test_support (an independent path to
// the thumbnail compute_tissue_mask builds), f x f blocks clipped at the edges.
fit::Image box_average(const fit::Image& img, std::int64_t f) {
    fit::Image out;
    out.width = (img.width + f - 1) / f;
    out.height = (img.height + f - 1) / f;
    out.rgb.resize(static_cast<std::size_t>(out.width * out.height * 3));
    for (std::int64_t j = 0; j < out.height; ++j)
        for (std::int64_t i = 0; i < out.width; ++i)
            for (int c = 0; c < 3; ++c) {
                double sum = 0;
                int n = 0;
                for (std::int64_t y = j * f; y < std::min(img.height, (j + 1) * f); ++y)
                    for (std::int64_t x = i * f; x < std::min(img.width, (i + 1) * f); ++x, ++n)
                        sum += img.at(x, y)[c];
                out.rgb[static_cast<std::size_t>((j * out.width + i) * 3 + c)] =
                    static_cast<std::uint8_t>(std::lround(sum / n));
            }
    return out;
}

struct Counts {
    std::int64_t n = 0, tissue = 0;
    double share() const { return n ? static_cast<double>(tissue) / static_cast<double>(n) : 0; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(saturation_and_otsu) {
    BOOST_TEST(hsv_saturation(0, 0, 0) == 0.0);
    BOOST_TEST(hsv_saturation(255, 255, 255) == 0.0);
    BOOST_TEST(hsv_saturation(200, 100, 50) == 0.75, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(otsu_threshold(std::vector<std::uint64_t>(256, 0)) < 0);  // empty
    std::vector<std::uint64_t> one(256, 0);
    one[3] = 1000;
    BOOST_TEST(otsu_threshold(one) < 0);  // a single value: no split

    // Two noisy modes; compare with a brute-force search minimising the within-class
    // variance (equivalent to Otsu's criterion, computed the other way round).
    std::vector<std::uint64_t> h(256, 0);
    for (int i = 0; i < 256; ++i) {
        h[i] += static_cast<std::uint64_t>(5000 * std::exp(-0.5 * std::pow((i - 10) / 4.0, 2)));
        h[i] += static_cast<std::uint64_t>(1500 * std::exp(-0.5 * std::pow((i - 110) / 25.0, 2)));
    }
    int best_k = -1;
    double best = 1e300;
    for (int k = 0; k < 255; ++k) {
        double within = 0;
        for (auto [lo, hi] : {std::pair{0, k}, std::pair{k + 1, 255}}) {
            double n = 0, s = 0, s2 = 0;
            for (int i = lo; i <= hi; ++i) {
                const double v = i + 0.5, c = static_cast<double>(h[i]);
                n += c, s += c * v, s2 += c * v * v;
            }
            if (n > 0) within += s2 - s * s / n;
        }
        if (within < best - 1e-6 * best) best = within, best_k = k;
    }
    BOOST_TEST_MESSAGE("otsu bin " << best_k);
    BOOST_TEST(otsu_threshold(h) == (best_k + 1) / 256.0, boost::test_tools::tolerance(1.5 / 256));

    // Two spikes with empty bins between them: the threshold sits mid-gap.
    std::vector<std::uint64_t> spikes(256, 0);
    spikes[0] = 700;
    spikes[255] = 300;
    BOOST_TEST(otsu_threshold(spikes) == 0.5);
}

BOOST_AUTO_TEST_CASE(small_components_removed_and_holes_filled) {
    const std::int64_t W = 100, H = 80;
    std::vector<std::uint8_t> m(W * H, 0);
    const auto set = [&](std::int64_t x0, std::int64_t y0, std::int64_t w, std::int64_t h,
                         std::uint8_t v) {
        for (std::int64_t y = y0; y < y0 + h; ++y)
            for (std::int64_t x = x0; x < x0 + w; ++x) m[y * W + x] = v;
    };
    set(10, 10, 40, 40, 1);   // big square (1600 px) ...
    set(20, 20, 3, 3, 0);     // ... with a small hole (9 px) ...
    set(35, 30, 10, 10, 0);   // ... and a big hole (100 px)
    set(70, 10, 2, 2, 1);     // speck (4 px)
    m[5 * W + 90] = 1;        // single pixels, diagonal neighbours: one 8-connected 2-px speck
    m[6 * W + 91] = 1;
    // Two 6x5 blobs (30 px each) touching only at a corner: one 8-connected 60-px object.
    set(60, 40, 6, 5, 1);
    set(66, 45, 6, 5, 1);
    set(0, 70, 3, 3, 1);      // a 9-px speck on the border
    const std::vector<std::uint8_t> before = m;

    const auto out = remove_small_components(m, W, H, 50, 50);
    BOOST_TEST(m == before);  // input untouched
    const auto at = [&](std::int64_t x, std::int64_t y) { return int(out[y * W + x]); };
    BOOST_TEST(at(30, 15) == 1);  // big square stays
    BOOST_TEST(at(21, 21) == 1);  // small hole filled
    BOOST_TEST(at(40, 35) == 0);  // big hole stays open
    BOOST_TEST(at(70, 10) == 0);  // specks vanish
    BOOST_TEST(at(90, 5) == 0);
    BOOST_TEST(at(91, 6) == 0);
    BOOST_TEST(at(1, 71) == 0);
    BOOST_TEST(at(60, 40) == 1);  // diagonally joined blobs survive as one object
    BOOST_TEST(at(71, 49) == 1);
    // Nothing else changed: the expected mask, built by hand.
    std::vector<std::uint8_t> expect = before;
    for (auto [x, y] : {std::pair{70, 10}, {71, 10}, {70, 11}, {71, 11}, {90, 5}, {91, 6}})
        expect[y * W + x] = 0;
    for (std::int64_t y = 70; y < 73; ++y)
        for (std::int64_t x = 0; x < 3; ++x) expect[y * W + x] = 0;
    for (std::int64_t y = 20; y < 23; ++y)
        for (std::int64_t x = 20; x < 23; ++x) expect[y * W + x] = 1;
    BOOST_TEST(out == expect);

    // A background region touching the border is never a hole; limits <= 0 switch steps off.
    std::vector<std::uint8_t> edge(W * H, 1);
    edge[0] = 0;
    BOOST_TEST(remove_small_components(edge, W, H, 50, 50)[0] == 0);
    BOOST_TEST(remove_small_components(before, W, H, 0, 0) == before);
    BOOST_CHECK_THROW(remove_small_components(before, W, H - 1, 50, 50), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(fraction_in_counts_overlap_area) {
    TissueMask m;
    m.width = 4;
    m.height = 3;
    m.downsample = 2.0;
    m.mask.assign(12, 0);
    m.mask[1 * 4 + 1] = 1;  // covers level-0 [2, 4) x [2, 4)
    BOOST_TEST(m.fraction() == 1.0 / 12);
    BOOST_TEST(m.fraction_in(2, 2, 2, 2) == 1.0);
    BOOST_TEST(m.fraction_in(3, 3, 2, 2) == 0.25);  // overlap 1x1 of a 2x2 rectangle
    BOOST_TEST(m.fraction_in(0, 0, 8, 6) == 4.0 / 48);
    BOOST_TEST(m.fraction_in(2, 2, 4, 4) == 0.25);
    // Outside the mask counts as non-tissue; empty rectangles give 0.
    BOOST_TEST(m.fraction_in(2, 2, 20, 20) == 4.0 / 400);
    BOOST_TEST(m.fraction_in(100, 100, 5, 5) == 0.0);
    BOOST_TEST(m.fraction_in(-10, -10, 5, 5) == 0.0);
    BOOST_TEST(m.fraction_in(2, 2, 0, 5) == 0.0);
    BOOST_TEST(TissueMask{}.fraction() == 0.0);
}

BOOST_AUTO_TEST_CASE(synthetic_slides_match_the_true_tissue_fraction) {
    fit::TempDir dir;
    for (double want : {0.3, 0.6}) {
        SyntheticSlideSpec spec;
        spec.width = 6000;
        spec.height = 4000;
        spec.mpp = 0.25;
        spec.seed = 7;
        spec.tissue_fraction = want;
        spec.jpeg_quality = 80;
        const std::string path = dir / ("synth" + std::to_string(want) + ".tiff");
        write_synthetic_slide(path, spec);

        // Truth from synthetic_pixel on a grid: the background is grey 242..248 in every
        // channel, tissue has green <= 186 (see pipeline/synthetic.cpp).
        const auto is_tissue = [&](std::int64_t x, std::int64_t y) {
            std::uint8_t p[3];
            synthetic_pixel(spec, x, y, p);
            return std::min({p[0], p[1], p[2]}) < 220;
        };
        std::int64_t n = 0, t = 0;
        for (std::int64_t y = 3; y < spec.height; y += 12)
            for (std::int64_t x = 3; x < spec.width; x += 12, ++n) t += is_tissue(x, y);
        const double truth = static_cast<double>(t) / static_cast<double>(n);

        Slide slide(path);
        const auto t0 = std::chrono::steady_clock::now();
        const TissueMask m = compute_tissue_mask(slide);
        const double dt = seconds_since(t0);
        std::printf("synthetic %.1f: truth %.4f mask %.4f threshold %.4f mask %lldx%lld ds %.2f "
                    "(%.3f s)\n", want, truth, m.fraction(), m.threshold,
                    static_cast<long long>(m.width), static_cast<long long>(m.height),
                    m.downsample, dt);
        BOOST_TEST(std::abs(m.fraction() - truth) <= 0.05);
        BOOST_TEST(m.width * m.downsample >= spec.width);
        BOOST_TEST(m.height * m.downsample >= spec.height);
        BOOST_TEST(std::max(m.width, m.height) <= kTissueMaxLongSide);
        BOOST_TEST(m.threshold >= kTissueMinOtsuSaturation);

        // A centre rectangle verified to be all tissue, and a corner verified all background.
        const double cx = 2600, cy = 1600, side = 800;
        bool all_tissue = true, all_background = true;
        for (std::int64_t y = 0; y < side; y += 8)
            for (std::int64_t x = 0; x < side; x += 8) {
                all_tissue = all_tissue && is_tissue(cx + x, cy + y);
                all_background = all_background && !is_tissue(x, y);
            }
        BOOST_TEST_REQUIRE(all_tissue);
        BOOST_TEST_REQUIRE(all_background);
        BOOST_TEST(m.fraction_in(cx, cy, side, side) >= 0.98);
        BOOST_TEST(m.fraction_in(0, 0, side, side) <= 0.02);
    }
}

BOOST_AUTO_TEST_CASE(blank_slide_has_no_tissue) {
    fit::TempDir dir;
    SyntheticSlideSpec spec;
    spec.width = 3000;
    spec.height = 2000;
    spec.mpp = 0.25;
    spec.tissue_fraction = 0;
    spec.jpeg_quality = 80;
    write_synthetic_slide(dir / "blank.tiff", spec);
    Slide slide(dir / "blank.tiff");
    const TissueMask m = compute_tissue_mask(slide);
    std::printf("blank: fraction %.6f threshold %.4f\n", m.fraction(), m.threshold);
    BOOST_TEST(m.fraction() < 0.001);
    BOOST_TEST(m.threshold >= kTissueMinOtsuSaturation);
    // Without clean-up too: the floor on Otsu's threshold alone keeps it empty.
    BOOST_TEST(compute_tissue_mask(slide, -1.0, 0.0).fraction() < 0.001);
}

BOOST_AUTO_TEST_CASE(cmu_small_region) {
    const std::string path = fit::shared_slide("CMU-1-Small-Region.svs");
    Slide slide(path);
    const auto t0 = std::chrono::steady_clock::now();
    const TissueMask m = compute_tissue_mask(slide);
    const double dt = seconds_since(t0);
    // Single level 2220x2967: longer than 2048, so it is box-averaged by 2 in chunks.
    BOOST_TEST(m.downsample == 2.0);
    BOOST_TEST(m.width == 1110);
    BOOST_TEST(m.height == 1484);

    // Independent thumbnail: the whole level through test_support, box-averaged here.
    const fit::Image thumb = box_average(fit::read_level(path, 0), 2);
    BOOST_TEST_REQUIRE(thumb.width == m.width);
    BOOST_TEST_REQUIRE(thumb.height == m.height);
    std::int64_t max_diff = 0;
    for (std::size_t i = 0; i < thumb.rgb.size(); ++i)
        max_diff = std::max<std::int64_t>(max_diff, std::abs(int(thumb.rgb[i]) - int(m.rgb[i])));
    BOOST_TEST(max_diff <= 1);

    Counts white, coloured;
    std::int64_t not_white = 0;
    for (std::int64_t i = 0; i < m.width * m.height; ++i) {
        const std::uint8_t* p = &thumb.rgb[3 * i];
        const bool tissue = m.mask[i] != 0;
        if (p[0] > 230 && p[1] > 230 && p[2] > 230) {
            ++white.n;
            white.tissue += tissue;
        } else {
            ++not_white;
        }
        if (sat_of(p) > 0.3) {
            ++coloured.n;
            coloured.tissue += tissue;
        }
    }
    const double n = static_cast<double>(m.width * m.height);
    std::printf("CMU-1-Small-Region: fraction %.4f threshold %.4f (%.3f s); near-white %.4f of "
                "the thumbnail, %.4f of it tissue; S > 0.3 %.4f, %.4f of it tissue\n",
                m.fraction(), m.threshold, dt, white.n / n, white.share(), coloured.n / n,
                coloured.share());
    // Measured 0.333 (threshold 0.238): the slide is a tissue strip on white glass; 65% of the
    // thumbnail is near-white and 25% has S > 0.3 (97% of that is tissue; the rest is small
    // debris fragments below the 5000 µm² limit). The mask must lie between the
    // strongly coloured share and the non-white share, and in a band around the measurement.
    BOOST_TEST(m.fraction() >= 0.25);
    BOOST_TEST(m.fraction() <= 0.45);
    BOOST_TEST(m.fraction() >= 0.9 * coloured.n / n);
    BOOST_TEST(m.fraction() <= not_white / n + 0.02);
    BOOST_TEST(1.0 - white.share() >= 0.90);  // near-white is mostly not tissue
    BOOST_TEST(coloured.share() >= 0.90);     // strongly coloured is mostly tissue
}

BOOST_AUTO_TEST_CASE(boxes_are_tissue_transparent_background_is_not) {
    const std::string path = fit::shared_slide("boxes.tiff");
    Slide slide(path);
    BOOST_TEST(slide.mpp() == 0.0);  // 72 dpi placeholder: the no-MPP clean-up limit applies
    const TissueMask m = compute_tissue_mask(slide);
    const fit::Image img = fit::read_level(path, 0);
    BOOST_TEST_REQUIRE(m.width == img.width);
    BOOST_TEST_REQUIRE(m.height == img.height);
    BOOST_TEST(m.downsample == 1.0);
    Counts background, boxes;
    for (std::int64_t y = 0; y < img.height; ++y)
        for (std::int64_t x = 0; x < img.width; ++x) {
            const std::uint8_t* p = img.at(x, y);
            Counts& c = (p[0] == 255 && p[1] == 255 && p[2] == 255) ? background : boxes;
            ++c.n;
            c.tissue += m.mask[y * m.width + x];
        }
    const double n = static_cast<double>(img.width * img.height);
    std::printf("boxes: fraction %.4f threshold %.4f; coloured share %.4f, %.4f of it tissue; "
                "transparent share %.4f, %.4f of it tissue\n", m.fraction(), m.threshold,
                boxes.n / n, boxes.share(), background.n / n, background.share());
    BOOST_TEST_REQUIRE(boxes.n > 0);
    BOOST_TEST_REQUIRE(background.n > 0);
    BOOST_TEST(boxes.share() >= 0.99);
    BOOST_TEST(background.share() <= 0.01);
    BOOST_TEST(std::abs(m.fraction() - boxes.n / n) <= 0.01);
}

BOOST_AUTO_TEST_CASE(all_tissue_crop_is_not_split_by_otsu) {
    // CropBreastSlide is tissue edge to edge; Otsu alone would split stroma from nuclei.
    Slide slide(fit::shared_slide("CropBreastSlide.tiff"));
    const TissueMask m = compute_tissue_mask(slide);
    std::printf("CropBreastSlide: fraction %.4f threshold %.4f\n", m.fraction(), m.threshold);
    BOOST_TEST(m.fraction() >= 0.95);
}

BOOST_AUTO_TEST_CASE(tiny_slide_keeps_its_tissue) {
    // small.svs: 16x16 px at 0.499 µm/px, about 64 µm², far below 5000 µm²: the limit is capped
    // at 1% of the mask area, so the clean-up only drops components under 2.56 px.
    Slide slide(fit::shared_slide("small.svs"));
    const TissueMask m = compute_tissue_mask(slide);
    const TissueMask raw = compute_tissue_mask(slide, -1.0, 0.0);
    std::printf("small.svs: fraction %.4f (no clean-up %.4f) threshold %.4f\n", m.fraction(),
                raw.fraction(), m.threshold);
    BOOST_TEST(m.width == 16);
    BOOST_TEST(m.height == 16);
    BOOST_TEST(raw.fraction() > 0.0);
    BOOST_TEST(m.fraction() > 0.0);
}

BOOST_AUTO_TEST_CASE(threshold_override) {
    Slide slide(fit::shared_slide("boxes.tiff"));
    BOOST_TEST(compute_tissue_mask(slide, 0.2).threshold == 0.2);
    BOOST_TEST(compute_tissue_mask(slide, 1.0).fraction() == 0.0);  // S > 1 never holds
}

BOOST_AUTO_TEST_CASE(read_failure_is_a_slide_error) {
    Slide slide(fit::shared_slide("negative/unreadable.svs"));
    BOOST_CHECK_THROW(compute_tissue_mask(slide), SlideError);
}

namespace {

struct Png {
    std::uint32_t width = 0, height = 0;
    png_uint_32 format = 0;            // as stored: PNG_FORMAT_RGB or PNG_FORMAT_GRAY, 8-bit
    std::vector<std::uint8_t> pixels;  // rows of width * channels bytes
};

// Decoded with libpng's reader, which also checks every chunk's CRC and the zlib stream.
Png decode(const std::string& path) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    BOOST_TEST_REQUIRE(png_image_begin_read_from_file(&image, path.c_str()) != 0, image.message);
    Png png;
    png.width = image.width;
    png.height = image.height;
    png.format = image.format;
    png.pixels.resize(PNG_IMAGE_SIZE(image));
    BOOST_TEST_REQUIRE(png_image_finish_read(&image, nullptr, png.pixels.data(), 0, nullptr) != 0, image.message);
    return png;
}

}  // namespace

BOOST_AUTO_TEST_CASE(preview_png) {
    fit::TempDir dir;
    Slide slide(fit::shared_slide("boxes.tiff"));
    TissueMask m = compute_tissue_mask(slide);
    const std::string path = dir / "boxes-mask.png";
    write_mask_preview(path, m);
    BOOST_TEST(fit::exists(path));
    BOOST_TEST(!fit::exists(path + ".partial"));
    Png png = decode(path);
    BOOST_TEST(png.width == m.width);
    BOOST_TEST(png.height == m.height);
    BOOST_TEST(png.format == png_uint_32{PNG_FORMAT_RGB});
    std::int64_t bad = 0;
    for (std::int64_t y = 0; y < m.height; ++y) {
        const std::uint8_t* row = &png.pixels[y * m.width * 3];
        for (std::int64_t x = 0; x < m.width; ++x) {
            const std::size_t i = y * m.width + x;
            const std::uint8_t* p = row + 3 * x;
            const std::uint8_t* t = &m.rgb[3 * i];
            const bool ok = m.mask[i]
                                ? (p[0] == std::lround(0.6 * t[0]) &&
                                   p[1] == std::lround(0.6 * t[1] + 102) &&
                                   p[2] == std::lround(0.6 * t[2]))
                                : (p[0] == t[0] && p[1] == t[1] && p[2] == t[2]);
            bad += !ok;
        }
    }
    BOOST_TEST(bad == 0);

    // Without the thumbnail: a plain greyscale mask, overwriting the file in place.
    m.rgb.clear();
    write_mask_preview(path, m);
    png = decode(path);
    BOOST_TEST(png.format == png_uint_32{PNG_FORMAT_GRAY});
    bad = 0;
    for (std::int64_t y = 0; y < m.height; ++y)
        for (std::int64_t x = 0; x < m.width; ++x)
            bad += png.pixels[y * m.width + x] != (m.mask[y * m.width + x] ? 255 : 0);
    BOOST_TEST(bad == 0);
    BOOST_TEST(!fit::exists(path + ".partial"));

    // Failure: the error names the path and nothing is left behind.
    const std::string missing = dir / "no-such-dir/mask.png";
    try {
        write_mask_preview(missing, m);
        BOOST_FAIL("no OutputError");
    } catch (const OutputError& e) {
        BOOST_TEST(e.path() == missing);
    }
    BOOST_TEST(!fit::exists(missing + ".partial"));
    BOOST_CHECK_THROW(write_mask_preview(dir / "empty.png", TissueMask{}), OutputError);
    BOOST_TEST(!fit::exists(dir / "empty.png"));
}
