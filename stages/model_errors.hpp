// The messages of model errors, made from LibTorch's: its TorchScript errors carry tracebacks
// and put what matters on their first or last line. Torch-free, so the rules are testable and
// cheap to compile.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <utility>

namespace flowinfer {

// The first non-blank line of `text`, trailing blanks removed.
std::string first_line(const std::string& text);

// The message for a TorchScript file that `torch::jit::load` refused with `raw`: its first
// line, or, for an operator this LibTorch (`torch_version`) lacks, which one and what to do.
std::string load_error(const std::string& path, const std::string& raw, const std::string& torch_version);

// A forward() failure: the model's own message (the last line) first, then the whole text.
std::string forward_message(const std::string& raw);

// A convolution's complaint about the input's channels ("expected input[1, 3, 256, 256] to
// have 1 channels, but got 3 channels instead"): {wanted, given}, else {0, 0}.
std::pair<int, int> channel_mismatch(const std::string& message);

}  // namespace flowinfer
