// plan: level choice, patch layout, walk order, and the area-averaging resize.
#define BOOST_TEST_MODULE test_plan
#include <boost/test/unit_test.hpp>

#include "stages/layout.hpp"
#include "stages/read_region.hpp"
#include "stages/slide.hpp"
#include "tests/test_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/errors.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

using namespace flowinfer;

BOOST_AUTO_TEST_CASE(axis_positions_cover_and_shift_inward) {
    BOOST_TEST(axis_positions(1000, 512, 448) == (std::vector<std::int64_t>{0, 448, 488}));
    BOOST_TEST(axis_positions(1024, 512, 512) == (std::vector<std::int64_t>{0, 512}));
    BOOST_TEST(axis_positions(512, 512, 448) == (std::vector<std::int64_t>{0}));
    BOOST_TEST(axis_positions(16, 512, 448) == (std::vector<std::int64_t>{0}));  // padded
    // Every pixel covered, every patch inside, consecutive overlap >= the requested one.
    for (std::int64_t extent : {513, 777, 2967, 4096}) {
        for (int overlap : {0, 32, 100}) {
            const int patch = 256, stride = patch - overlap;
            auto pos = axis_positions(extent, patch, stride);
            BOOST_TEST(pos.front() == 0);
            BOOST_TEST(pos.back() + patch == extent);
            for (std::size_t i = 1; i < pos.size(); ++i) {
                BOOST_TEST(pos[i] > pos[i - 1]);
                BOOST_TEST(pos[i - 1] + patch - pos[i] >= overlap);
            }
        }
    }
}

namespace {
SlidePlan plan_of(const Slide& slide, const Config& cfg) {
    return plan_slide(slide, 0, tiling_for(cfg, ModelConfig{}), cfg);
}

SlidePlan grid_plan(int cols, int rows, int sections, int subsections) {
    SlidePlan p;
    for (int i = 0; i < cols; ++i) p.xs.push_back(i * 100);
    for (int i = 0; i < rows; ++i) p.ys.push_back(i * 100);
    p.sections = sections;
    p.subsections = subsections;
    return p;
}
}  // namespace

BOOST_AUTO_TEST_CASE(walk_order_follows_sections_and_subsections) {
    // 5 columns x 3 rows, sections of 2 rows, subsections of 2 columns.
    SlidePlan p = grid_plan(5, 3, 2, 2);
    std::vector<int> got;  // row * 10 + column
    for (std::uint64_t s = 0; s < p.count(); ++s) {
        PatchKey k = p.key(s);
        BOOST_TEST(k.seq == s);
        got.push_back(int(k.y / 100) * 10 + int(k.x / 100));
    }
    const std::vector<int> want = {0,  1,  10, 11, 2,  3,  12, 13, 4, 14,  // section 0
                                   20, 21, 22, 23, 24};                    // section 1
    BOOST_TEST(got == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(walk_order_is_a_permutation_for_any_sections) {
    for (int sec : {1, 2, 3, 7}) {
        for (int sub : {1, 4, 9}) {
            SlidePlan p = grid_plan(9, 7, sec, sub);
            std::set<std::pair<std::int64_t, std::int64_t>> seen;
            for (std::uint64_t s = 0; s < p.count(); ++s) seen.emplace(p.key(s).x, p.key(s).y);
            BOOST_TEST(seen.size() == p.count());
        }
    }
    // sections = 1, subsections >= columns: plain raster order.
    SlidePlan p = grid_plan(4, 3, 1, 100);
    for (std::uint64_t s = 0; s < p.count(); ++s) {
        BOOST_TEST(p.key(s).x == std::int64_t(s % 4) * 100);
        BOOST_TEST(p.key(s).y == std::int64_t(s / 4) * 100);
    }
}

BOOST_AUTO_TEST_CASE(level_choice_by_mpp) {
    Slide cmu(fit::shared_slide("CMU-1-Small-Region.svs"));
    Config cfg;
    cfg.patch_size = 256;
    cfg.overlap = 0;
    // 0.499 µm/px slide: 0.5 is within 2% -> level 0 as is.
    cfg.mpp = 0.5;
    SlidePlan p = plan_of(cmu, cfg);
    BOOST_TEST(p.level == 0);
    BOOST_TEST(p.resize == 1.0);
    BOOST_TEST(p.grid_width == 2220);
    // 0.998: no such level -> read level 0 and shrink by 2.
    cfg.mpp = 0.998;
    p = plan_of(cmu, cfg);
    BOOST_TEST(p.level == 0);
    BOOST_TEST(p.resize == 2.0, boost::test_tools::tolerance(1e-9));
    BOOST_TEST(p.grid_width == 1110);
    BOOST_TEST(p.grid_height == 1483);
    BOOST_TEST(p.downsample() == 2.0, boost::test_tools::tolerance(1e-9));
    // Finer than level 0: refused.
    cfg.mpp = 0.25;
    BOOST_CHECK_THROW(plan_of(cmu, cfg), SlideError);
}

BOOST_AUTO_TEST_CASE(level_choice_on_a_pyramid) {
    fit::TempDir dir;
    SyntheticSlideSpec spec;
    spec.width = 2048;
    spec.height = 1536;
    spec.mpp = 0.25;
    spec.jpeg_quality = 80;
    write_synthetic_slide(dir / "s.tiff", spec);
    Slide s(dir / "s.tiff");
    BOOST_REQUIRE(s.level_count() >= 3);
    Config cfg;
    cfg.patch_size = 256;
    cfg.overlap = 0;
    cfg.mpp = 0.5;  // level 1 exactly
    SlidePlan p = plan_of(s, cfg);
    BOOST_TEST(p.level == 1);
    BOOST_TEST(p.resize == 1.0);
    cfg.mpp = 0.75;  // between level 1 (0.5) and level 2 (1.0): read level 1, shrink by 1.5
    p = plan_of(s, cfg);
    BOOST_TEST(p.level == 1);
    BOOST_TEST(p.resize == 1.5, boost::test_tools::tolerance(1e-9));
    cfg.mpp.reset();
    cfg.level = 2;
    p = plan_of(s, cfg);
    BOOST_TEST(p.level == 2);
    BOOST_TEST(p.grid_width == s.level_width(2));
    cfg.level = 9;
    BOOST_CHECK_THROW(plan_of(s, cfg), SlideError);
}

BOOST_AUTO_TEST_CASE(mpp_on_a_slide_without_resolution_is_an_error) {
    Slide crop(fit::shared_slide("CropBreastSlide.tiff"));
    Config cfg;
    cfg.patch_size = 256;
    cfg.overlap = 0;
    cfg.mpp = 0.5;
    try {
        plan_of(crop, cfg);
        BOOST_FAIL("expected SlideError");
    } catch (const SlideError& e) {
        BOOST_TEST(std::string(e.what()).find("no resolution") != std::string::npos);
        BOOST_TEST(std::string(e.what()).find("CropBreastSlide.tiff") != std::string::npos);
    }
    cfg.mpp.reset();
    BOOST_TEST(plan_of(crop, cfg).grid_width == 2033);
}

BOOST_AUTO_TEST_CASE(area_resize_matches_box_means) {
    // 9x9 source, shrink by 1.5 to 6x6 and by 3 to 3x3, against a direct integral.
    const int sw = 9;
    std::vector<std::uint8_t> src(sw * sw * 3);
    for (int y = 0; y < sw; ++y)
        for (int x = 0; x < sw; ++x)
            for (int c = 0; c < 3; ++c) src[(y * sw + x) * 3 + c] = std::uint8_t((x * 31 + y * 17 + c * 50) % 256);
    for (double scale : {1.5, 3.0}) {
        const int n = int(sw / scale);
        std::vector<std::uint8_t> dst(n * n * 3);
        area_resize(src.data(), sw, sw, 0.0, 0.0, scale, n, dst.data());
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < n; ++i)
                for (int c = 0; c < 3; ++c) {
                    // Integrate on a 1/2-pixel lattice: exact for scale 1.5 and 3.
                    double acc = 0, area = 0;
                    for (double y = j * scale; y < (j + 1) * scale - 1e-9; y += 0.5)
                        for (double x = i * scale; x < (i + 1) * scale - 1e-9; x += 0.5) {
                            acc += src[(int(y) * sw + int(x)) * 3 + c];
                            area += 1;
                        }
                    BOOST_TEST(std::abs(dst[(j * n + i) * 3 + c] - acc / area) <= 0.51);
                }
    }
}

BOOST_AUTO_TEST_CASE(topology_groups_reads_and_batches) {
    Config cfg;
    cfg.patch_size = 256;
    cfg.overlap = 0;
    ModelConfig a, b, gpu, small, other_norm, other_batch;
    a.name = "a";
    b.name = "b";                    // same tiling, batch size and device: shares a's batches
    gpu.name = "gpu";                // on a GPU: pinned batches of its own, same read
    gpu.device = "cuda:0";
    small.name = "small";            // another patch size: its own read
    small.patch_size = 128;
    other_norm.name = "other_norm";  // another mean and std: still a's batches (uint8 RGB,
    other_norm.mean = {0, 0, 0};     // each model normalizes its own input)
    other_norm.std = {0.5f, 0.5f, 0.5f};
    other_batch.name = "other_batch";  // another batch size: same read, its own batches
    other_batch.batch_size = 3;
    cfg.models = {a, b, gpu, small, other_norm, other_batch};
    const Topology t = make_topology(cfg);
    BOOST_REQUIRE_EQUAL(t.read_groups.size(), 2u);
    BOOST_REQUIRE_EQUAL(t.batch_groups.size(), 4u);
    BOOST_TEST(t.model_batch_group == (std::vector<int>{0, 0, 1, 2, 0, 3}), boost::test_tools::per_element());
    BOOST_TEST(t.batch_groups[0].models == (std::vector<int>{0, 1, 4}), boost::test_tools::per_element());
    BOOST_TEST(!t.batch_groups[0].gpu);
    BOOST_TEST(t.batch_groups[1].gpu);
    BOOST_TEST(t.batch_groups[1].read_group == 0);
    BOOST_TEST(t.batch_groups[2].read_group == 1);
    BOOST_TEST(t.batch_groups[3].read_group == 0);
    BOOST_TEST(t.batch_groups[3].batch_size == 3);
    BOOST_TEST(t.read_groups[1].tiling.patch_size == 128);
}
