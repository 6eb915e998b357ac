#include "stages/object_writer.hpp"

#include "stages/atomic_file.hpp"
#include "stages/json.hpp"

#include <flowinfer/errors.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <unistd.h>

namespace flowinfer {

namespace {

// tab10, as the label-map palette uses, so a class keeps its colour across outputs.
constexpr std::uint8_t kPalette[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},   {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

std::uint64_t mix(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Shortest text that reads back as the same double; JSON has no NaN or infinity.
void append_json_number(std::string& out, double v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    fmt::format_to(std::back_inserter(out), "{}", v);
}

}  // namespace

void append_csv_field(std::string& out, const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) {
        out += s;
        return;
    }
    out += '"';
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

// Whole numbers (pixel coordinates, counts) as integers; others to 6 significant digits,
// but never rounding a large coordinate above the units (%.6g would write 1.23457e+06).
void append_csv_number(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
    } else if (std::isinf(v)) {
        out += v > 0 ? "Infinity" : "-Infinity";
    } else if (v == std::floor(v) && std::abs(v) < 1e15) {
        fmt::format_to(std::back_inserter(out), "{:.0f}", v);
    } else if (std::abs(v) >= 1e5) {
        fmt::format_to(std::back_inserter(out), "{:.1f}", v);
    } else {
        fmt::format_to(std::back_inserter(out), "{:.6g}", v);
    }
}

namespace {

std::string partial_of(const std::string& path) { return path.empty() ? path : path + ".partial"; }

}  // namespace

ObjectWriter::ObjectWriter(std::string geojson_path, std::string csv_path, std::string object_type,
                           std::vector<ClassInfo> classes, std::vector<std::string> csv_header)
    : geojson_path_(std::move(geojson_path)),
      csv_path_(std::move(csv_path)),
      geojson_partial_(partial_of(geojson_path_)),
      csv_partial_(partial_of(csv_path_)),
      object_type_(std::move(object_type)),
      classes_(std::move(classes)),
      csv_columns_(csv_header.size()) {
    const std::string& any_path = geojson_path_.empty() ? csv_path_ : geojson_path_;
    if (object_type_ != "detection" && object_type_ != "tile")
        throw OutputError(any_path, fmt::format("object type must be \"detection\" or \"tile\", "
                                                "got \"{}\"",
                                                object_type_));
    // Feature ids must differ across files too (QuPath merges imports), so each writer draws
    // its own random prefix; the per-file counter keeps them distinct within a file.
    std::random_device rd;
    const auto now = static_cast<std::uint64_t>(
        std::chrono::high_resolution_clock::now().time_since_epoch().count());
    id_seed_[0] = mix((static_cast<std::uint64_t>(rd()) << 32 | rd()) ^ now);
    id_seed_[1] = mix((static_cast<std::uint64_t>(rd()) << 32 | rd()) ^
                      reinterpret_cast<std::uintptr_t>(this));

    auto open = [&](const std::string& partial, const std::string& final_path) -> std::FILE* {
        if (partial.empty()) return nullptr;
        std::FILE* f = std::fopen(partial.c_str(), "wb");
        if (!f) {
            const int err = errno;
            discard();
            throw OutputError(final_path, fmt::format("cannot create {}: {}", partial, std::strerror(err)));
        }
        return f;
    };
    geojson_ = open(geojson_partial_, geojson_path_);
    csv_ = open(csv_partial_, csv_path_);

    if (geojson_) {
        buf_ = "{\"type\":\"FeatureCollection\",\"features\":[";
        write_buf(geojson_, geojson_path_);
    }
    if (csv_) {
        buf_.clear();
        for (std::size_t i = 0; i < csv_header.size(); ++i) {
            if (i) buf_ += ',';
            append_csv_field(buf_, csv_header[i]);
        }
        buf_ += '\n';
        write_buf(csv_, csv_path_);
    }
}

ObjectWriter::~ObjectWriter() {
    if (!finished_) discard();
}

void ObjectWriter::discard() noexcept {
    if (geojson_) std::fclose(geojson_);
    if (csv_) std::fclose(csv_);
    geojson_ = csv_ = nullptr;
    if (!geojson_partial_.empty()) std::remove(geojson_partial_.c_str());
    if (!csv_partial_.empty()) std::remove(csv_partial_.c_str());
}

void ObjectWriter::write_buf(std::FILE* f, const std::string& path) {
    if (std::fwrite(buf_.data(), 1, buf_.size(), f) != buf_.size()) fail(path, "write failed");
}

void ObjectWriter::fail(const std::string& path, const std::string& problem) {
    const std::string detail = errno ? fmt::format("{}: {}", problem, std::strerror(errno)) : problem;
    discard();
    finished_ = true;  // unusable from now on; nothing left to clean up
    throw OutputError(path, detail);
}

void ObjectWriter::write(double x1, double y1, double x2, double y2, int cls,
                         const std::vector<std::pair<std::string, double>>& measurements,
                         const std::vector<double>& csv_values) {
    if (finished_)
        throw OutputError(geojson_path_.empty() ? csv_path_ : geojson_path_,
                          "write after finish() or after a failed write");
    if (csv_ && csv_values.size() != csv_columns_)
        throw OutputError(csv_path_, fmt::format("a row has {} values but the header has {} columns",
                                                 csv_values.size(), csv_columns_));
    errno = 0;
    if (geojson_) {
        std::string name;
        std::uint8_t rgb[3];
        if (cls >= 0 && static_cast<std::size_t>(cls) < classes_.size()) {
            const ClassInfo& c = classes_[static_cast<std::size_t>(cls)];
            name = c.name;
            rgb[0] = c.r;
            rgb[1] = c.g;
            rgb[2] = c.b;
        } else {
            name = fmt::format("class {}", cls);
            const auto* p = kPalette[((cls % 10) + 10) % 10];
            std::memcpy(rgb, p, 3);
        }
        // uuid-v4 layout; the last 48 bits are the counter offset by the writer's random
        // prefix, a bijection, so ids never repeat within a file.
        const auto k = static_cast<std::uint64_t>(count_);
        const std::uint64_t hi = mix(id_seed_[0] ^ k);
        const std::uint64_t node = (id_seed_[1] + k) & 0xffffffffffffull;
        const std::uint64_t var = mix(id_seed_[1] ^ (k << 1));
        buf_.clear();
        buf_ += count_ > 0 ? ",\n" : "\n";
        fmt::format_to(std::back_inserter(buf_),
                       "{{\"type\":\"Feature\",\"id\":\"{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}\","
                       "\"geometry\":{{\"type\":\"Polygon\",\"coordinates\":[[",
                       hi >> 32, (hi >> 16) & 0xffff, hi & 0xfff, 0x8000 | (var & 0x3fff), node);
        const double pts[5][2] = {{x1, y1}, {x2, y1}, {x2, y2}, {x1, y2}, {x1, y1}};
        for (int i = 0; i < 5; ++i) {
            buf_ += i ? ",[" : "[";
            append_json_number(buf_, pts[i][0]);
            buf_ += ',';
            append_json_number(buf_, pts[i][1]);
            buf_ += ']';
        }
        buf_ += "]]},\"properties\":{\"objectType\":";
        buf_ += json_string(object_type_);
        buf_ += ",\"classification\":{\"name\":";
        buf_ += json_string(name);
        fmt::format_to(std::back_inserter(buf_), ",\"color\":[{},{},{}]}},\"measurements\":{{", rgb[0],
                       rgb[1], rgb[2]);
        for (std::size_t i = 0; i < measurements.size(); ++i) {
            if (i) buf_ += ',';
            buf_ += json_string(measurements[i].first);
            buf_ += ':';
            append_json_number(buf_, measurements[i].second);
        }
        buf_ += "}}}";
        write_buf(geojson_, geojson_path_);
    }
    if (csv_) {
        buf_.clear();
        for (std::size_t i = 0; i < csv_values.size(); ++i) {
            if (i) buf_ += ',';
            append_csv_number(buf_, csv_values[i]);
        }
        buf_ += '\n';
        write_buf(csv_, csv_path_);
    }
    ++count_;
}

void ObjectWriter::finish() {
    if (finished_)
        throw OutputError(geojson_path_.empty() ? csv_path_ : geojson_path_,
                          "finish() after finish() or after a failed write");
    errno = 0;
    if (geojson_) {
        static constexpr char kTail[] = "\n]}\n";
        if (std::fwrite(kTail, 1, sizeof kTail - 1, geojson_) != sizeof kTail - 1)
            fail(geojson_path_, "write failed");
    }
    // Sync and close both before renaming either: a flush, a sync or a close can still report
    // a failed write (full disk).
    const auto stored = [](std::FILE* f) {
        return !f || (std::fflush(f) == 0 && !std::ferror(f) && (::fsync(fileno(f)) == 0 || errno == EINVAL));
    };
    const bool geo_ok = stored(geojson_);
    const bool csv_ok = stored(csv_);
    if (!geo_ok) fail(geojson_path_, "write failed");
    if (!csv_ok) fail(csv_path_, "write failed");
    const int geo_close = geojson_ ? std::fclose(geojson_) : 0;
    geojson_ = nullptr;
    if (geo_close != 0) fail(geojson_path_, "close failed");
    const int csv_close = csv_ ? std::fclose(csv_) : 0;
    csv_ = nullptr;
    if (csv_close != 0) fail(csv_path_, "close failed");

    bool geo_renamed = false;
    try {
        if (!geojson_path_.empty()) commit_file(geojson_partial_, geojson_path_);
        geo_renamed = true;
        if (!csv_path_.empty()) commit_file(csv_partial_, csv_path_);
    } catch (const OutputError&) {
        // Keep the pair consistent: no GeoJSON under its final name without its CSV.
        if (geo_renamed && !geojson_path_.empty()) std::remove(geojson_path_.c_str());
        discard();
        finished_ = true;
        throw;
    }
    finished_ = true;
}

}  // namespace flowinfer
