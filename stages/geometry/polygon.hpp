// Plane polygons for contours (segmentation maps -> GeoJSON) and regions of interest
// (GeoJSON / mask images -> which patches run). Coordinates are as written: x right, y down
// (image and level-0 pixels); "counter-clockwise" means a positive shoelace sum of the numbers
// as given, the convention RFC 7946 states for exterior rings.
//
// Thread safety: plain values and pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace flowinfer::geom {

struct Point {
    double x = 0, y = 0;
    bool operator==(const Point& o) const { return x == o.x && y == o.y; }
};

// Closed: front() == back(), so a triangle has 4 points.
using Ring = std::vector<Point>;

struct Polygon {
    Ring outer;               // counter-clockwise (positive signed_area) once normalized
    std::vector<Ring> holes;  // clockwise once normalized
};
using MultiPolygon = std::vector<Polygon>;

struct Box {
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // [x0, x1) x [y0, y1)
    bool empty() const { return !(x1 > x0 && y1 > y0); }
};

// Shoelace sum / 2: positive for counter-clockwise rings. Open or closed rings alike.
double signed_area(const Ring& r);
// |outer| - sum |holes|.
double area(const Polygon& p);
double area(const MultiPolygon& m);
Box bounds(const Ring& r);
Box bounds(const MultiPolygon& m);

// Outer rings counter-clockwise, holes clockwise, every ring closed.
void normalize(Polygon& p);

// Area of p ∩ box (exact: each ring clipped to the box, Sutherland-Hodgman, which holds for
// concave rings against a convex window).
double clipped_area(const Polygon& p, const Box& box);

// The first defect of a polygon that makes it invalid in OGC's sense, described for a
// message ("ring 0 crosses itself near (x, y)", "ring has fewer than 4 points", "hole 2
// crosses the outer ring near (x, y)"); nullopt when valid. Rings may touch at single
// points. O(n log n) on typical rings (segments swept by x).
std::optional<std::string> invalid_reason(const Polygon& p);

}  // namespace flowinfer::geom
