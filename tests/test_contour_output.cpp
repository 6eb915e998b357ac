// Segmentation contours as files: <model>.geojson traced from map TIFFs (synthetic label maps
// with holes, islands and touching parts; probability maps; CMU-1-Small-Region through the
// whole pipeline), rasterized back here by an independent scanline fill and compared with the
// thresholded map (IoU per class), checked valid by GEOS (shapely, tests/geojson_check.py),
// and every contour key's effect.
#define BOOST_TEST_MODULE test_contour_output
#include <boost/test/unit_test.hpp>

#include "stages/contours.hpp"
#include "stages/stitch.hpp"
#include "stages/tiff/writer.hpp"
#include "tests/model_io_support.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

using namespace flowinfer;
using nlohmann::json;

namespace {

using Ring = std::vector<std::array<double, 2>>;

// Every ring of a Polygon / MultiPolygon geometry.
std::vector<Ring> rings_of(const json& g) {
    std::vector<Ring> out;
    const auto polygon = [&](const json& p) {
        for (const json& r : p) {
            Ring ring;
            for (const json& pt : r) ring.push_back({pt[0].get<double>(), pt[1].get<double>()});
            out.push_back(std::move(ring));
        }
    };
    if (g["type"] == "Polygon") polygon(g["coordinates"]);
    else
        for (const json& p : g["coordinates"]) polygon(p);
    return out;
}

// Even-odd fill of `rings` (level-0 coordinates) sampled at the centres of a w x h raster of
// `ds` level-0 pixels per pixel. Polygons of one class never overlap, so even-odd over every
// ring is their union minus their holes.
std::vector<std::uint8_t> rasterize(const std::vector<Ring>& rings, std::int64_t w, std::int64_t h, double ds) {
    struct Edge {
        double x0, y0, x1, y1;
    };
    std::vector<std::vector<Edge>> by_row(static_cast<std::size_t>(h));
    for (const Ring& r : rings)
        for (std::size_t i = 0; i + 1 < r.size(); ++i) {
            const Edge e{r[i][0] / ds, r[i][1] / ds, r[i + 1][0] / ds, r[i + 1][1] / ds};
            if (e.y0 == e.y1) continue;
            const double lo = std::min(e.y0, e.y1), hi = std::max(e.y0, e.y1);
            // Rows whose centre y + 0.5 lies in [lo, hi).
            const auto first = static_cast<std::int64_t>(std::ceil(lo - 0.5));
            for (std::int64_t y = std::max<std::int64_t>(0, first); y < h && y + 0.5 < hi; ++y)
                by_row[static_cast<std::size_t>(y)].push_back(e);
        }
    std::vector<std::uint8_t> out(static_cast<std::size_t>(w * h), 0);
    std::vector<double> xs;
    for (std::int64_t y = 0; y < h; ++y) {
        xs.clear();
        const double cy = y + 0.5;
        for (const Edge& e : by_row[static_cast<std::size_t>(y)])
            xs.push_back(e.x0 + (cy - e.y0) * (e.x1 - e.x0) / (e.y1 - e.y0));
        std::sort(xs.begin(), xs.end());
        for (std::size_t k = 0; k + 1 < xs.size(); k += 2)
            for (auto x = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(xs[k] - 0.5)));
                 x < w && x + 0.5 < xs[k + 1]; ++x)
                out[static_cast<std::size_t>(y * w + x)] = 1;
    }
    return out;
}

double iou(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
    std::int64_t inter = 0, uni = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        inter += a[i] && b[i];
        uni += a[i] || b[i];
    }
    return uni ? double(inter) / double(uni) : 1.0;
}

json read_json(const std::string& path) {
    std::ifstream f(path);
    BOOST_REQUIRE_MESSAGE(f, "cannot read " << path);
    return json::parse(f);
}

// GEOS's verdict and the ring rules, from Debian's python3 with python3-shapely.
json geos_check(const std::string& path) {
    const fit::CmdResult r =
        fit::run_cmd("/usr/bin/python3 " + std::string(FLOWINFER_SOURCE_DIR) + "/tests/geojson_check.py " + path);
    BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const json j = json::parse(r.output);
    BOOST_TEST_MESSAGE(path << ": " << r.output);
    BOOST_TEST(j["type"] == "FeatureCollection");
    BOOST_TEST(j["invalid"].empty(), "GEOS: " << j["invalid"].dump());
    BOOST_TEST(j["unclosed"] == 0);
    BOOST_TEST(j["outer_not_ccw"] == 0);
    BOOST_TEST(j["hole_not_cw"] == 0);
    BOOST_TEST(j["object_type_outside"] == 0);
    for (const json& t : j["object_types"]) BOOST_TEST(t == "annotation");
    return j;
}

// An 8-bit map TIFF (a pyramid, 256-pixel tiles) holding `px`; a palette when `label`.
void write_map(const std::string& path, std::int64_t w, std::int64_t h, const std::vector<std::uint8_t>& px, bool label) {
    TiffLayout layout;
    layout.width = w;
    layout.height = h;
    if (label) layout.palette_rgb = label_palette();
    PyramidTiffWriter writer(path, layout);
    std::vector<std::uint8_t> tile(256 * 256);
    for (std::int64_t ty = 0; ty < writer.tiles_y(); ++ty)
        for (std::int64_t tx = 0; tx < writer.tiles_x(); ++tx) {
            std::fill(tile.begin(), tile.end(), 0);
            for (std::int64_t y = 0; y < 256 && ty * 256 + y < h; ++y)
                for (std::int64_t x = 0; x < 256 && tx * 256 + x < w; ++x)
                    tile[static_cast<std::size_t>(y * 256 + x)] = px[static_cast<std::size_t>((ty * 256 + y) * w + tx * 256 + x)];
            writer.write_tile(tx, ty, tile.data());
        }
    writer.finish();
}

// A label map: class 1 an annulus, two squares sharing an edge and two sharing a corner;
// class 2 an island in the annulus' hole and a ring touching class 1; class 3 specks of 2x2.
constexpr std::int64_t kW = 1200, kH = 900;
std::vector<std::uint8_t> shapes() {
    std::vector<std::uint8_t> px(kW * kH, 0);
    const auto set = [&](std::int64_t x, std::int64_t y, std::uint8_t v) { px[static_cast<std::size_t>(y * kW + x)] = v; };
    for (std::int64_t y = 0; y < kH; ++y)
        for (std::int64_t x = 0; x < kW; ++x) {
            const double d = std::hypot(x + 0.5 - 300, y + 0.5 - 300);
            if (d < 200 && d >= 90) set(x, y, 1);
            if (d < 50) set(x, y, 2);
            const double e = std::hypot(x + 0.5 - 900, y + 0.5 - 650);
            if (e < 150 && e >= 100) set(x, y, 2);
        }
    for (std::int64_t y = 600; y < 700; ++y)
        for (std::int64_t x = 100; x < 300; ++x) set(x, y, 1);  // two squares sharing the edge x = 200
    for (std::int64_t y = 750; y < 800; ++y)
        for (std::int64_t x = 400; x < 450; ++x) set(x, y, 1);
    for (std::int64_t y = 800; y < 850; ++y)
        for (std::int64_t x = 450; x < 500; ++x) set(x, y, 1);  // touches the one above at (450, 800)
    for (std::int64_t y = 750; y < 900; ++y)
        for (std::int64_t x = 745; x < 755; ++x) set(x, y, 1);  // a bar touching class 2's ring
    for (int k = 0; k < 5; ++k)
        for (std::int64_t y = 0; y < 2; ++y)
            for (std::int64_t x = 0; x < 2; ++x) set(700 + 40 * k + x, 100 + y, 3);
    return px;
}

ModelConfig label_model() {
    ModelConfig m;
    m.name = "tissue_types";
    m.classes = {{"background", std::nullopt}, {"stroma", std::nullopt}, {"tumor", std::array<std::uint8_t, 3>{200, 0, 0}},
                 {"speck", std::nullopt}};
    return m;
}

// The features of a contour file by class name.
std::map<std::string, json> by_class(const json& doc) {
    std::map<std::string, json> out;
    for (const json& f : doc["features"]) out[f["properties"]["classification"]["name"].get<std::string>()] = f;
    return out;
}

std::vector<std::uint8_t> class_pixels(const std::vector<std::uint8_t>& px, int cls) {
    std::vector<std::uint8_t> m(px.size());
    for (std::size_t i = 0; i < px.size(); ++i) m[i] = px[i] == cls;
    return m;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(contour_output, fit::ModelFixture)

BOOST_AUTO_TEST_CASE(label_map_classes_with_holes_and_touching_parts_trace_back_to_the_map) {
    const std::vector<std::uint8_t> px = shapes();
    const std::string map = dir / "map.tif";
    write_map(map, kW, kH, px, true);
    ModelConfig m = label_model();
    m.contour_tolerance = 0;  // the exact pixel outline
    const ContourStats exact = write_contours(map, dir / "exact.geojson", 2.0, 0.5, 4, m);
    BOOST_TEST(exact.features == 3);
    BOOST_TEST(exact.downsample == 2.0);
    m.contour_tolerance = 1.0;
    const ContourStats st = write_contours(map, dir / "simple.geojson", 2.0, 0.5, 4, m);
    // class 1: the annulus, the two squares sharing an edge (one part), the two touching at a
    // corner (two parts) and the bar; class 2: the island and the ring; class 3: 5 specks.
    BOOST_TEST(st.parts == 5 + 2 + 5);
    const json exact_doc = read_json(dir / "exact.geojson"), doc = read_json(dir / "simple.geojson");
    for (const auto& [doc_ref, tolerance] : {std::pair<const json*, double>{&exact_doc, 0.0}, {&doc, 1.0}}) {
        const auto f = by_class(*doc_ref);
        BOOST_REQUIRE(f.size() == 3u);
        for (const auto& [name, cls] : {std::pair<std::string, int>{"stroma", 1}, {"tumor", 2}, {"speck", 3}}) {
            const std::vector<std::uint8_t> back = rasterize(rings_of(f.at(name)["geometry"]), kW, kH, 2.0);
            const double v = iou(back, class_pixels(px, cls));
            BOOST_TEST_MESSAGE(name << " at tolerance " << tolerance << ": IoU " << v);
            if (tolerance == 0) BOOST_TEST(v == 1.0);
            else BOOST_TEST(v >= 0.98);
        }
    }
    const auto f = by_class(doc);
    BOOST_TEST(f.at("stroma")["geometry"]["type"] == "MultiPolygon");
    BOOST_TEST(f.at("stroma")["geometry"]["coordinates"].size() == 5u);
    BOOST_TEST(f.at("stroma")["geometry"]["coordinates"][0].size() == 2u);  // the annulus: outer + its hole
    BOOST_TEST(f.at("tumor")["properties"]["classification"]["color"] == json::parse("[200, 0, 0]"));
    BOOST_TEST(f.at("tumor")["properties"]["measurements"]["class"] == 2);
    // area_um2 = pixels x (2 level-0 px x 0.5 µm)^2: the exact outline's area is the pixel count.
    const auto exact_f = by_class(exact_doc);
    std::int64_t specks = 0;
    for (std::uint8_t v : px) specks += v == 3;
    BOOST_TEST(exact_f.at("speck")["properties"]["measurements"]["area_um2"].get<double>() == double(specks));
    geos_check(dir / "exact.geojson");
    const json g = geos_check(dir / "simple.geojson");
    BOOST_TEST(g["vertices"].get<int>() < geos_check(dir / "exact.geojson")["vertices"].get<int>());
}

BOOST_AUTO_TEST_CASE(contour_keys_choose_classes_and_drop_small_parts) {
    const std::vector<std::uint8_t> px = shapes();
    const std::string map = dir / "map.tif";
    write_map(map, kW, kH, px, true);
    ModelConfig m = label_model();
    m.contour_classes = {2};
    BOOST_TEST(by_class(read_json((write_contours(map, dir / "a.geojson", 1.0, 0.5, 4, m), dir / "a.geojson"))).size() == 1u);
    BOOST_TEST(by_class(read_json(dir / "a.geojson")).count("tumor") == 1u);
    // A speck is 4 px x (0.5 µm)^2 = 1 µm²: 2 µm² drops them, and the feature with them.
    m.contour_classes = {};
    m.min_area_um2 = 2.0;
    const ContourStats st = write_contours(map, dir / "b.geojson", 1.0, 0.5, 4, m);
    BOOST_TEST(st.features == 2);
    BOOST_TEST(by_class(read_json(dir / "b.geojson")).count("speck") == 0u);
    // Without an MPP it cannot be applied: a warning says so and nothing is dropped.
    const ContourStats no_mpp = write_contours(map, dir / "c.geojson", 1.0, 0.0, 4, m);
    BOOST_TEST(no_mpp.features == 3);
    BOOST_REQUIRE(no_mpp.warnings.size() == 1u);
    BOOST_TEST(fit::contains(no_mpp.warnings[0], "min_area_um2"));
    // A hole under min_area_um2 is filled: the annulus' hole is pi 90² px x 0.25 µm² ~ 6,362 µm²,
    // the annulus itself ~ 25,050 µm².
    m.min_area_um2 = 7000;
    m.contour_classes = {1};
    write_contours(map, dir / "d.geojson", 1.0, 0.5, 4, m);
    const json d = by_class(read_json(dir / "d.geojson")).at("stroma");
    BOOST_TEST(d["geometry"]["type"] == "Polygon");  // the annulus alone: the squares and the bar were smaller
    BOOST_TEST(d["geometry"]["coordinates"].size() == 1u);  // and its hole filled
}

BOOST_AUTO_TEST_CASE(probability_maps_are_cut_at_contour_threshold) {
    // A ramp: value x % 256 along each row, so p >= t covers round(255 t)..255 of every 256.
    constexpr std::int64_t w = 512, h = 64;
    std::vector<std::uint8_t> px(w * h);
    for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x) px[static_cast<std::size_t>(y * w + x)] = static_cast<std::uint8_t>(x % 256);
    write_map(dir / "p.tif", w, h, px, false);
    ModelConfig m;
    m.name = "tumor";
    m.contour_tolerance = 0;
    for (double t : {0.25, 0.5, 0.75}) {
        m.contour_threshold = t;
        write_contours(dir / "p.tif", dir / "p.geojson", 1.0, 1.0, 2, m);
        const json f = read_json(dir / "p.geojson")["features"][0];
        const double expected = double(256 - std::lround(255 * t)) * 2 * h;
        BOOST_TEST(f["properties"]["measurements"]["area_px"].get<double>() == expected);
        BOOST_TEST(f["properties"]["name"] == "tumor");  // one class, no classes: the model's name
    }
    m.contour_classes = {0};  // below the threshold
    write_contours(dir / "p.tif", dir / "p.geojson", 1.0, 1.0, 2, m);
    const json f = read_json(dir / "p.geojson")["features"][0];
    BOOST_TEST(f["properties"]["measurements"]["area_px"].get<double>() == double(std::lround(255 * 0.75)) * 2 * h);
}

BOOST_AUTO_TEST_CASE(large_maps_are_traced_on_a_pyramid_level) {
    const std::vector<std::uint8_t> px = shapes();
    write_map(dir / "map.tif", kW, kH, px, true);
    const MapLevel full = read_map_to_trace(dir / "map.tif", kW * kH);
    BOOST_TEST(full.width == kW);
    BOOST_TEST(full.scale_x == 1.0);
    const MapLevel half = read_map_to_trace(dir / "map.tif", kW * kH - 1);
    BOOST_TEST(half.width == kW / 2);
    BOOST_TEST(half.height == kH / 2);
    BOOST_TEST(half.scale_x == 2.0);
    BOOST_TEST(half.pixels[static_cast<std::size_t>(80 * half.width + 150)] == 1);  // the annulus (palette: kept, not averaged)
    BOOST_TEST(half.pixels[static_cast<std::size_t>(150 * half.width + 150)] == 2);  // the island
    const MapLevel smallest = read_map_to_trace(dir / "map.tif", 1);
    BOOST_TEST(smallest.width * smallest.height <= 256 * 256);
}

BOOST_AUTO_TEST_CASE(cmu1_contours_through_the_pipeline_match_the_thresholded_map) {
    // pointwise_mean's map is round(255 m), m the mean of R, G, B / 255: p >= 0.8 is the
    // slide's bright background and the lumens in its tissue, many parts with holes.
    const std::string slide = fit::shared_slide("CMU-1-Small-Region.svs");
    const std::string mean = model(DemoModel::pointwise_mean);
    const std::string common = fmt::format("path = \"{}\"\nmean = [0, 0, 0]\nstd = [1, 1, 1]\nactivation = \"none\"", mean);
    Config cfg = config(slide, {"name = \"bright\"\ncontour_threshold = 0.8\n" + common,
                                "name = \"plain\"\ncontours = false\n" + common});
    cfg.previews = false;
    const RunSummary s = run(cfg);
    BOOST_REQUIRE_MESSAGE(s.slides.at(0).ok(), s.slides.at(0).error);
    std::string geojson;
    for (const OutputInfo& o : s.slides[0].outputs) {
        BOOST_TEST(!(o.model == "plain" && o.format == "geojson"));  // contours = false
        if (o.model == "bright" && o.format == "geojson") {
            geojson = o.path;
            BOOST_TEST(o.objects == 1);
        }
        BOOST_TEST(o.kind != "preview");  // output.previews = false
    }
    BOOST_REQUIRE(!geojson.empty());
    BOOST_TEST(!fit::exists(dir / "out/CMU-1-Small-Region/plain.geojson"));
    const fit::Image map = fit::read_level(map_of(s, "bright"), 0);
    std::vector<std::uint8_t> expected(static_cast<std::size_t>(map.width * map.height));
    for (std::int64_t y = 0; y < map.height; ++y)
        for (std::int64_t x = 0; x < map.width; ++x) expected[static_cast<std::size_t>(y * map.width + x)] = map.at(x, y)[0] >= 204;
    const json doc = read_json(geojson);
    BOOST_REQUIRE(doc["features"].size() == 1u);
    const std::vector<std::uint8_t> back = rasterize(rings_of(doc["features"][0]["geometry"]), map.width, map.height, 1.0);
    const double v = iou(back, expected);
    BOOST_TEST_MESSAGE("CMU-1-Small-Region, p >= 0.8: IoU " << v << " over " << map.width << "x" << map.height);
    BOOST_TEST(v >= 0.98);
    const json g = geos_check(geojson);
    BOOST_TEST(g["polygons"].get<int>() > 10);
    BOOST_TEST(g["rings"].get<int>() > g["polygons"].get<int>());  // holes kept
}

BOOST_AUTO_TEST_CASE(contour_keys_are_checked) {
    const std::string slide = fit::shared_slide("small.svs");
    const std::string m = fmt::format("name = \"a\"\npath = \"{}\"\n", model(DemoModel::pointwise_mean));
    const auto error_of = [&](const std::string& entry) {
        try {
            config(slide, {m + entry});
        } catch (const ConfigError& e) {
            return std::pair<std::string, std::string>(e.key(), e.what());
        }
        return std::pair<std::string, std::string>("", "no error");
    };
    BOOST_TEST(error_of("contour_threshold = 1.5").first == "models[0].contour_threshold");
    BOOST_TEST(error_of("contour_tolerance = -1").first == "models[0].contour_tolerance");
    BOOST_TEST(error_of("min_area_um2 = -3").first == "models[0].min_area_um2");
    BOOST_TEST(error_of("contours = 1").first == "models[0].contours");
    BOOST_TEST(error_of("contour_classes = [\"x\"]\nclasses = [\"a\", \"b\"]").first == "models[0].contour_classes[0]");
    BOOST_TEST(fit::contains(error_of("contour_classes = [1, 1]").second, "listed twice"));
    BOOST_TEST(fit::contains(error_of("task = \"classification\"\ncontours = false").second, "segmentation only"));
    const Config ok = config(slide, {m + "classes = [\"bg\", \"fg\"]\ncontour_classes = [\"fg\", 0]"});
    BOOST_TEST(ok.models[0].contour_classes == (std::vector<int>{1, 0}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
