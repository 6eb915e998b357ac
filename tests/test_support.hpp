// Helpers shared by the tests: scratch directories, reading outputs back through OpenSlide,
// running the CLI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fit {

// A fresh directory under the build tree's temp area, removed on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

std::string shared_slide(const std::string& name);  // ../shared/slides/<name>

struct Image {
    std::int64_t width = 0, height = 0;
    std::vector<std::uint8_t> rgb;  // width*height*3
    const std::uint8_t* at(std::int64_t x, std::int64_t y) const { return &rgb[3 * (y * width + x)]; }
};

// Reads a whole level through OpenSlide (ARGB un-premultiplied onto white), throws on error.
Image read_level(const std::string& slide, int level);
int level_count(const std::string& slide);
double level_downsample(const std::string& slide, int level);
std::string property(const std::string& slide, const std::string& name);  // "" if absent

struct CmdResult {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
};
CmdResult run_cmd(const std::string& cmd);

void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);
bool exists(const std::string& path);

}  // namespace fit
