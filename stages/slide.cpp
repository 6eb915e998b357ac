#include "stages/slide.hpp"

#include "stages/image/source.hpp"
#include "stages/tiff/tile.hpp"
#include "stages/tiff/reader.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <openslide.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace flowinfer {

namespace {
constexpr double kMaxTiffMpp = 20.0;
}  // namespace

struct Slide::Handle {
    openslide_t* osr = nullptr;
    // Throws SlideError (missing file, unsupported format, OpenSlide error on open).
    explicit Handle(const std::string& path) {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) throw SlideError(path, "file not found");
        if (!std::filesystem::is_regular_file(path, ec)) throw SlideError(path, "not a regular file");
        // detect_vendor distinguishes "not a slide" from "a slide OpenSlide failed to read".
        const char* vendor = openslide_detect_vendor(path.c_str());
        osr = openslide_open(path.c_str());
        if (!osr) {
            throw SlideError(path, vendor ? fmt::format("OpenSlide cannot open this {} file", vendor)
                                          : "not a format OpenSlide recognises");
        }
        if (const char* err = openslide_get_error(osr)) {
            std::string msg = err;
            openslide_close(osr);
            osr = nullptr;
            throw SlideError(path, "OpenSlide: " + msg);
        }
    }
    ~Handle() {
        if (osr) openslide_close(osr);
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
};

Slide::Slide(std::string path, SlideReader reader) : path_(std::move(path)), handle_(std::make_shared<Handle>(path_)) {
    openslide_t* osr = handle_->osr;
    const int n = openslide_get_level_count(osr);
    for (int l = 0; l < n; ++l) {
        LevelInfo info;
        openslide_get_level_dimensions(osr, l, &info.width, &info.height);
        info.downsample = openslide_get_level_downsample(osr, l);
        levels_.push_back(info);
    }
    if (levels_.empty() || levels_[0].width <= 0 || levels_[0].height <= 0)
        throw SlideError(path_, "slide has no readable level");
    if (reader == SlideReader::openslide) return;
    std::vector<tiff::LevelShape> shapes;
    for (const LevelInfo& l : levels_) shapes.push_back({l.width, l.height, l.downsample});
    const char* vendor = openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_VENDOR);
    try {
        native_ = tiff::TiffTileReader::open(path_, vendor ? vendor : "", shapes, native_why_);
    } catch (const tiff::TileDecodeError& e) {
        native_why_ = e.what();
    }
    if (!native_ && reader == SlideReader::native)
        throw SlideError(path_, "runtime.reader = \"native\" cannot read it: " + native_why_);
}

Slide::~Slide() = default;

std::unique_ptr<Slide> Slide::image(std::string path) {
    std::unique_ptr<Slide> s(new Slide());
    s->path_ = std::move(path);
    s->image_ = std::make_unique<image::Source>(s->path_);
    s->levels_.push_back(LevelInfo{s->image_->width(), s->image_->height(), 1.0});
    return s;
}

std::shared_ptr<Slide::Handle> Slide::current() const {
    std::lock_guard<std::mutex> lock(mu_);
    return handle_;
}

int Slide::level_count() const { return static_cast<int>(levels_.size()); }

std::int64_t Slide::level_width(int level) const {
    return level >= 0 && level < level_count() ? levels_[static_cast<std::size_t>(level)].width : -1;
}

std::int64_t Slide::level_height(int level) const {
    return level >= 0 && level < level_count() ? levels_[static_cast<std::size_t>(level)].height : -1;
}

double Slide::level_downsample(int level) const {
    return level >= 0 && level < level_count() ? levels_[static_cast<std::size_t>(level)].downsample : -1.0;
}

double Slide::number_property(const char* name) const {
    if (image_) return 0.0;  // a patch file carries no scan properties
    const std::shared_ptr<Handle> h = current();
    const char* v = openslide_get_property_value(h->osr, name);
    if (!v) return 0.0;
    char* end = nullptr;
    const double d = std::strtod(v, &end);
    return (end != v && d > 0.0) ? d : 0.0;
}

double Slide::objective_power() const { return number_property(OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER); }

double Slide::mpp() const {
    if (const double mpp = number_property(OPENSLIDE_PROPERTY_NAME_MPP_X); mpp > 0.0) return mpp;
    // OpenSlide 3.4.1 does not turn a generic TIFF's resolution tags into openslide.mpp-x
    // (4.0 does); derive it the same way, so flowinfer's own outputs and synthetic slides
    // and other resolution-tagged TIFFs keep their scale.
    if (image_) return 0.0;
    const std::shared_ptr<Handle> h = current();  // owns the property strings
    const char* unit = openslide_get_property_value(h->osr, "tiff.ResolutionUnit");
    const double res = number_property("tiff.XResolution");
    if (!unit || res <= 0.0) return 0.0;
    const std::string u = unit;
    const double mpp = u == "centimeter" ? 10000.0 / res : u == "inch" ? 25400.0 / res : 0.0;
    // Writers without a scale leave placeholder tags (72 or 96 dpi: 264-353 µm/px); no
    // microscope scan is coarser than a few µm/px, so anything above kMaxTiffMpp is no MPP.
    return mpp <= kMaxTiffMpp ? mpp : 0.0;
}

void Slide::read_on(const Handle& handle, std::int64_t x0, std::int64_t y0, int level, std::int64_t w,
                    std::int64_t h, std::uint32_t* argb, std::uint8_t* rgb) const {
    openslide_read_region(handle.osr, argb, x0, y0, level, w, h);
    if (const char* err = openslide_get_error(handle.osr))
        throw SlideError(path_, fmt::format("reading level {} at ({}, {}) size {}x{}: {}", level,
                                            x0, y0, w, h, err));
    const std::int64_t n = w * h;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::uint32_t p = argb[i];
        // Premultiplied: compositing onto white is c + (255 - a).
        const std::uint32_t inv = 255u - (p >> 24);
        rgb[3 * i + 0] = static_cast<std::uint8_t>(((p >> 16) & 0xffu) + inv);
        rgb[3 * i + 1] = static_cast<std::uint8_t>(((p >> 8) & 0xffu) + inv);
        rgb[3 * i + 2] = static_cast<std::uint8_t>((p & 0xffu) + inv);
    }
}

void Slide::read_rgb(std::int64_t x0, std::int64_t y0, int level, std::int64_t w, std::int64_t h,
                     std::uint32_t* argb, std::uint8_t* rgb) const {
    if (image_) return image_->read(x0, y0, w, h, rgb);  // one level: level-0 pixels are the level's
    const std::shared_ptr<Handle> handle = current();
    try {
        read_on(*handle, x0, y0, level, w, h, argb, rgb);
    } catch (const SlideError&) {
        // Replace the broken handle unless another failed read has done so already. Opening
        // outside the lock: other readers go on with whatever handle they hold meanwhile.
        bool replace = false;
        {
            std::lock_guard<std::mutex> lock(mu_);
            replace = handle_ == handle;
        }
        if (replace) {
            std::shared_ptr<Handle> fresh;
            try {
                fresh = std::make_shared<Handle>(path_);
            } catch (const SlideError&) {
                // The file went away or changed: keep the broken handle; later reads fail.
            }
            std::lock_guard<std::mutex> lock(mu_);
            if (fresh && handle_ == handle) handle_ = std::move(fresh);
        }
        throw;
    }
}

void Slide::read_rgb_isolated(std::int64_t x0, std::int64_t y0, int level, std::int64_t w, std::int64_t h,
                              std::uint32_t* argb, std::uint8_t* rgb) const {
    if (image_) return image_->read(x0, y0, w, h, rgb);
    const Handle own(path_);
    read_on(own, x0, y0, level, w, h, argb, rgb);
}

void Slide::fail_native(const std::exception& e) const {
    // The native reader's messages name the level and tile ("level 1 tile (3, 2): ...").
    throw SlideError(path_, std::string("reading ") + e.what());
}

void Slide::read_level_openslide(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h,
                                 std::uint8_t* rgb, bool isolated) const {
    thread_local std::vector<std::uint32_t> argb;
    argb.resize(static_cast<std::size_t>(w * h));
    const double ds = level_downsample(level);
    const std::int64_t x0 = std::llround(static_cast<double>(x) * ds), y0 = std::llround(static_cast<double>(y) * ds);
    if (isolated) read_rgb_isolated(x0, y0, level, w, h, argb.data(), rgb);
    else read_rgb(x0, y0, level, w, h, argb.data(), rgb);
}

void Slide::read_level(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h,
                       std::uint8_t* rgb) const {
    if (image_) return image_->read(x, y, w, h, rgb);
    if (!native_) return read_level_openslide(level, x, y, w, h, rgb, false);
    try {
        native_->read(level, x, y, w, h, 1, rgb);
    } catch (const tiff::TileDecodeError& e) {
        fail_native(e);
    }
}

void Slide::read_level_isolated(int level, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h,
                                std::uint8_t* rgb) const {
    if (native_ || image_) return read_level(level, x, y, w, h, rgb);
    read_level_openslide(level, x, y, w, h, rgb, true);
}

bool Slide::reads_scaled(int level, int scale) const { return native_ && scale > 1 && native_->scales(level, scale); }

void Slide::read_level_scaled(int level, int scale, std::int64_t x, std::int64_t y, std::int64_t w, std::int64_t h,
                              std::uint8_t* rgb) const {
    if (!reads_scaled(level, scale))
        throw SlideError(path_, fmt::format("level {} cannot be decoded at 1/{}", level, scale));
    try {
        native_->read(level, x, y, w, h, scale, rgb);
    } catch (const tiff::TileDecodeError& e) {
        fail_native(e);
    }
}

std::string Slide::codec(int level) const {
    if (image_) return image::to_string(image_->info().format);
    return native_ ? native_->codec(level) : std::string();
}

// An image is decoded whole: one tile.
int Slide::tile_width(int level) const {
    return image_ ? static_cast<int>(image_->width()) : native_ ? native_->tile_width(level) : 256;
}
int Slide::tile_height(int level) const {
    return image_ ? static_cast<int>(image_->height()) : native_ ? native_->tile_height(level) : 256;
}

void Slide::set_tile_cache_bytes(std::int64_t bytes) const {
    if (native_) native_->set_cache_bytes(bytes);
}

std::int64_t Slide::tile_cache_bytes() const { return native_ ? native_->cache_bytes() : 0; }

Slide::ReadStats Slide::read_stats() const {
    ReadStats r;
    if (!native_) return r;
    const tiff::TileCacheStats s = native_->cache_stats();
    r.tiles_decoded = s.decoded;
    r.tile_cache_hits = s.hits;
    r.tile_cache_waits = s.waited;
    r.tile_cache_peak_bytes = s.peak_bytes;
    return r;
}

}  // namespace flowinfer
