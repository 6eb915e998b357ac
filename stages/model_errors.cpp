#include "stages/model_errors.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace flowinfer {

// Torch messages can carry long TorchScript tracebacks; for load errors the first line
// already says what is wrong with the file (TorchScript's own errors start with a newline).
std::string first_line(const std::string& text) {
    const std::size_t start = std::min(text.find_first_not_of(" \t\r\n"), text.size());
    std::string line = text.substr(start, text.find('\n', start) - start);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    return line;
}

// A file saved by a newer PyTorch can call an operator this LibTorch lacks (Debian's 1.13 has
// no aten::scaled_dot_product_attention, which every vision transformer of torch 2.x calls);
// TorchScript says so as "Unknown builtin op: aten::x." inside a traceback, and a user needs to
// hear which operator and what to do about it.
std::string load_error(const std::string& path, const std::string& raw, const std::string& torch_version) {
    static const std::string marker = "Unknown builtin op: ";
    const std::size_t at = raw.find(marker);
    if (at == std::string::npos)
        return fmt::format("cannot load TorchScript file '{}': {}", path, first_line(raw));
    std::string op = raw.substr(at + marker.size());
    op = op.substr(0, op.find_first_of(" \t\r\n"));
    while (!op.empty() && op.back() == '.') op.pop_back();
    return fmt::format("cannot load TorchScript file '{}': it calls operator {}, which this "
                       "LibTorch ({}) does not have; the file was saved by a newer PyTorch. "
                       "Run it with flowinfer built against a newer LibTorch, such as the one in "
                       "a PyPI torch wheel: scripts/torch-venv.sh BUILD_DIR (README, \"PyTorch 2.x "
                       "and CUDA\")",
                       path, op, torch_version);
}

namespace {

std::string trim_right(std::string text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    return text;
}

}  // namespace

// TorchScript interpreter errors put the model's own message on the last line, after the
// traceback; lead with it so one-line logs still show what the model raised.
std::string forward_message(const std::string& raw) {
    std::string text = trim_right(raw);
    const std::size_t newline = text.rfind('\n');
    if (newline == std::string::npos) return text;
    return text.substr(newline + 1) + "\n" + text;
}

std::pair<int, int> channel_mismatch(const std::string& message) {
    // The number that ends at `end`; 0 when there is none.
    const auto number_before = [&message](std::size_t end) {
        std::size_t start = end;
        while (start > 0 && std::isdigit(static_cast<unsigned char>(message[start - 1])) && end - start < 6) --start;
        return start < end ? std::stoi(message.substr(start, end - start)) : 0;
    };
    static const std::string wanted = " channels, but got ", given = " channels instead";
    const std::size_t w = message.find(wanted);
    if (w == std::string::npos) return {0, 0};
    const std::size_t g = message.find(given, w + wanted.size());
    if (g == std::string::npos || message.rfind("to have ", w) == std::string::npos) return {0, 0};
    const int want = number_before(w), have = number_before(g);
    return want > 0 && have > 0 ? std::pair<int, int>{want, have} : std::pair<int, int>{0, 0};
}

}  // namespace flowinfer
