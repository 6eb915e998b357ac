// What the embedding tests share: a features file read with HDF5's C API (independently of
// flowinfer's writer), a fixture running the mean-colour encoder, and a config file for the CLI.
#pragma once

#include "tests/test_support.hpp"

#include <flowinfer/config.hpp>
#include <flowinfer/demo.hpp>
#include <flowinfer/pipeline.hpp>

#include <fmt/format.h>
#include <hdf5.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fit {

using namespace flowinfer;

// A features file opened with HDF5's C API.
class H5File {
public:
    explicit H5File(const std::string& path) : file_(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)) {
        BOOST_REQUIRE_MESSAGE(file_ >= 0, "cannot open " << path);
    }
    ~H5File() { H5Fclose(file_); }
    std::vector<hsize_t> shape(const char* name) const {
        const hid_t d = H5Dopen2(file_, name, H5P_DEFAULT), s = H5Dget_space(d);
        std::vector<hsize_t> dims(static_cast<std::size_t>(H5Sget_simple_extent_ndims(s)));
        H5Sget_simple_extent_dims(s, dims.data(), nullptr);
        H5Sclose(s);
        H5Dclose(d);
        return dims;
    }
    // The stored element type: its class and size in bytes.
    std::pair<H5T_class_t, std::size_t> type(const char* name) const {
        const hid_t d = H5Dopen2(file_, name, H5P_DEFAULT), t = H5Dget_type(d);
        const auto out = std::make_pair(H5Tget_class(t), H5Tget_size(t));
        H5Tclose(t);
        H5Dclose(d);
        return out;
    }
    // HDF5 converts float16 to float itself: an independent decoder of flowinfer's halves.
    std::vector<float> floats(const char* name) const { return read<float>(name, H5T_NATIVE_FLOAT); }
    std::vector<std::int64_t> ints(const char* name) const { return read<std::int64_t>(name, H5T_NATIVE_INT64); }
    double number(const char* obj, const char* name) const {
        double v = -1;
        with_attr(obj, name, [&](hid_t a) { H5Aread(a, H5T_NATIVE_DOUBLE, &v); });
        return v;
    }
    std::string text(const char* obj, const char* name) const {
        std::string v;
        with_attr(obj, name, [&](hid_t a) {
            const hid_t t = H5Aget_type(a);
            BOOST_TEST(H5Tis_variable_str(t) > 0, name);
            char* p = nullptr;
            H5Aread(a, t, &p);
            if (p) v = p;
            H5free_memory(p);
            H5Tclose(t);
        });
        return v;
    }
    H5T_class_t attr_class(const char* obj, const char* name) const {
        H5T_class_t c = H5T_NO_CLASS;
        with_attr(obj, name, [&](hid_t a) {
            const hid_t t = H5Aget_type(a);
            c = H5Tget_class(t);
            H5Tclose(t);
        });
        return c;
    }

private:
    template <class T>
    std::vector<T> read(const char* name, hid_t type) const {
        std::size_t n = 1;
        for (hsize_t d : shape(name)) n *= d;
        std::vector<T> v(n);
        const hid_t d = H5Dopen2(file_, name, H5P_DEFAULT);
        BOOST_REQUIRE(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
        H5Dclose(d);
        return v;
    }
    template <class F>
    void with_attr(const char* obj, const char* name, F&& f) const {
        const hid_t d = H5Dopen2(file_, obj, H5P_DEFAULT);
        const hid_t a = H5Aopen(d, name, H5P_DEFAULT);
        BOOST_REQUIRE_MESSAGE(a >= 0, obj << " has no attribute " << name);
        f(a);
        H5Aclose(a);
        H5Dclose(d);
    }
    hid_t file_;
};

struct EmbeddingFixture {
    fit::TempDir dir;
    std::string model(DemoModel kind, float param = 0.0f) { return demo_model(dir, kind, param); }
    // The mean-colour encoder with mean 0, std 1: feature j = mean of channel j % 3 / 255.
    Config config(const std::vector<std::string>& slides, int patch = 224, int overlap = 0, int dim = 3) {
        Config c = mean_config(slides, model(DemoModel::mean_features, static_cast<float>(dim)), dir / "out",
                                    patch, overlap);
        c.models[0].task = Task::embedding;
        return c;
    }
    std::string synthetic(const std::string& name, std::int64_t w, std::int64_t h) {
        SyntheticSlideSpec spec;
        spec.width = w;
        spec.height = h;
        spec.jpeg_quality = 0;
        write_synthetic_slide(dir / name, spec);
        return dir / name;
    }
    // A config file for the CLI.
    std::string config_file(const std::string& slides, const std::string& model_path, int patch, int overlap,
                            const std::string& extra = "") {
        const std::string path = dir / "embed.toml";
        write_text(path, fmt::format(R"([input]
slides = [{}]
[output]
dir = "{}"
[tiling]
patch_size = {}
overlap = {}
[runtime]
readers = 2
max_in_flight = 64
[[models]]
name = "mean"
path = "{}"
task = "embedding"
batch_size = 16
mean = [0, 0, 0]
std = [1, 1, 1]
{})",
                                          slides, dir / "out", patch, overlap, model_path, extra));
        return path;
    }
};

inline OutputInfo h5_output(const SlideResult& r, const std::string& model = "mean") {
    BOOST_REQUIRE_MESSAGE(r.ok(), r.error);
    for (const OutputInfo& o : r.outputs)
        if (o.model == model && o.format == "hdf5") return o;
    BOOST_FAIL("no hdf5 output for " << model);
    throw std::logic_error("unreachable");
}

inline std::string read_bytes(const std::string& path) { return read_text(path); }

}  // namespace fit
