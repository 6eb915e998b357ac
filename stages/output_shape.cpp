#include "stages/output_shape.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

namespace flowinfer {

std::string shape_string(const std::vector<std::int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

namespace {

void check_batch(const std::string& model, const std::vector<std::int64_t>& shape, int n) {
    if (shape[0] != n)
        throw ModelError(model, fmt::format("output batch is {} ({}); expected {} (the input batch)", shape[0],
                                            shape_string(shape), n));
}

void check_rank(const std::string& model, const std::vector<std::int64_t>& shape, int n, std::size_t rank,
                const char* layout) {
    if (shape.size() != rank)
        throw ModelError(model, fmt::format("output has rank {} ({}); expected {}", shape.size(),
                                            shape_string(shape), layout));
    check_batch(model, shape, n);
    for (std::size_t d = 1; d < shape.size(); ++d)
        if (shape[d] < 1) throw ModelError(model, fmt::format("output {} is empty", shape_string(shape)));
}

// A foundation model's forward() returns one vector per patch; a feature map that is not
// pooled to 1 x 1 (a ViT's token grid, a CNN's last stage) needs pooling the user must choose.
void check_embedding(const std::string& model, const std::vector<std::int64_t>& shape, int n) {
    constexpr const char* layout = "[B, D] or [B, D, 1, 1] for task embedding";
    if (shape.size() == 4 && (shape[2] != 1 || shape[3] != 1))
        throw ModelError(model, fmt::format("output {} is a feature map, not one vector per patch; expected {} "
                                            "(pool the map inside the model)",
                                            shape_string(shape), layout));
    if (shape.size() != 2 && shape.size() != 4)
        throw ModelError(model, fmt::format("output has rank {} ({}); expected {}", shape.size(),
                                            shape_string(shape), layout));
    check_batch(model, shape, n);
    if (shape[1] < 1)
        throw ModelError(model, fmt::format("output {} has D = {} features per patch; expected {} with D >= 1",
                                            shape_string(shape), shape[1], layout));
}

}  // namespace

void check_output_shape(const std::string& model, Task task, const std::vector<std::int64_t>& shape, int n, int h,
                        int w) {
    switch (task) {
        case Task::classification: return check_rank(model, shape, n, 2, "[B, C] for task classification");
        case Task::detection:
            return check_rank(model, shape, n, 3, "[B, N, 6], [B, 4 + nc, N] or [B, N, 5 + nc] for task detection");
        case Task::embedding: return check_embedding(model, shape, n);
        case Task::segmentation: break;
    }
    if (shape.size() != 4)
        throw ModelError(model, fmt::format("output has rank {} ({}); expected [B, C, h, w]", shape.size(),
                                            shape_string(shape)));
    check_batch(model, shape, n);
    if (shape[1] < 1 || shape[2] < 1 || shape[3] < 1)
        throw ModelError(model, fmt::format("output {} is empty", shape_string(shape)));
    // The stitcher maps output pixels back onto the patch with one integer factor, so anything
    // else (padding-less convolutions shrinking the map, odd strides) must fail loudly here.
    const auto fits = [h, w](std::int64_t oh, std::int64_t ow) {
        const std::int64_t s = h / oh;
        return s >= 1 && oh * s == h && ow * s == w;
    };
    if (!fits(shape[2], shape[3]))
        throw ModelError(model, fmt::format("output size {}x{} (h x w) is not the input patch {}x{} "
                                            "divided by one integer factor{}",
                                            shape[2], shape[3], h, w,
                                            fits(shape[1], shape[2]) ? " (a channels-last map [B, h, w, C]? set "
                                                                       "output_layout = \"nhwc\")"
                                                                     : ""));
}

}  // namespace flowinfer
