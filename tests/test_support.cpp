#include "tests/test_support.hpp"

#include "stages/model.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <openslide.h>
#include <png.h>
#include <tiffio.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>  // after <cstdio>

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

boost::test_tools::assertion_result has_cuda_gpu(boost::unit_test::test_unit_id) {
    const int n = flowinfer::cuda_device_count();
    boost::test_tools::assertion_result r(n > 0);
    r.message() << (n > 0 ? std::to_string(n) + " CUDA GPU(s)" : std::string("no CUDA GPU visible (or a CPU-only build)"));
    return r;
}

boost::test_tools::assertion_result has_no_cuda_gpu(boost::unit_test::test_unit_id id) {
    boost::test_tools::assertion_result gpu = has_cuda_gpu(id);
    boost::test_tools::assertion_result r(!gpu.p_predicate_value);
    r.message() << "runs without a GPU only; here: " << gpu.message();
    return r;
}

std::string demo_model(const TempDir& dir, flowinfer::DemoModel kind, float param) {
    const std::string path = dir / ("model-" + std::to_string(int(kind)) + "-" + std::to_string(param) + ".pt");
    if (!std::filesystem::exists(path)) flowinfer::write_demo_model(path, kind, param);
    return path;
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

flowinfer::Config mean_config(const std::vector<std::string>& slides, const std::string& model_path,
                              const std::string& output_dir, int patch, int overlap) {
    flowinfer::Config c;
    c.source = "test";
    c.slides = slides;
    c.output_dir = output_dir;
    c.patch_size = patch;
    c.overlap = overlap;
    c.readers = 2;
    c.max_in_flight = 32;
    c.torch_threads = 1;
    flowinfer::ModelConfig m;
    m.name = "mean";
    m.path = model_path;
    m.batch_size = 4;
    m.mean = {0, 0, 0};
    m.std = {1, 1, 1};
    m.activation = flowinfer::Activation::none;
    c.models.push_back(m);
    return c;
}

OracleStats mean_oracle(const std::string& slide, const std::string& output, int shrink, int level,
                        double (*expect)(double)) {
    const Image src = fit::read_level(slide, level);
    const Image out = fit::read_level(output, 0);
    BOOST_TEST(out.width == src.width / shrink);
    BOOST_TEST(out.height == src.height / shrink);
    OracleStats st;
    double sum = 0;
    for (std::int64_t y = 0; y + 1 < out.height; ++y) {
        for (std::int64_t x = 0; x + 1 < out.width; ++x) {
            double acc = 0;
            for (int dy = 0; dy < shrink; ++dy)
                for (int dx = 0; dx < shrink; ++dx) {
                    const std::uint8_t* p = src.at(x * shrink + dx, y * shrink + dy);
                    acc += (p[0] + p[1] + p[2]) / 3.0;
                }
            const int want = int(std::lround(expect(acc / (shrink * shrink))));
            const int got = out.at(x, y)[0];
            st.worst = std::max(st.worst, std::abs(got - want));
            st.bad += std::abs(got - want) > 3;
            sum += std::abs(got - want);
            ++st.checked;
        }
    }
    st.mean = st.checked ? sum / st.checked : 0;
    BOOST_TEST_MESSAGE(fmt::format("{}: {} pixels, worst |diff| {}, mean {:.3f}, {} off by more than 3", output,
                                   st.checked, st.worst, st.mean, st.bad));
    BOOST_TEST(st.checked > 0);
    return st;
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

namespace fit {

namespace {

Json convert(const nlohmann::json& j) {
    Json v;
    switch (j.type()) {
        case nlohmann::json::value_t::null: v.type = Json::null; break;
        case nlohmann::json::value_t::boolean: v.type = Json::boolean, v.b = j.get<bool>(); break;
        case nlohmann::json::value_t::number_integer:
        case nlohmann::json::value_t::number_unsigned:
        case nlohmann::json::value_t::number_float: v.type = Json::number, v.n = j.get<double>(); break;
        case nlohmann::json::value_t::string: v.type = Json::string, v.s = j.get<std::string>(); break;
        case nlohmann::json::value_t::array:
            v.type = Json::array;
            for (const auto& e : j) v.items.push_back(convert(e));
            break;
        case nlohmann::json::value_t::object:
            v.type = Json::object;
            for (const auto& [k, e] : j.items()) v.fields.emplace(k, convert(e));
            break;
        default: throw std::runtime_error("JSON: unexpected value type");
    }
    return v;
}

}  // namespace

const Json& Json::operator[](const std::string& key) const {
    auto it = fields.find(key);
    if (it == fields.end()) throw std::runtime_error("JSON: no key '" + key + "'");
    return it->second;
}

// nlohmann's parser, strict: a file flowinfer writes must be one complete RFC 8259 document.
Json parse_json(const std::string& text) {
    try {
        return convert(nlohmann::json::parse(text));
    } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(std::string("JSON: ") + e.what());
    }
}

std::vector<std::string> files_ending_with(const std::string& dir, const std::string& suffix) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            out.push_back(it->path().string());
    }
    return out;
}

struct Child::Reader {
    int fd = -1;
    mutable std::mutex mu;
    std::string text;
    std::thread thread;
    explicit Reader(int read_fd) : fd(read_fd), thread([this] {
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            std::lock_guard<std::mutex> lock(mu);
            text.append(buf, static_cast<std::size_t>(n));
        }
    }) {}
    ~Reader() {
        if (thread.joinable()) thread.join();
        ::close(fd);
    }
};

Child::Child(const std::vector<std::string>& argv, std::int64_t file_size_limit) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        // Only async-signal-safe calls from here to exec.
        ::dup2(fds[1], 1);
        ::dup2(fds[1], 2);
        if (file_size_limit >= 0) {
            struct rlimit rl;
            rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(file_size_limit);
            ::setrlimit(RLIMIT_FSIZE, &rl);
            ::signal(SIGXFSZ, SIG_IGN);
        }
        ::signal(SIGINT, SIG_DFL);
        ::signal(SIGTERM, SIG_DFL);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    reader_ = std::make_unique<Reader>(fds[0]);
}

Child::~Child() {
    if (pid_ > 0 && status_ < 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
}

void Child::signal(int sig) const { ::kill(pid_, sig); }

bool Child::running() {
    if (status_ >= 0) return false;
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        status_ = st;
        return false;
    }
    return r == 0;
}

std::string Child::output() const {
    std::lock_guard<std::mutex> lock(reader_->mu);
    return reader_->text;
}

CmdResult Child::wait() {
    if (status_ < 0) {
        int st = 0;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {}
        status_ = st;
    }
    // The pipe ends when the child (and anything it started) has closed it.
    if (reader_->thread.joinable()) reader_->thread.join();
    CmdResult r;
    r.exit_code = WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
    r.output = output();
    return r;
}

}  // namespace fit

namespace fit {

void corrupt_tile(const std::string& path, int dir, int tx, int ty) {
    TIFF* t = TIFFOpen(path.c_str(), "r");
    if (!t) throw std::runtime_error("cannot open " + path);
    std::uint64_t offset = 0, bytes = 0;
    if (TIFFSetDirectory(t, static_cast<tdir_t>(dir))) {
        std::uint32_t tw = 0, th = 0, w = 0;
        TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
        TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
        const ttile_t index = TIFFComputeTile(t, static_cast<std::uint32_t>(tx) * tw, static_cast<std::uint32_t>(ty) * th, 0, 0);
        std::uint64_t* offsets = nullptr;
        std::uint64_t* counts = nullptr;
        if (tw && TIFFGetField(t, TIFFTAG_TILEOFFSETS, &offsets) && TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts) &&
            index < TIFFNumberOfTiles(t)) {
            offset = offsets[index];
            bytes = counts[index];
        }
    }
    TIFFClose(t);
    if (bytes == 0) throw std::runtime_error("no such tile in " + path);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    const std::string zeros(static_cast<std::size_t>(bytes), '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    if (!f) throw std::runtime_error("cannot corrupt a tile of " + path);
}

void write_png_image(const std::string& path, const std::vector<std::uint8_t>& px, int w, int h, int channels) {
    png_image img{};
    img.version = PNG_IMAGE_VERSION;
    img.width = static_cast<png_uint_32>(w);
    img.height = static_cast<png_uint_32>(h);
    img.format = channels == 4 ? PNG_FORMAT_RGBA : channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    BOOST_REQUIRE(static_cast<std::size_t>(w) * h * channels == px.size());
    BOOST_REQUIRE_MESSAGE(png_image_write_to_file(&img, path.c_str(), 0, px.data(), 0, nullptr), "cannot write " << path);
}

void write_gray_tiff(const std::string& path, const std::vector<std::uint8_t>& px, int w, int h) {
    TIFF* t = TIFFOpen(path.c_str(), "w");
    BOOST_REQUIRE_MESSAGE(t, "cannot write " << path);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, h);
    for (int j = 0; j < h; ++j)
        BOOST_REQUIRE(TIFFWriteScanline(t, const_cast<std::uint8_t*>(&px[std::size_t(j) * w]), j, 0) == 1);
    TIFFClose(t);
}

namespace {
// libjpeg's default error_exit calls exit(): jump back instead and fail the test.
struct JpegWriteError {
    jpeg_error_mgr pub;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};
void jpeg_write_fail(j_common_ptr cinfo) {
    auto* err = reinterpret_cast<JpegWriteError*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, err->message);
    std::longjmp(err->jump, 1);
}
// C-style between setjmp and the last libjpeg call: no destructor may be skipped by a jump.
bool jpeg_write(jpeg_compress_struct& c, JpegWriteError& err, std::FILE* f, const std::uint8_t* px, int w, int h,
                int channels, int quality) {
    c.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_write_fail;
    if (setjmp(err.jump)) return false;
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = static_cast<JDIMENSION>(w);
    c.image_height = static_cast<JDIMENSION>(h);
    c.input_components = channels;
    c.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = const_cast<std::uint8_t*>(px) + std::size_t(c.next_scanline) * w * channels;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    return true;
}
}  // namespace

void write_jpeg_image(const std::string& path, const std::vector<std::uint8_t>& px, int w, int h, int channels,
                      int quality) {
    BOOST_REQUIRE(channels == 1 || channels == 3 || channels == 4);
    BOOST_REQUIRE(static_cast<std::size_t>(w) * h * channels == px.size());
    std::FILE* f = std::fopen(path.c_str(), "wb");
    BOOST_REQUIRE_MESSAGE(f, "cannot write " << path);
    jpeg_compress_struct c{};
    JpegWriteError err{};
    const bool ok = jpeg_write(c, err, f, px.data(), w, h, channels, quality);
    jpeg_destroy_compress(&c);
    const bool closed = std::fclose(f) == 0;
    BOOST_REQUIRE_MESSAGE(ok, "libjpeg cannot write " << path << ": " << err.message);
    BOOST_REQUIRE_MESSAGE(closed, "cannot write " << path);
}

void write_png16_image(const std::string& path, const std::vector<std::uint16_t>& px, int w, int h, int channels) {
    png_image img{};
    img.version = PNG_IMAGE_VERSION;
    img.width = static_cast<png_uint_32>(w);
    img.height = static_cast<png_uint_32>(h);
    img.format = channels == 3 ? PNG_FORMAT_LINEAR_RGB : PNG_FORMAT_LINEAR_Y;  // 16-bit samples
    BOOST_REQUIRE(channels == 1 || channels == 3);
    BOOST_REQUIRE(static_cast<std::size_t>(w) * h * channels == px.size());
    BOOST_REQUIRE_MESSAGE(png_image_write_to_file(&img, path.c_str(), 0, px.data(), 0, nullptr), "cannot write " << path);
}

}  // namespace fit
