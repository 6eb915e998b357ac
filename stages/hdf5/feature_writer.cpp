#include "stages/hdf5/feature_writer.hpp"

#include "stages/atomic_file.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>
#include <hdf5.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

namespace flowinfer::hdf5 {

namespace {

// A chunk of about this many bytes of features: large enough for sequential I/O, small enough
// that one per open file is nothing next to the batches in flight.
constexpr std::int64_t kChunkBytes = 1 << 20;
constexpr std::int64_t kMaxChunkRows = 16384;
constexpr std::int64_t kMaxRowBytes = std::int64_t{1} << 30;

// Owns one HDF5 identifier (file, dataset, dataspace, type, property list).
class Id {
public:
    using Close = herr_t (*)(hid_t);
    Id() = default;
    Id(hid_t id, Close close) : id_(id), close_(close) {}
    Id(Id&& o) noexcept : id_(std::exchange(o.id_, -1)), close_(o.close_) {}
    Id& operator=(Id&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = std::exchange(o.id_, -1);
            close_ = o.close_;
        }
        return *this;
    }
    ~Id() { reset(); }
    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }
    // Closing a file flushes it: that is where a full disk can show, so say how it went.
    bool close() {
        return id_ < 0 || close_(std::exchange(id_, -1)) >= 0;
    }
    void reset() { close(); }

private:
    hid_t id_ = -1;
    Close close_ = nullptr;
};

// HDF5 prints its error stack to stderr unless told otherwise, per thread (the thread-safe
// build keeps one stack per thread); flowinfer reports errors itself.
//
// A file whose last writes failed (a full disk) cannot be closed: H5Fclose flushes, fails,
// and leaves the file in HDF5's table, and the library's exit handler then closes it again
// and crashes (HDF5 1.10.8, seen on EFBIG). Such a file is abandoned instead (its .partial is
// unlinked), and the exit handler is not installed: the process's end releases everything.
// H5dont_atexit only works before the library's first call in the process.
void quiet() {
    static const bool no_atexit = [] { return H5dont_atexit() >= 0; }();
    (void)no_atexit;
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

// The reason at the bottom of the current HDF5 error stack: the system's message where a
// file operation failed ("error message = 'File too large'" inside the description), else
// the innermost description.
std::string hdf5_reason() {
    std::vector<std::string> descs;
    H5Ewalk2(
        H5E_DEFAULT, H5E_WALK_DOWNWARD,
        [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
            if (e->desc) static_cast<std::vector<std::string>*>(data)->emplace_back(e->desc);
            return 0;
        },
        &descs);
    H5Eclear2(H5E_DEFAULT);
    static const std::string marker = "error message = '";
    for (const std::string& d : descs) {
        const std::size_t at = d.find(marker);
        if (at != std::string::npos) {
            const std::size_t start = at + marker.size();
            return d.substr(start, d.find('\'', start) - start);
        }
    }
    return descs.empty() ? "unknown HDF5 error" : descs.back();
}

// Rows per chunk: about kChunkBytes of features, a power of two, 1 .. kMaxChunkRows.
std::int64_t chunk_rows_for(std::int64_t row_bytes) {
    std::int64_t rows = 1;
    while (rows * 2 <= kMaxChunkRows && rows * 2 * row_bytes <= kChunkBytes) rows *= 2;
    return rows;
}

// IEEE binary16 as an HDF5 type: what h5py writes for numpy float16, and reads back as it.
Id half_type() {
    Id t(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
    if (!t.valid() || H5Tset_fields(t.get(), 15, 10, 5, 0, 10) < 0 || H5Tset_size(t.get(), 2) < 0 ||
        H5Tset_ebias(t.get(), 15) < 0)
        return Id();
    return t;
}

}  // namespace

std::uint16_t float_to_half(float f) {
    std::uint32_t x = 0;
    std::memcpy(&x, &f, sizeof x);
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const std::uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
    if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 (and inf): inf
    if (a < 0x33000000u) return sign;  // below 2^-25: zero (2^-25 itself ties to even, zero, below)
    std::uint32_t h = 0, rest = 0, half_way = 0;
    if (a < 0x38800000u) {  // below 2^-14: a subnormal half, units of 2^-24
        const std::uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126u - (a >> 23);  // 14 .. 24
        h = mant >> shift;
        rest = mant & ((1u << shift) - 1u);
        half_way = 1u << (shift - 1u);
    } else {  // normal: rebias the exponent (127 - 15), keep 10 of 23 mantissa bits
        h = (a >> 13) - (112u << 10);
        rest = a & 0x1fffu;
        half_way = 0x1000u;
    }
    if (rest > half_way || (rest == half_way && (h & 1u))) ++h;  // a carry into the exponent is right
    return static_cast<std::uint16_t>(sign | h);
}

struct FeatureWriter::Impl {
    std::string path, partial;
    std::int64_t dim = 0;
    EmbeddingDtype dtype = EmbeddingDtype::float32;
    std::int64_t chunk = 1;
    std::int64_t written = 0;  // rows in the datasets
    std::int64_t held = 0;     // rows in the buffers
    bool finished = false;
    Id file, features, coords, half;
    std::vector<float> f32;            // chunk x dim
    std::vector<std::uint16_t> f16;    // chunk x dim
    std::vector<std::int64_t> xy;      // chunk x 2

    [[noreturn]] void fail(const std::string& what) const {
        throw OutputError(path, fmt::format("{}: {}", what, hdf5_reason()));
    }

    Id create_dataset(const char* name, hid_t type, std::int64_t cols) {
        const hsize_t dims[2] = {0, static_cast<hsize_t>(cols)};
        const hsize_t max[2] = {H5S_UNLIMITED, static_cast<hsize_t>(cols)};
        const hsize_t chunk_dims[2] = {static_cast<hsize_t>(chunk), static_cast<hsize_t>(cols)};
        Id space(H5Screate_simple(2, dims, max), H5Sclose);
        Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
        // Chunks are written whole, once: the chunk cache would only copy them.
        Id dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
        if (!space.valid() || !dcpl.valid() || !dapl.valid() || H5Pset_chunk(dcpl.get(), 2, chunk_dims) < 0 ||
            H5Pset_obj_track_times(dcpl.get(), false) < 0 || H5Pset_chunk_cache(dapl.get(), 0, 0, 1.0) < 0)
            fail(fmt::format("cannot set up dataset '{}'", name));
        Id d(H5Dcreate2(file.get(), name, type, space.get(), H5P_DEFAULT, dcpl.get(), dapl.get()), H5Dclose);
        if (!d.valid()) fail(fmt::format("cannot create dataset '{}' in {}", name, partial));
        return d;
    }

    void attribute(hid_t obj, const char* name, hid_t type, const void* value) {
        Id space(H5Screate(H5S_SCALAR), H5Sclose);
        Id a(space.valid() ? H5Acreate2(obj, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT) : -1, H5Aclose);
        if (!a.valid() || H5Awrite(a.get(), type, value) < 0) fail(fmt::format("cannot write attribute '{}'", name));
    }
    void attribute(hid_t obj, const char* name, std::int64_t v) { attribute(obj, name, H5T_STD_I64LE, &v); }
    void attribute(hid_t obj, const char* name, double v) { attribute(obj, name, H5T_IEEE_F64LE, &v); }
    // A whole magnification as an integer, as TRIDENT writes 20 or 40.
    void magnification(hid_t obj, const char* name, double v) {
        if (v == std::round(v) && std::abs(v) < 1e15) attribute(obj, name, static_cast<std::int64_t>(v));
        else attribute(obj, name, v);
    }
    // Variable-length UTF-8: h5py reads it as str, as it writes Python strings.
    void attribute(hid_t obj, const char* name, const std::string& v) {
        Id type(H5Tcopy(H5T_C_S1), H5Tclose);
        if (!type.valid() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 || H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
            fail(fmt::format("cannot write attribute '{}'", name));
        const char* p = v.c_str();
        attribute(obj, name, type.get(), &p);
    }

    void write_attributes(const CoordsAttributes& a) {
        const hid_t c = coords.get();
        attribute(c, "patch_size", a.patch_size);
        attribute(c, "patch_size_level0", a.patch_size_level0);
        magnification(c, "level0_magnification", a.level0_magnification);
        magnification(c, "target_magnification", a.target_magnification);
        attribute(c, "overlap", a.overlap);
        attribute(c, "level0_width", a.level0_width);
        attribute(c, "level0_height", a.level0_height);
        attribute(c, "name", a.name);
        attribute(c, "mpp", a.mpp);
        attribute(c, "level", a.level);
        attribute(c, "downsample", a.downsample);
        attribute(c, "model", a.model);
        attribute(c, "model_sha256", a.model_sha256);
        attribute(c, "flowinfer_version", a.flowinfer_version);
        attribute(features.get(), "name", a.name);
        attribute(features.get(), "model", a.model);
    }

    // The buffered rows as the next rows of both datasets.
    void flush() {
        if (held == 0) return;
        const hsize_t total[2] = {static_cast<hsize_t>(written + held), static_cast<hsize_t>(dim)};
        const hsize_t total_xy[2] = {total[0], 2};
        const hsize_t start[2] = {static_cast<hsize_t>(written), 0};
        const hsize_t count[2] = {static_cast<hsize_t>(held), static_cast<hsize_t>(dim)};
        const hsize_t count_xy[2] = {count[0], 2};
        // fail() reads HDF5's error stack at once: the next API call (closing a dataspace)
        // would clear it.
        const auto write = [&](Id& d, const char* name, const hsize_t* size, const hsize_t* n, hid_t mem_type,
                               const void* data) {
            Id file_space(H5Dset_extent(d.get(), size) >= 0 ? H5Dget_space(d.get()) : -1, H5Sclose);
            Id mem_space(file_space.valid() ? H5Screate_simple(2, n, nullptr) : -1, H5Sclose);
            if (!mem_space.valid() ||
                H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, n, nullptr) < 0 ||
                H5Dwrite(d.get(), mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data) < 0)
                fail(fmt::format("cannot write {} rows {}..{} to {}", name, written, written + held, partial));
        };
        if (dtype == EmbeddingDtype::float16) write(features, "features", total, count, half.get(), f16.data());
        else write(features, "features", total, count, H5T_NATIVE_FLOAT, f32.data());
        write(coords, "coords", total_xy, count_xy, H5T_NATIVE_INT64, xy.data());
        written += held;
        held = 0;
    }

    void discard() noexcept {
        quiet();
        features.reset();
        coords.reset();
        file.reset();
        if (!partial.empty()) ::unlink(partial.c_str());
    }
};

FeatureWriter::FeatureWriter(std::string path, std::int64_t dim, EmbeddingDtype dtype, const CoordsAttributes& attrs,
                             std::int64_t max_rows)
    : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.path = std::move(path);
    m.partial = partial_path(m.path);
    m.dim = dim;
    m.dtype = dtype;
    const std::int64_t elem = dtype == EmbeddingDtype::float16 ? 2 : 4;
    if (dim < 1 || dim > kMaxRowBytes / elem)
        throw OutputError(m.path, fmt::format("cannot write {} features per row (1 .. {} for {})", dim,
                                              kMaxRowBytes / elem, to_string(dtype)));
    m.chunk = chunk_rows_for(dim * elem);
    if (max_rows > 0) m.chunk = std::min(m.chunk, max_rows);
    quiet();
    try {
        if (dtype == EmbeddingDtype::float16) {
            m.half = half_type();
            if (!m.half.valid()) m.fail("cannot make the float16 type");
            m.f16.resize(static_cast<std::size_t>(m.chunk * dim));
        } else {
            m.f32.resize(static_cast<std::size_t>(m.chunk * dim));
        }
        m.xy.resize(static_cast<std::size_t>(m.chunk * 2));
        m.file = Id(H5Fcreate(m.partial.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
        if (!m.file.valid()) m.fail(fmt::format("cannot create {}", m.partial));
        m.features = m.create_dataset("features", dtype == EmbeddingDtype::float16 ? m.half.get() : H5T_IEEE_F32LE, dim);
        m.coords = m.create_dataset("coords", H5T_STD_I64LE, 2);
        m.write_attributes(attrs);
    } catch (...) {
        m.discard();
        throw;
    }
}

FeatureWriter::~FeatureWriter() {
    if (!impl_->finished) impl_->discard();
}

void FeatureWriter::append(const std::int64_t* xy, const float* features, std::size_t rows) {
    Impl& m = *impl_;
    if (m.finished) throw OutputError(m.path, "append after finish");
    quiet();
    for (std::size_t i = 0; i < rows; ++i) {
        const std::size_t at = static_cast<std::size_t>(m.held);
        const float* row = features + i * static_cast<std::size_t>(m.dim);
        if (m.dtype == EmbeddingDtype::float16)
            std::transform(row, row + m.dim, m.f16.begin() + static_cast<std::ptrdiff_t>(at * m.dim), float_to_half);
        else
            std::copy(row, row + m.dim, m.f32.begin() + static_cast<std::ptrdiff_t>(at * m.dim));
        m.xy[2 * at] = xy[2 * i];
        m.xy[2 * at + 1] = xy[2 * i + 1];
        if (++m.held == m.chunk) m.flush();
    }
}

void FeatureWriter::finish() {
    Impl& m = *impl_;
    if (m.finished) return;
    quiet();
    m.flush();
    // Closing the file writes what HDF5 still caches (the chunk index, object headers).
    for (Id* id : {&m.features, &m.coords, &m.file})
        if (!id->close()) m.fail(fmt::format("cannot finish {}", m.partial));
    sync_and_commit(m.partial, m.path);
    m.finished = true;
}

const std::string& FeatureWriter::path() const { return impl_->path; }
std::int64_t FeatureWriter::rows() const { return impl_->written + impl_->held; }
std::int64_t FeatureWriter::chunk_rows() const { return impl_->chunk; }

}  // namespace flowinfer::hdf5
