#include "tests/test_support.hpp"

#include <openslide.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>

namespace fs = std::filesystem;

namespace fit {

TempDir::TempDir() {
    std::string templ = (fs::temp_directory_path() / "flowinfer-test-XXXXXX").string();
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
}

TempDir::~TempDir() {
    std::error_code ec;
    if (!std::getenv("FLOWINFER_KEEP_TEMP")) fs::remove_all(path_, ec);
}

std::string shared_slide(const std::string& name) {
    return std::string(FLOWINFER_SHARED_SLIDES) + "/" + name;
}

namespace {
struct Slide {
    openslide_t* osr;
    explicit Slide(const std::string& path) : osr(openslide_open(path.c_str())) {
        if (!osr) throw std::runtime_error("openslide cannot open " + path);
        if (const char* err = openslide_get_error(osr)) {
            std::string msg = err;
            openslide_close(osr);
            throw std::runtime_error("openslide: " + path + ": " + msg);
        }
    }
    ~Slide() { openslide_close(osr); }
};
}  // namespace

Image read_level(const std::string& path, int level) {
    Slide s(path);
    Image img;
    openslide_get_level_dimensions(s.osr, level, &img.width, &img.height);
    if (img.width <= 0) throw std::runtime_error("bad level");
    std::vector<std::uint32_t> argb(static_cast<std::size_t>(img.width * img.height));
    double ds = openslide_get_level_downsample(s.osr, level);
    (void)ds;
    openslide_read_region(s.osr, argb.data(), 0, 0, level, img.width, img.height);
    if (const char* err = openslide_get_error(s.osr)) throw std::runtime_error(err);
    img.rgb.resize(argb.size() * 3);
    for (std::size_t i = 0; i < argb.size(); ++i) {
        std::uint32_t p = argb[i];
        std::uint32_t a = p >> 24;
        for (int c = 0; c < 3; ++c) {
            std::uint32_t v = (p >> (16 - 8 * c)) & 0xff;  // premultiplied
            img.rgb[3 * i + c] = static_cast<std::uint8_t>(v + (255 - a));
        }
    }
    return img;
}

int level_count(const std::string& path) {
    Slide s(path);
    return openslide_get_level_count(s.osr);
}

double level_downsample(const std::string& path, int level) {
    Slide s(path);
    return openslide_get_level_downsample(s.osr, level);
}

std::string property(const std::string& path, const std::string& name) {
    Slide s(path);
    const char* v = openslide_get_property_value(s.osr, name.c_str());
    return v ? v : "";
}

CmdResult run_cmd(const std::string& cmd) {
    CmdResult r;
    std::string full = cmd + " 2>&1";
    FILE* p = popen(full.c_str(), "r");
    if (!p) throw std::runtime_error("popen failed");
    char buf[4096];
    std::size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
    int st = pclose(p);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
    if (!f) throw std::runtime_error("cannot write " + path);
}

std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

bool exists(const std::string& path) { return fs::exists(path); }

}  // namespace fit
