// What each task accepts as a model's output, checked on its shape alone: torch-free, so the
// rules are testable without a model and cheap to compile.
//
// Thread safety: pure functions.
#pragma once

#include <flowinfer/config.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer {

// "[1, 3, 256, 256]".
std::string shape_string(const std::vector<std::int64_t>& shape);

// Throws ModelError (naming `model`) unless `shape` is what `task` takes from a batch of `n`
// patches of h x w:
// - segmentation: [n, C, h / s, w / s] for one integer s >= 1 (the stitcher maps output
//   pixels back onto the patch with one factor);
// - classification: [n, C];
// - detection: [n, d1, d2] (the layouts of detection_format);
// - embedding: [n, D] or [n, D, 1, 1] (a pooled feature map), D >= 1.
// Every dimension must be at least 1.
void check_output_shape(const std::string& model, Task task, const std::vector<std::int64_t>& shape, int n, int h,
                        int w);

}  // namespace flowinfer
