// Region files: GeoJSON as QuPath exports it (Polygon / MultiPolygon annotations, in level-0
// pixels), mask images (PNG through libpng, TIFF through libtiff), the dispatch by extension,
// and the --region rectangle. What cannot be used in one feature is left out with a warning,
// so one bad outline among hundreds does not cost the slide; a file with nothing usable is an
// error.
//
// Thread safety: pure functions; each call owns its parser / libpng / libtiff state and
// routes library messages to its own buffer.

#include "stages/roi.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <png.h>
#include <tiffio.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace flowinfer {

namespace {

using nlohmann::json;

class GeoJsonReader {
public:
    explicit GeoJsonReader(std::string source) : source_(std::move(source)) {}

    Region read(const json& doc) {
        if (doc.is_array()) {
            for (std::size_t i = 0; i < doc.size(); ++i) item(doc[i], i);
        } else if (doc.is_object() && type_of(doc) == "FeatureCollection") {
            const auto it = doc.find("features");
            if (it == doc.end() || !it->is_array()) fail("not GeoJSON: a FeatureCollection without a \"features\" array");
            for (std::size_t i = 0; i < it->size(); ++i) item((*it)[i], i);
        } else if (doc.is_object() && type_of(doc) == "Feature") {
            feature(doc, 0);
        } else if (doc.is_object() && is_geometry(type_of(doc))) {
            geometry(doc, "geometry", 0);
        } else {
            const std::string t = doc.is_object() ? type_of(doc) : std::string(doc.type_name());
            fail(fmt::format("not GeoJSON: expected a FeatureCollection, a Feature, a geometry or an array of "
                             "Features, found {}",
                             t.empty() ? std::string("an object without \"type\"") : "\"" + t + "\""));
        }
        if (polygons_.empty()) {
            std::string why = warnings_.empty() ? std::string()
                                                : fmt::format(" ({} left out; the first: {})", warnings_.size(),
                                                              warnings_.front().substr(source_.size() + 2));
            fail("no Polygon or MultiPolygon with an area" + why);
        }
        return Region::from_polygons(std::move(polygons_), source_, std::move(warnings_));
    }

private:
    std::string source_;
    std::vector<std::string> warnings_;
    geom::MultiPolygon polygons_;

    [[noreturn]] void fail(const std::string& problem) const { throw RegionError(source_, problem); }
    void warn(const std::string& where, const std::string& problem) {
        warnings_.push_back(fmt::format("{}: {}: {}", source_, where, problem));
    }

    static std::string type_of(const json& j) {
        const auto it = j.find("type");
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    }
    static bool is_geometry(const std::string& t) {
        return t == "Polygon" || t == "MultiPolygon" || t == "GeometryCollection" || t == "Point" ||
               t == "MultiPoint" || t == "LineString" || t == "MultiLineString";
    }

    void item(const json& j, std::size_t i) {
        if (j.is_object() && type_of(j) == "Feature") return feature(j, i);
        if (j.is_object() && is_geometry(type_of(j))) return geometry(j, fmt::format("feature {}", i), 0);
        warn(fmt::format("feature {}", i), "not a Feature; left out");
    }

    void feature(const json& f, std::size_t i) {
        // QuPath names annotations in properties.name; the name finds the outline in QuPath.
        std::string where = fmt::format("feature {}", i);
        const auto props = f.find("properties");
        if (props != f.end() && props->is_object()) {
            const auto name = props->find("name");
            if (name != props->end() && name->is_string()) where += fmt::format(" (\"{}\")", name->get<std::string>());
        }
        const auto g = f.find("geometry");
        if (g == f.end() || g->is_null()) return warn(where, "no geometry (null); left out");
        if (!g->is_object()) return warn(where, "the geometry is not an object; left out");
        geometry(*g, where, 0);
    }

    void geometry(const json& g, const std::string& where, int depth) {
        const std::string t = type_of(g);
        if (t == "GeometryCollection") {
            const auto gs = g.find("geometries");
            if (gs == g.end() || !gs->is_array() || depth > 16)
                return warn(where, "a GeometryCollection without a usable \"geometries\" array; left out");
            for (std::size_t k = 0; k < gs->size(); ++k) {
                if ((*gs)[k].is_object()) geometry((*gs)[k], fmt::format("{}: geometry {}", where, k), depth + 1);
            }
            return;
        }
        if (t != "Polygon" && t != "MultiPolygon")
            return warn(where, fmt::format("a {} is not an area; left out", t.empty() ? "geometry without type" : t));
        const auto c = g.find("coordinates");
        if (c == g.end() || !c->is_array()) return warn(where, "no \"coordinates\" array; left out");
        if (t == "Polygon") return polygon(*c, where);
        for (std::size_t k = 0; k < c->size(); ++k) polygon((*c)[k], fmt::format("{}: polygon {}", where, k));
    }

    void polygon(const json& rings, const std::string& where) {
        if (!rings.is_array() || rings.empty()) return warn(where, "a polygon without rings; left out");
        geom::Polygon p;
        for (std::size_t r = 0; r < rings.size(); ++r) {
            geom::Ring ring;
            if (!rings[r].is_array()) return warn(where, fmt::format("ring {} is not an array of positions; left out", r));
            for (const auto& pos : rings[r]) {
                if (!pos.is_array() || pos.size() < 2 || !pos[0].is_number() || !pos[1].is_number())
                    return warn(where, fmt::format("ring {} has a position that is not [x, y]; left out", r));
                ring.push_back({pos[0].get<double>(), pos[1].get<double>()});
            }
            // RFC 7946 rings repeat the first position; some writers leave it off.
            if (!ring.empty() && !(ring.front() == ring.back())) ring.push_back(ring.front());
            (r == 0 ? p.outer : p.holes.emplace_back()) = std::move(ring);
        }
        if (const auto why = geom::invalid_reason(p)) return warn(where, *why + "; left out");
        geom::normalize(p);
        if (!(geom::area(p) > 0)) return warn(where, "a polygon without area; left out");
        polygons_.push_back(std::move(p));
    }
};

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw RegionError(path, fmt::format("cannot open: {}", std::strerror(errno)));
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) throw RegionError(path, "cannot read the file");
    return s.str();
}

}  // namespace

Region region_from_geojson_text(const std::string& text, const std::string& source) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        throw RegionError(source, fmt::format("not JSON: {}", e.what()));
    }
    try {
        return GeoJsonReader(source).read(doc);
    } catch (const json::exception& e) {  // a member of an unexpected type the checks missed
        throw RegionError(source, fmt::format("not GeoJSON: {}", e.what()));
    }
}

Region region_from_geojson_file(const std::string& path) { return region_from_geojson_text(read_text(path), path); }

namespace {

struct PngState {
    std::FILE* f = nullptr;
    png_structp png = nullptr;
    png_infop info = nullptr;
    char error[512] = "";
    ~PngState() {
        if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
        if (f) std::fclose(f);
    }
};

void png_fail(png_structp png, png_const_charp msg) {
    auto* st = static_cast<PngState*>(png_get_error_ptr(png));
    std::snprintf(st->error, sizeof st->error, "%s", msg);
    png_longjmp(png, 1);
}
void png_quiet(png_structp, png_const_charp) {}

int tiff_capture(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
    auto* msg = static_cast<std::string*>(user);
    if (msg->empty()) {
        char buf[512];
        std::vsnprintf(buf, sizeof buf, fmt, ap);
        *msg = module && *module ? fmt::format("{}: {}", module, buf) : std::string(buf);
    }
    return 1;
}
int tiff_quiet(TIFF*, void*, const char*, const char*, va_list) { return 1; }

void check_size(const std::string& path, std::uint64_t w, std::uint64_t h) {
    if (w == 0 || h == 0 || (w + 1) * (h + 1) > (std::uint64_t(1) << 30))
        throw RegionError(path, fmt::format("a {}x{} mask is not usable (empty or over 2^30 pixels)", w, h));
}

}  // namespace

Region region_from_png(const std::string& path, std::int64_t slide_w, std::int64_t slide_h) {
    PngState st;
    st.f = std::fopen(path.c_str(), "rb");
    if (!st.f) throw RegionError(path, fmt::format("cannot open: {}", std::strerror(errno)));
    unsigned char sig[8] = {};
    if (std::fread(sig, 1, 8, st.f) != 8 || png_sig_cmp(sig, 0, 8) != 0) throw RegionError(path, "not a PNG file");
    st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, png_fail, png_quiet);
    if (st.png) st.info = png_create_info_struct(st.png);
    if (!st.png || !st.info) throw RegionError(path, "libpng cannot start");
    // Declared before setjmp: a longjmp must not skip a constructor or destructor.
    std::vector<png_byte> pixels;
    std::vector<png_bytep> rows;
    std::vector<std::uint8_t> mask;
    if (setjmp(png_jmpbuf(st.png))) throw RegionError(path, std::string("not a readable PNG: ") + st.error);
    png_init_io(st.png, st.f);
    png_set_sig_bytes(st.png, 8);
    png_read_info(st.png, st.info);
    const png_uint_32 w = png_get_image_width(st.png, st.info), h = png_get_image_height(st.png, st.info);
    check_size(path, w, h);
    // Palette to RGB, 1/2/4-bit grey to 8-bit, tRNS to alpha; 16-bit samples stay 16-bit so
    // that a value of 1 is still nonzero.
    png_set_expand(st.png);
    png_set_interlace_handling(st.png);
    png_read_update_info(st.png, st.info);
    const int channels = png_get_channels(st.png, st.info);
    const int bytes = png_get_bit_depth(st.png, st.info) == 16 ? 2 : 1;
    const bool alpha = (png_get_color_type(st.png, st.info) & PNG_COLOR_MASK_ALPHA) != 0;
    const std::size_t stride = png_get_rowbytes(st.png, st.info);
    pixels.resize(stride * h);
    rows.resize(h);
    for (png_uint_32 j = 0; j < h; ++j) rows[j] = pixels.data() + stride * j;
    png_read_image(st.png, rows.data());
    const int colours = alpha ? channels - 1 : channels;
    mask.resize(std::size_t(w) * h);
    for (png_uint_32 j = 0; j < h; ++j)
        for (png_uint_32 i = 0; i < w; ++i) {
            const png_byte* px = rows[j] + std::size_t(i) * channels * bytes;
            bool colour = false, opaque = !alpha;
            for (int b = 0; b < colours * bytes; ++b) colour = colour || px[b] != 0;
            for (int b = colours * bytes; b < channels * bytes; ++b) opaque = opaque || px[b] != 0;
            mask[std::size_t(j) * w + i] = colour && opaque;
        }
    return Region::from_mask(std::move(mask), w, h, slide_w, slide_h, path);
}

Region region_from_tiff(const std::string& path, std::int64_t slide_w, std::int64_t slide_h) {
    std::string error;
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_capture, &error);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_quiet, nullptr);
    std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpenExt(path.c_str(), "r", opts), [](TIFF* t) {
        if (t) TIFFClose(t);
    });
    TIFFOpenOptionsFree(opts);
    if (!tif) throw RegionError(path, "not a readable TIFF: " + error);
    std::uint32_t w = 0, h = 0;
    TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h);
    check_size(path, w, h);
    std::vector<std::uint32_t> raster(std::size_t(w) * h);
    if (!TIFFReadRGBAImageOriented(tif.get(), w, h, raster.data(), ORIENTATION_TOPLEFT, 0))
        throw RegionError(path, "libtiff cannot decode the image: " + error);
    std::vector<std::uint8_t> mask(raster.size());
    for (std::size_t k = 0; k < raster.size(); ++k)
        mask[k] = (TIFFGetR(raster[k]) | TIFFGetG(raster[k]) | TIFFGetB(raster[k])) != 0;
    return Region::from_mask(std::move(mask), w, h, slide_w, slide_h, path);
}


Region load_region(const std::string& path, std::int64_t slide_w, std::int64_t slide_h) {
    const auto dot = path.find_last_of('.');
    std::string ext = dot == std::string::npos ? std::string() : path.substr(dot + 1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == "geojson" || ext == "json") return region_from_geojson_file(path);
    if (ext == "png") return region_from_png(path, slide_w, slide_h);
    if (ext == "tif" || ext == "tiff") return region_from_tiff(path, slide_w, slide_h);
    throw RegionError(path, "unknown kind of region file (expected .geojson, .json, .png, .tif or .tiff)");
}

Region rectangle_region(double x, double y, double w, double h) {
    const std::string source = fmt::format("--region {},{},{},{}", x, y, w, h);
    if (!(std::isfinite(x) && std::isfinite(y) && std::isfinite(w) && std::isfinite(h)) || !(w > 0 && h > 0))
        throw RegionError(source, "the rectangle needs finite numbers and a positive width and height");
    geom::Polygon p;
    p.outer = {{x, y}, {x + w, y}, {x + w, y + h}, {x, y + h}, {x, y}};
    return Region::from_polygons({std::move(p)}, source);
}

}  // namespace flowinfer
