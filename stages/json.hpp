// JSON string quoting shared by summary.json, bench.json and the GeoJSON writer.
//
// Thread safety: pure functions.
#pragma once

#include <string>

namespace flowinfer {

// Appends `s` as a JSON string literal (quotes, escapes; UTF-8 passes through unchanged).
void append_json_string(std::string& out, const std::string& s);

inline std::string json_string(const std::string& s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

}  // namespace flowinfer
