// flowinfer error types.
//
// Thread safety: error objects are immutable after construction and may be copied or
// rethrown from any thread (TBB rethrows a node's exception on the thread that waits).
//
// Every error owns its full message (what()) and keeps the context it was raised with as
// separate fields, so a caller can report "which slide / which key" without parsing text.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace flowinfer {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A configuration problem: bad TOML, unknown key, wrong type, impossible value.
// line/column are 1-based positions in `file`; 0 when the key came from a --set override
// or is missing altogether.
class ConfigError : public Error {
public:
    ConfigError(std::string file, std::string key, std::uint32_t line, std::uint32_t column,
                const std::string& problem);

    const std::string& file() const noexcept { return file_; }
    const std::string& key() const noexcept { return key_; }
    std::uint32_t line() const noexcept { return line_; }
    std::uint32_t column() const noexcept { return column_; }

private:
    std::string file_;
    std::string key_;
    std::uint32_t line_;
    std::uint32_t column_;
};

// A problem with one slide (cannot open, no MPP, corrupt tile). Fails that slide only.
class SlideError : public Error {
public:
    SlideError(std::string slide, const std::string& problem);
    const std::string& slide() const noexcept { return slide_; }

protected:
    // what() is "<noun> <path>: <problem>".
    SlideError(const char* noun, std::string slide, const std::string& problem);

private:
    std::string slide_;
};

// A problem with one image of input.images (unreadable, truncated, CMYK, 16-bit, ...): a
// SlideError whose message says "image". Fails that image only.
class ImageError : public SlideError {
public:
    ImageError(std::string image, const std::string& problem) : SlideError("image", std::move(image), problem) {}
};

// A problem with a model file or a model's behaviour (load failure, wrong output rank,
// an exception thrown by the model's forward). Cancels the whole run: a broken model would
// fail every slide the same way.
class ModelError : public Error {
public:
    ModelError(std::string model, const std::string& problem);
    const std::string& model() const noexcept { return model_; }

private:
    std::string model_;
};

// A problem writing an output file.
class OutputError : public Error {
public:
    OutputError(std::string path, const std::string& problem);
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
};

}  // namespace flowinfer
