// JSON for the files flowinfer writes (summary.json, bench.json, the resume records) and the
// one it reads back (the resume records): nlohmann::json. ordered_json keeps members in the
// order they are set, so the files read top to bottom like the structures they describe. A
// double that is not finite is written as null (JSON has neither NaN nor infinity).
//
// Thread safety: pure functions.
#pragma once

#include <flowinfer/pipeline.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace flowinfer {

using Json = nlohmann::ordered_json;

// A document as written to disk: two-space indent, a final newline. Bytes that are not UTF-8
// (a slide path is whatever bytes the file system holds) become U+FFFD instead of throwing:
// the rest of the file is still worth having.
inline std::string json_text(const Json& j) {
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// A string as a JSON literal, for text that is not a document: the GeoJSON feature stream
// (object_writer.cpp writes features one at a time) and the resume settings text.
inline std::string json_string(const std::string& s) {
    return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// An output's kind-specific members, the same in summary.json and the resume records: a map's
// size and downsample, an object file's count, a features file's rows and dimension.
inline void add_output_details(Json& j, const OutputInfo& o) {
    if (o.format == "tiff") {
        j["width"] = o.width;
        j["height"] = o.height;
        j["downsample"] = o.downsample;
    }
    if (o.objects >= 0) j["objects"] = o.objects;
    if (o.format == "hdf5") {
        j["rows"] = o.rows;
        j["dim"] = o.dim;
    }
}

}  // namespace flowinfer
