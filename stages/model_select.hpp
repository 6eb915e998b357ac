// Which tensor of a model's forward() result a task reads (models[].output), in the layout
// the stages expect (models[].output_layout), and the result described for messages and
// `flowinfer inspect`. Model code only: this header includes LibTorch.
//
// Thread safety: pure functions.
#pragma once

#include <flowinfer/config.hpp>

#include <ATen/core/ivalue.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flowinfer {

// The selected tensor, [B, C, h, w] for an NHWC segmentation map. Throws ModelSettingError
// ("output" or "output_layout") when the selection does not fit the result: an index past a
// tuple's end, a key the dict lacks, an index into a dict, no tensor at all.
at::Tensor select_output(const std::string& model, const c10::IValue& result, const OutputSelector& selector,
                         OutputLayout layout);

// A tensor's sizes, for the torch-free shape checks (stages/output_shape).
std::vector<std::int64_t> tensor_shape(const at::Tensor& t);

// "Tensor [1, 2, 256, 256]", "tuple (Tensor [1, 5], Tensor [1, 2, 256, 256])",
// "dict {aux: Tensor [1, 1, 256, 256], seg: Tensor [1, 2, 256, 256]}".
std::string describe_output(const c10::IValue& result);

}  // namespace flowinfer
