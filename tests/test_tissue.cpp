// Tissue mask: Otsu on saturation plus clean-up, against known tissue.
#define BOOST_TEST_MODULE test_tissue
#include <boost/test/unit_test.hpp>

#include "stages/slide.hpp"
#include "stages/tissue.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/demo.hpp>

#include <algorithm>
#include <cmath>

using namespace flowinfer;

namespace {

// True tissue share of a synthetic slide, sampled on a grid from synthetic_pixel.
double true_fraction(const SyntheticSlideSpec& spec) {
    std::int64_t tissue = 0, n = 0;
    for (std::int64_t y = 2; y < spec.height; y += 8)
        for (std::int64_t x = 2; x < spec.width; x += 8) {
            std::uint8_t rgb[3];
            synthetic_pixel(spec, x, y, rgb);
            tissue += hsv_saturation(rgb[0], rgb[1], rgb[2]) > 0.15;
            ++n;
        }
    return double(tissue) / n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(saturation_and_otsu) {
    BOOST_TEST(hsv_saturation(255, 255, 255) == 0.0);
    BOOST_TEST(hsv_saturation(0, 0, 0) == 0.0);
    BOOST_TEST(hsv_saturation(200, 100, 50) == 0.75, boost::test_tools::tolerance(1e-9));
    // Two clean modes: the split falls between them.
    std::vector<std::uint64_t> h(256, 0);
    h[10] = 1000;
    h[200] = 500;
    const double t = otsu_threshold(h);
    BOOST_TEST(t > 10.0 / 256);
    BOOST_TEST(t <= 200.0 / 256);
    std::vector<std::uint64_t> flat(256, 0);
    flat[3] = 99;
    BOOST_TEST(otsu_threshold(flat) < 0);  // one bin: no split
}

BOOST_AUTO_TEST_CASE(small_components_go_big_ones_stay) {
    const std::int64_t w = 40, h = 30;
    std::vector<std::uint8_t> m(w * h, 0);
    for (std::int64_t y = 5; y < 25; ++y)
        for (std::int64_t x = 5; x < 30; ++x) m[y * w + x] = 1;  // a 25x20 block
    m[12 * w + 15] = 0;                                           // a 1-pixel hole in it
    m[2 * w + 35] = 1;                                            // a speck
    m[28 * w + 1] = m[28 * w + 2] = 1;                            // another
    const auto out = remove_small_components(m, w, h, 10, 10);
    BOOST_TEST(out[2 * w + 35] == 0);
    BOOST_TEST(out[28 * w + 1] == 0);
    BOOST_TEST(out[12 * w + 15] == 1);  // hole filled
    BOOST_TEST(std::count(out.begin(), out.end(), 1) == 25 * 20);
}

BOOST_AUTO_TEST_CASE(synthetic_slides_with_known_tissue) {
    for (double fraction : {0.3, 0.6}) {
        fit::TempDir dir;
        SyntheticSlideSpec spec;
        spec.width = 6000;
        spec.height = 4000;
        spec.mpp = 0.25;
        spec.tissue_fraction = fraction;
        spec.jpeg_quality = 80;
        write_synthetic_slide(dir / "s.tiff", spec);
        Slide slide(dir / "s.tiff");
        const TissueMask mask = compute_tissue_mask(slide);
        const double truth = true_fraction(spec);
        BOOST_TEST_MESSAGE("target " << fraction << ": true " << truth << ", mask " << mask.fraction()
                                     << " (threshold " << mask.threshold << ", " << mask.width << "x"
                                     << mask.height << ")");
        BOOST_TEST(std::abs(mask.fraction() - truth) < 0.05);
        BOOST_TEST(mask.width <= kTissueMaxLongSide);
        // The slide's centre is tissue, its corner background.
        BOOST_TEST(mask.fraction_in(2800, 1800, 400, 400) > 0.95);
        BOOST_TEST(mask.fraction_in(0, 0, 300, 300) < 0.01);
    }
}

BOOST_AUTO_TEST_CASE(blank_slide_has_no_tissue) {
    fit::TempDir dir;
    SyntheticSlideSpec spec;
    spec.width = 3000;
    spec.height = 2000;
    spec.tissue_fraction = 0;
    write_synthetic_slide(dir / "blank.tiff", spec);
    Slide slide(dir / "blank.tiff");
    BOOST_TEST(compute_tissue_mask(slide).fraction() < 0.001);
}

BOOST_AUTO_TEST_CASE(cmu_small_region) {
    Slide slide(fit::shared_slide("CMU-1-Small-Region.svs"));
    const TissueMask mask = compute_tissue_mask(slide);
    BOOST_TEST_MESSAGE("CMU-1-Small-Region: tissue " << mask.fraction() << ", threshold " << mask.threshold);
    BOOST_TEST(mask.fraction() > 0.25);
    BOOST_TEST(mask.fraction() < 0.75);
    // Near-white thumbnail pixels are background, strongly stained ones tissue.
    BOOST_REQUIRE_EQUAL(mask.rgb.size(), mask.mask.size() * 3);
    std::int64_t white = 0, white_bg = 0, stained = 0, stained_tissue = 0;
    for (std::size_t i = 0; i < mask.mask.size(); ++i) {
        const std::uint8_t* p = &mask.rgb[3 * i];
        if (std::min({p[0], p[1], p[2]}) > 230) {
            ++white;
            white_bg += mask.mask[i] == 0;
        }
        if (hsv_saturation(p[0], p[1], p[2]) > 0.35) {
            ++stained;
            stained_tissue += mask.mask[i] == 1;
        }
    }
    BOOST_TEST(white_bg >= 0.9 * white);
    BOOST_TEST(stained_tissue >= 0.8 * stained);
}

BOOST_AUTO_TEST_CASE(transparent_background_is_not_tissue) {
    Slide slide(fit::shared_slide("boxes.tiff"));
    const TissueMask mask = compute_tissue_mask(slide, -1.0, 0.0);
    BOOST_TEST(mask.fraction() > 0.0);
    BOOST_TEST(mask.fraction() < 0.9);
    for (std::size_t i = 0; i < mask.mask.size(); ++i) {
        const std::uint8_t* p = &mask.rgb[3 * i];
        if (std::min({p[0], p[1], p[2]}) > 250) BOOST_TEST(mask.mask[i] == 0);
    }
}

BOOST_AUTO_TEST_CASE(preview_is_a_png_of_the_mask_size) {
    fit::TempDir dir;
    Slide slide(fit::shared_slide("CMU-1-Small-Region.svs"));
    const TissueMask mask = compute_tissue_mask(slide);
    write_mask_preview(dir / "m.png", mask);
    const std::string png = fit::read_text(dir / "m.png");
    BOOST_REQUIRE(png.size() > 33);
    BOOST_TEST(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
    const auto be32 = [&png](std::size_t at) {
        return (std::uint32_t(std::uint8_t(png[at])) << 24) | (std::uint32_t(std::uint8_t(png[at + 1])) << 16) |
               (std::uint32_t(std::uint8_t(png[at + 2])) << 8) | std::uint32_t(std::uint8_t(png[at + 3]));
    };
    BOOST_TEST(png.substr(12, 4) == "IHDR");
    BOOST_TEST(be32(16) == std::uint32_t(mask.width));
    BOOST_TEST(be32(20) == std::uint32_t(mask.height));
    BOOST_TEST(!fit::exists(dir / "m.png.partial"));
    BOOST_CHECK_THROW(write_mask_preview(dir / "no/such/dir/m.png", mask), std::runtime_error);
}
