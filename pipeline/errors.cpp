#include <flowinfer/errors.hpp>

#include <fmt/format.h>

namespace flowinfer {

namespace {
std::string config_message(const std::string& file, const std::string& key, std::uint32_t line,
                           std::uint32_t column, const std::string& problem) {
    std::string where = file.empty() ? std::string("config") : file;
    if (line > 0) where += fmt::format(":{}:{}", line, column);
    if (key.empty()) return fmt::format("{}: {}", where, problem);
    return fmt::format("{}: key '{}': {}", where, key, problem);
}
}  // namespace

ConfigError::ConfigError(std::string file, std::string key, std::uint32_t line,
                         std::uint32_t column, const std::string& problem)
    : Error(config_message(file, key, line, column, problem)),
      file_(std::move(file)),
      key_(std::move(key)),
      line_(line),
      column_(column) {}

SlideError::SlideError(std::string slide, const std::string& problem) : SlideError("slide", std::move(slide), problem) {}

SlideError::SlideError(const char* noun, std::string slide, const std::string& problem)
    : Error(fmt::format("{} {}: {}", noun, slide, problem)), slide_(std::move(slide)) {}

ModelError::ModelError(std::string model, const std::string& problem)
    : Error(fmt::format("model '{}': {}", model, problem)), model_(std::move(model)) {}

OutputError::OutputError(std::string path, const std::string& problem)
    : Error(fmt::format("output {}: {}", path, problem)), path_(std::move(path)) {}

}  // namespace flowinfer
