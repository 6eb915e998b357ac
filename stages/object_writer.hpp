// Streaming writer of detected objects (or classified tiles) as GeoJSON and CSV, in the
// conventions QuPath 0.4+ imports: a FeatureCollection of rectangle Polygon features in
// level-0 pixels, each with properties.objectType, properties.classification
// {"name", "color": [r, g, b]} and properties.measurements as a {name: value} object.
//
// Thread safety: one writer per pair of files; its methods must not be called concurrently
// (the graph's write node is serial). Distinct writers are independent.
//
// Features and rows are written as they come (nothing is collected in memory), to
// "<path>.partial" files. finish() syncs both to disk and renames them to their final names
// only once both are complete (see atomic_file.hpp), so a failed or cancelled slide, a full
// disk or a crash never leaves a truncated file under a final name;
// a writer destroyed without finish() removes its partial files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace flowinfer {

struct ClassInfo {
    std::string name;
    std::uint8_t r = 0, g = 0, b = 0;
};

// CSV fields as the writer spells them: a text field quoted when it must be (RFC 4180); a
// number whole when it is, else to 6 significant digits (large coordinates to 0.1).
void append_csv_field(std::string& out, const std::string& s);
void append_csv_number(std::string& out, double v);

class ObjectWriter {
public:
    // object_type: "detection" or "tile" (QuPath's objectType). An empty path skips that
    // file. Throws OutputError (cannot create a file, unknown object type).
    ObjectWriter(std::string geojson_path, std::string csv_path, std::string object_type,
                 std::vector<ClassInfo> classes, std::vector<std::string> csv_header);
    ~ObjectWriter();
    ObjectWriter(const ObjectWriter&) = delete;
    ObjectWriter& operator=(const ObjectWriter&) = delete;

    // One rectangle feature and one CSV row. A class index outside `classes` is named
    // "class <i>" with a colour from a fixed palette (tab10). Non-finite measurements are
    // written as null (JSON has no NaN) and as NaN in the CSV. csv_values must have one value
    // per header column. Throws OutputError (write failure, wrong number of CSV values,
    // called after finish()).
    void write(double x1, double y1, double x2, double y2, int cls,
               const std::vector<std::pair<std::string, double>>& measurements,
               const std::vector<double>& csv_values);

    // Completes both files and renames them to their final paths. Throws OutputError.
    void finish();

    std::int64_t count() const { return count_; }

private:
    void fail(const std::string& path, const std::string& problem);
    void write_buf(std::FILE* f, const std::string& path);  // buf_ to f, or fail(path)
    void discard() noexcept;

    std::string geojson_path_, csv_path_;
    std::string geojson_partial_, csv_partial_;
    std::string object_type_;
    std::vector<ClassInfo> classes_;
    std::size_t csv_columns_ = 0;
    std::FILE* geojson_ = nullptr;
    std::FILE* csv_ = nullptr;
    std::int64_t count_ = 0;
    std::uint64_t id_seed_[2] = {0, 0};
    bool finished_ = false;
    std::string buf_;  // one feature or row at a time
};

}  // namespace flowinfer
