// Contours of binary raster masks (segmentation maps, tissue masks) as polygons with holes,
// for GeoJSON output: tracing along pixel edges, Douglas-Peucker simplification that keeps
// (multi)polygons valid, and removal of specks and pinholes.
//
// Thread safety: pure functions on caller-owned values; any number of calls may run at once.
#pragma once

#include "stages/geometry/polygon.hpp"

#include <cstdint>

namespace flowinfer::geom {

// Traces the boundaries of the foreground (mask[y*width+x] != 0) along pixel edges: pixel (x, y)
// covers [x, x+1) x [y, y+1). Foreground is 4-connected (pixels touching only at a corner are
// separate parts, meeting at one vertex). One Polygon per 4-connected component: its outer ring
// counter-clockwise (positive shoelace in these x-right/y-down numbers), each hole clockwise, rings
// closed, collinear vertices removed. Components come in raster order of their first pixel.
// Every ring is simple: where a component touches itself at a corner, the pinched-off background
// becomes a hole touching the outer ring (or another hole) at that vertex, as OGC asks.
// Throws std::invalid_argument for a null mask with width * height > 0, a negative size, or more
// than 2^31 pixels. Memory: 4 bytes per pixel besides the result.
MultiPolygon trace_contours(const std::uint8_t* mask, std::int64_t width, std::int64_t height);

// Douglas-Peucker within `tolerance` (same units as the rings), per ring, keeping each ring closed
// with at least 4 points and its orientation, and the MultiPolygon valid: no simplified ring may
// cross, touch inside a segment, overlap, or swallow (pass over without contact) any ring of ANY
// polygon of `m`. A chord that would do so is split at its farthest vertex and the halves are
// tried instead (down to the original edges). Vertices shared by rings (of one polygon or of two
// polygons touching at a corner) are kept. tolerance <= 0: unchanged. Implemented in simplify.cpp:
// a uniform grid of all segments, so the cost is about linear in the vertex count (many polygons
// and holes alike); memory about 40 bytes per vertex.
void simplify(MultiPolygon& m, double tolerance);

// simplify(MultiPolygon&) on the single polygon p (its rings checked only against each other).
void simplify(Polygon& p, double tolerance);

// Drops holes whose |area| < min_area (the hole is filled), then polygons whose area() (with the
// remaining holes) < min_area. min_area <= 0: unchanged.
void drop_small(MultiPolygon& m, double min_area);

}  // namespace flowinfer::geom
