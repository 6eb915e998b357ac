#include "stages/json.hpp"

#include <fmt/format.h>

#include <cstdint>

namespace flowinfer {

void append_json_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) out += fmt::format("\\u{:04x}", c);
                else out += static_cast<char>(c);
        }
    }
    out += '"';
}

const JsonValue* JsonValue::find(std::string_view key) const {
    if (type != Type::object) return nullptr;
    for (const auto& [k, v] : fields)
        if (k == key) return &v;
    return nullptr;
}

namespace {

// Recursive descent; `ok` turns false at the first error and every caller then unwinds. The
// depth bound keeps a hostile file from exhausting the stack.
struct Reader {
    std::string_view s;
    std::size_t i = 0;
    bool ok = true;
    int depth = 0;

    bool fail() { return ok = false; }
    void ws() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
    }
    bool eat(char c) {
        ws();
        if (i < s.size() && s[i] == c) return ++i, true;
        return false;
    }
    bool word(std::string_view w) {
        if (s.substr(i, w.size()) != w) return fail();
        i += w.size();
        return true;
    }
    static void utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }
    bool hex4(std::uint32_t& v) {
        if (i + 4 > s.size()) return fail();
        v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s[i++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
            else return fail();
        }
        return true;
    }
    bool string(std::string& out) {
        if (!eat('"')) return fail();
        while (i < s.size()) {
            const unsigned char c = static_cast<unsigned char>(s[i++]);
            if (c == '"') return true;
            if (c < 0x20) return fail();
            if (c != '\\') {
                out += static_cast<char>(c);
                continue;
            }
            if (i >= s.size()) return fail();
            switch (s[i++]) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    std::uint32_t cp = 0;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
                        std::uint32_t lo = 0;
                        if (s.substr(i, 2) != "\\u") return fail();
                        i += 2;
                        if (!hex4(lo) || lo < 0xDC00 || lo >= 0xE000) return fail();
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp < 0xE000) {
                        return fail();
                    }
                    utf8(out, cp);
                    break;
                }
                default: return fail();
            }
        }
        return fail();
    }
    bool number(std::string& out) {
        const std::size_t start = i;
        const auto digits = [&] {
            const std::size_t from = i;
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
            return i > from;
        };
        if (i < s.size() && s[i] == '-') ++i;
        if (i < s.size() && s[i] == '0') ++i;
        else if (!digits()) return fail();
        if (i < s.size() && s[i] == '.' && (++i, !digits())) return fail();
        if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
            ++i;
            if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
            if (!digits()) return fail();
        }
        out.assign(s.substr(start, i - start));
        return true;
    }
    bool value(JsonValue& v) {
        if (++depth > 64) return fail();
        ws();
        if (i >= s.size()) return fail();
        const char c = s[i];
        if (c == '{') {
            v.type = JsonValue::Type::object;
            ++i;
            if (!eat('}')) {
                do {
                    std::string key;
                    JsonValue item;
                    ws();
                    if (!string(key) || !eat(':') || !value(item)) return fail();
                    v.fields.emplace_back(std::move(key), std::move(item));
                } while (eat(','));
                if (!eat('}')) return fail();
            }
        } else if (c == '[') {
            v.type = JsonValue::Type::array;
            ++i;
            if (!eat(']')) {
                do {
                    if (!value(v.items.emplace_back())) return fail();
                } while (eat(','));
                if (!eat(']')) return fail();
            }
        } else if (c == '"') {
            v.type = JsonValue::Type::string;
            if (!string(v.text)) return false;
        } else if (c == 't' || c == 'f') {
            v.type = JsonValue::Type::boolean;
            v.boolean = c == 't';
            if (!word(v.boolean ? "true" : "false")) return false;
        } else if (c == 'n') {
            if (!word("null")) return false;
        } else {
            v.type = JsonValue::Type::number;
            if (!number(v.text)) return false;
        }
        --depth;
        return ok;
    }
};

}  // namespace

std::optional<JsonValue> parse_json(std::string_view text) {
    Reader r{text};
    JsonValue v;
    if (!r.value(v)) return std::nullopt;
    r.ws();
    if (r.i != text.size()) return std::nullopt;
    return v;
}

}  // namespace flowinfer
