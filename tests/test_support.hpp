// Helpers shared by the tests: scratch directories, reading outputs back through OpenSlide,
// running the CLI.
#pragma once

#include <boost/test/unit_test.hpp>

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>

#include <cstdint>
#include <map>
#include <memory>
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

// The demo model `kind` (with `param`) as a file in `dir`, written on first use.
std::string demo_model(const TempDir& dir, flowinfer::DemoModel kind, float param = 0.0f);

// Boost.Test preconditions for the "gpu"-labelled cases: with a CUDA GPU visible / without
// one. A case whose precondition fails is reported as skipped, with the reason.
boost::test_tools::assertion_result has_cuda_gpu(boost::unit_test::test_unit_id);
boost::test_tools::assertion_result has_no_cuda_gpu(boost::unit_test::test_unit_id);

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

// A config that runs the pointwise-mean demo model at `model_path` (mean 0, std 1, no
// activation: output = round(mean of R, G, B)) on `slides` into `output_dir`, 2 readers,
// 32 patches in flight, batches of 4, one LibTorch thread.
flowinfer::Config mean_config(const std::vector<std::string>& slides, const std::string& model_path,
                              const std::string& output_dir, int patch = 256, int overlap = 0);

// The geometry oracle, for a map made by the pointwise-mean demo model: every output pixel
// equals the mean of R, G, B of the slide's own pixels at the working resolution (`level`,
// read whole through OpenSlide, area-averaged by `shrink`), passed through `expect`, except
// the last row and column. `bad` counts pixels off by more than 3.
struct OracleStats {
    std::int64_t checked = 0, bad = 0;
    int worst = 0;
    double mean = 0;  // |diff|
};
inline double identity(double v) { return v; }
OracleStats mean_oracle(const std::string& slide, const std::string& output, int shrink, int level = 0,
                        double (*expect)(double) = identity);

struct CmdResult {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
};
CmdResult run_cmd(const std::string& cmd);

// A parsed JSON value (enough for summary.json and bench.json). parse_json() throws
// std::runtime_error on anything that is not one complete, valid JSON document.
struct Json {
    enum Type { null, boolean, number, string, array, object } type = null;
    bool b = false;
    double n = 0;
    std::string s;
    std::vector<Json> items;
    std::map<std::string, Json> fields;
    const Json& operator[](const std::string& key) const;  // throws if absent
    const Json& operator[](std::size_t i) const { return items.at(i); }
    bool has(const std::string& key) const { return fields.count(key) > 0; }
};
Json parse_json(const std::string& text);

// Every file under `dir` (recursively) whose name ends with `suffix`.
std::vector<std::string> files_ending_with(const std::string& dir, const std::string& suffix);

// A child process: argv[0] is run without a shell; its stdout and stderr are collected
// through a pipe (a file would be cut short by the limit below). With `file_size_limit` >= 0,
// RLIMIT_FSIZE is set in the child and SIGXFSZ ignored, so a write past the limit fails with
// EFBIG like a write to a full disk.
class Child {
public:
    explicit Child(const std::vector<std::string>& argv, std::int64_t file_size_limit = -1);
    ~Child();
    int pid() const { return pid_; }
    void signal(int sig) const;
    // Waits for the child to end; exit status (128 + signal when killed by one) and output.
    CmdResult wait();
    bool running();
    std::string output() const;  // stdout and stderr so far

private:
    struct Reader;
    int pid_ = -1;
    int status_ = -1;
    std::unique_ptr<Reader> reader_;
};

// Overwrites the stored bytes of tile (tx, ty) of TIFF directory `dir` with zeros: the
// decoder (JPEG, deflate) then fails on that tile, as on a slide with a corrupt tile.
void corrupt_tile(const std::string& tiff, int dir, int tx, int ty);

// Region masks and other test images: 8-bit grey (channels 1), RGB (3) or RGBA (4) PNG
// through libpng's simplified API; grey TIFF in one strip through libtiff.
void write_png_image(const std::string& path, const std::vector<std::uint8_t>& px, int w, int h, int channels = 1);
void write_gray_tiff(const std::string& path, const std::vector<std::uint8_t>& px, int w, int h);
// Test images for the image decoder: JPEG through libjpeg at `quality`, channels 1 (grey),
// 3 (RGB) or 4 (written as CMYK, for the refusal test); 16-bit grey (1) or RGB (3) PNG
// through libpng's simplified API (for the refusal test).
void write_jpeg_image(const std::string& path, const std::vector<std::uint8_t>& px, int w, int h, int channels = 3,
                      int quality = 95);
void write_png16_image(const std::string& path, const std::vector<std::uint16_t>& px, int w, int h, int channels = 1);
void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);
bool exists(const std::string& path);

}  // namespace fit
