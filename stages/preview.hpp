// Overlay previews of a slide's results: the model maps (segmentation label maps, classification
// heatmaps) and detection boxes drawn over a slide thumbnail, written as a PNG, plus a small
// base64 PNG of any image for embedding in the HTML run report (data: URI, so the report needs
// no other file to show it).
//
// The slide thumbnail is made by the caller; this file only reads the map TIFFs (the level
// nearest the thumbnail's scale, so a preview never decodes a full-resolution map) and draws.
//
// Thread safety: all functions are reentrant (each opens its own libtiff handle and owns its
// buffers); concurrent calls must write different paths.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer {

struct RgbImage {
    int width = 0, height = 0;
    std::vector<std::uint8_t> rgb;  // row-major interleaved, width * height * 3 bytes
};

// One layer drawn over the slide thumbnail; coordinates are level-0 pixels of the slide.
struct PreviewMap {
    std::string path;       // the map .tif (pyramidal, 8-bit, 1 channel)
    double downsample = 1;  // level-0 slide pixels per map level-0 pixel
    // classes: a segmentation map. A label map (PHOTOMETRIC_PALETTE, > 2 model channels) tints
    //   class k > 0 in colors[k] (the TIFF's own palette entry where colors has none,
    //   tab10 / grey when the file has no palette); a 1- or
    //   2-channel map (no palette) tints value >= 128 in colors[1] (or tab10's class-1 orange).
    // heat: a classification heatmap, value v > 0 blended with a viridis-like ramp at v / 255;
    //   value 0 means "patch not run" and is left untinted.
    enum Kind { classes, heat } kind = classes;
    std::vector<std::array<std::uint8_t, 3>> colors;  // per class (classes kind); [0] unused
};

// A detection box in level-0 slide pixels, drawn as a 2-pixel outline inside its extent.
struct PreviewBox {
    double x1, y1, x2, y2;
    std::array<std::uint8_t, 3> color;
};

// Blend rules (integers, so results are exact and testable):
//   tinted class pixel:  out = (55 * thumb + 45 * colour + 50) / 100  per channel
//   heat pixel:          out = (thumb + ramp(v) + 1) / 2, ramp rounded to integers first
// Maps are drawn in order (a later map over an earlier one), boxes last, in solid colour,
// clipped to the image. Each map is read at its smallest TIFF directory that still has at
// least one pixel per thumbnail pixel (level 0 when none has) and sampled nearest-neighbour at
// thumbnail pixel centres; palette maps are read as raw indices.
// Throws OutputError naming the map when it cannot be read or is not 8-bit 1-channel, and
// std::invalid_argument when the thumbnail's buffer does not match its size or
// thumb_downsample is not positive.
RgbImage compose_preview(RgbImage thumbnail, double thumb_downsample /* level-0 px per thumb px */,
                         const std::vector<PreviewMap>& maps, const std::vector<PreviewBox>& boxes);

// The ramp used for heat maps at t in [0, 1] (5 viridis stops, linear between them, rounded).
std::array<std::uint8_t, 3> heat_ramp(double t);

// Writes the image as an RGB PNG through write_file_atomically (".partial" then rename).
// Throws OutputError naming `path` (also for an empty or inconsistent image).
void write_png(const std::string& path, const RgbImage& img);

// A PNG of the image reduced (area-averaged, never enlarged) so its long side is at most
// `long_side`, as "data:image/png;base64,...". An empty image gives "" (no thumbnail).
// Throws std::invalid_argument for an inconsistent image or long_side < 1.
std::string thumbnail_data_uri(const RgbImage& img, int long_side = 160);

}  // namespace flowinfer
