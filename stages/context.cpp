#include "stages/context.hpp"

#include "stages/classify.hpp"
#include "stages/detect.hpp"
#include "stages/embed.hpp"
#include "stages/hdf5/feature_writer.hpp"
#include "stages/image/png_map.hpp"
#include "stages/object_writer.hpp"
#include "stages/stitch.hpp"

namespace flowinfer {

ModelSlide::ModelSlide() = default;
ModelSlide::ModelSlide(ModelSlide&&) noexcept = default;
ModelSlide::~ModelSlide() = default;

SlideContext::SlideContext() = default;
SlideContext::~SlideContext() = default;

void SlideContext::fail(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.load(std::memory_order_relaxed)) return;
    error_ = message;
    failed_.store(true, std::memory_order_release);
}

std::string SlideContext::error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
}

}  // namespace flowinfer
