// JSON for the files flowinfer writes: string quoting shared by summary.json, bench.json, the
// GeoJSON writer and the resume records, and a small reader for the resume records.
//
// Thread safety: pure functions; a JsonValue is a plain value.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flowinfer {

// Appends `s` as a JSON string literal (quotes, escapes; UTF-8 passes through unchanged).
void append_json_string(std::string& out, const std::string& s);

inline std::string json_string(const std::string& s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

// A parsed JSON value. Numbers keep the text they were written with, so 64-bit integers (file
// sizes, nanosecond times) come back exactly instead of through a double.
struct JsonValue {
    enum class Type { null, boolean, number, string, array, object };
    Type type = Type::null;
    bool boolean = false;
    std::string text;  // string: its value (unescaped); number: as written
    std::vector<JsonValue> items;
    std::vector<std::pair<std::string, JsonValue>> fields;  // in document order

    // The member `key` of an object; nullptr when absent or when this is not an object.
    const JsonValue* find(std::string_view key) const;
};

// One complete JSON document, or std::nullopt for anything else (truncated, trailing text,
// nesting deeper than 64). Strings must be valid JSON; \u escapes are decoded to UTF-8.
std::optional<JsonValue> parse_json(std::string_view text);

}  // namespace flowinfer
