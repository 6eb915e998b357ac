// Regions of interest: a QuPath-style GeoJSON annotation file, a binary mask image or a
// rectangle, asked "what share of this level-0 rectangle (a patch footprint) lies inside".
// The plan keeps the patches whose share reaches a threshold; what to do with a region that
// misses the slide altogether is the caller's call (bounds() says where it lies).
//
// Thread safety: a Region is immutable once built; its const methods may be called from any
// number of threads at once. The loaders share no state.
#pragma once

#include "stages/geometry/polygon.hpp"

#include <flowinfer/errors.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flowinfer {

// A region file that cannot be used: unreadable, not GeoJSON, not an image, nothing inside.
// what() is "<path>: <problem>".
class RegionError : public Error {
public:
    RegionError(std::string path, const std::string& problem);
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
};

// A slide's region of interest in level-0 pixels.
class Region {
public:
    Region();  // empty: no area, fraction_in() is 0 everywhere

    // Polygons in level-0 pixel coordinates, normalized (outer rings counter-clockwise,
    // holes clockwise, closed) and valid. Polygons that overlap count their overlap once
    // only when one lies wholly inside another (the inner one is dropped, with a warning);
    // a partial overlap is counted twice, so shares near it read high (a warning says so).
    // `warnings` are those the reader already found (kept first).
    static Region from_polygons(geom::MultiPolygon m, std::string source, std::vector<std::string> warnings = {});

    // A binary mask (nonzero = inside) of mw x mh pixels, row-major, covering the whole
    // slide: mask pixel (i, j) covers level-0 [i*sx, (i+1)*sx) x [j*sy, (j+1)*sy) with
    // sx = slide_w / mw, sy = slide_h / mh. Throws RegionError (naming `source`) when the
    // mask is empty or its size does not match mw*mh.
    static Region from_mask(std::vector<std::uint8_t> mask, std::int64_t mw, std::int64_t mh,
                            std::int64_t slide_w, std::int64_t slide_h, std::string source);

    // Share of [x, x+w) x [y, y+h) inside the region, in [0, 1]; 0 for an empty rectangle.
    // Mask pixels cut by the rectangle count by the area they share with it.
    double fraction_in(double x, double y, double w, double h) const;

    geom::Box bounds() const;  // level-0 bounding box of the region; empty() when no area
    bool empty() const;        // no area at all
    double area() const;       // level-0 square pixels inside
    const std::string& source() const;
    // Problems that did not stop loading, each starting with the source ("<file>: ...").
    const std::vector<std::string>& warnings() const;

    struct Impl;

private:
    explicit Region(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;  // shared: copies of a Region are cheap
};

// Reads `path` by its extension (case-insensitive): .geojson / .json as GeoJSON, .png and
// .tif / .tiff as masks scaled to the slide. Throws RegionError naming the file and the
// problem.
Region load_region(const std::string& path, std::int64_t slide_w, std::int64_t slide_h);

// GeoJSON as QuPath writes it: a FeatureCollection, a Feature, a bare geometry or a JSON
// array of Features; Polygon, MultiPolygon and GeometryCollections of them. Other geometry
// types, null geometries and invalid polygons are left out with a warning naming the
// feature by its 0-based index (and its name when it has one). `source` names the text in
// messages.
Region region_from_geojson_text(const std::string& text, const std::string& source);
Region region_from_geojson_file(const std::string& path);

// Masks from image files: any nonzero colour sample is inside, except where alpha is 0.
Region region_from_png(const std::string& path, std::int64_t slide_w, std::int64_t slide_h);
Region region_from_tiff(const std::string& path, std::int64_t slide_w, std::int64_t slide_h);

// The rectangle form of `flowinfer run --region X,Y,W,H`. Throws RegionError when w or h is
// not positive or a value is not finite.
Region rectangle_region(double x, double y, double w, double h);

}  // namespace flowinfer
