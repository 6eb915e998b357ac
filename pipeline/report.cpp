// The HTML run report: escaping, the document, the atomic write. See report.hpp; the CSS and
// script are in report_template.cpp.
//
// Thread safety: pure functions; concurrent write_report calls must use different paths.
#include "pipeline/report.hpp"

#include "stages/atomic_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>

namespace flowinfer {

namespace {

const char* const kStatuses[] = {"ok", "failed", "skipped", "interrupted", "pending"};

// Appends one code point as UTF-8 (only U+FFFD is needed here).
void append_replacement(std::string& out) { out += "\xEF\xBF\xBD"; }

// Length of the valid UTF-8 sequence at s[i], 0 if invalid (overlong, surrogate, > U+10FFFF,
// truncated): the browser would decode those bytes in its own way, so they are made U+FFFD here
// and the page says the same thing in every browser.
std::size_t utf8_length(const std::string& s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
    else return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    static const std::uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

// Text for element content and quoted attribute values alike.
std::string esc(const std::string& s) {
    std::string out;
    out.reserve(s.size() + s.size() / 8);
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            const std::size_t n = utf8_length(s, i);
            if (n == 0) {
                append_replacement(out);
                ++i;
            } else {
                out.append(s, i, n);
                i += n;
            }
            continue;
        }
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default:
                // C0 controls other than tab/newline/CR are parse errors in HTML.
                if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') append_replacement(out);
                else out += static_cast<char>(c);
        }
        ++i;
    }
    return out;
}

// A relative link target: every byte but unreserved characters and '/' is percent-encoded, so
// a file named "a#b.tif", "x:y" or "javascript:..." stays a path relative to the report.
std::string href(const std::string& path) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : path) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~' || c == '/')
            out += static_cast<char>(c);
        else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// Only images embedded in the page: anything else would make the report reach out.
bool is_image_data_uri(const std::string& uri) {
    static const std::string prefix = "data:image/";
    if (uri.compare(0, prefix.size(), prefix) != 0) return false;
    return std::all_of(uri.begin(), uri.end(), [](unsigned char c) {
        return c > 0x20 && c < 0x7f && c != '"' && c != '\'' && c != '<' && c != '>' && c != '\\';
    });
}

std::string css_class(const std::string& status) {
    std::string out;
    for (unsigned char c : status)
        out += (std::isalnum(c) || c == '-') ? static_cast<char>(c) : '_';
    return out;
}

std::string duration(double s) {
    if (!std::isfinite(s) || s < 0) return "-";
    if (s < 60) return fmt::format("{:.1f} s", s);
    const auto total = static_cast<std::int64_t>(std::llround(s));
    if (total < 3600) return fmt::format("{} min {:02} s", total / 60, total % 60);
    return fmt::format("{} h {:02} min", total / 3600, (total % 3600) / 60);
}

// Statuses in the header and filters: the five known ones always (so a count of 0 reads as
// 0, not as missing), then any other status the rows hold, in order of first appearance.
std::vector<std::pair<std::string, std::int64_t>> status_counts(const ReportData& d) {
    std::vector<std::pair<std::string, std::int64_t>> counts;
    for (const char* s : kStatuses) counts.emplace_back(s, 0);
    for (const ReportRow& r : d.rows) {
        auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == r.status; });
        if (it == counts.end()) counts.emplace_back(r.status, 1);
        else ++it->second;
    }
    return counts;
}

void append_row(std::string& h, const ReportRow& r) {
    h += fmt::format("<tr class=\"slide\" data-status=\"{}\">", esc(r.status));
    h += "<td class=\"thumb\">";
    const bool thumb = is_image_data_uri(r.thumbnail_uri);
    if (!r.preview.empty()) h += fmt::format("<a href=\"{}\" title=\"overlay preview\">", href(r.preview));
    if (thumb)
        h += fmt::format("<img src=\"{}\" alt=\"thumbnail\" loading=\"lazy\" decoding=\"async\">", r.thumbnail_uri);
    else if (!r.preview.empty())
        h += "preview";
    if (!r.preview.empty()) h += "</a>";
    h += "</td>";
    h += fmt::format("<td class=\"name\">{}</td>", esc(r.slide));
    h += fmt::format("<td class=\"status\" data-v=\"{0}\"><span class=\"badge s-{1}\">{0}</span></td>", esc(r.status),
                     css_class(r.status));
    h += fmt::format("<td class=\"num\" data-v=\"{0}\">{0}</td>", r.patches);
    const double t = std::isfinite(r.wall_s) ? r.wall_s : 0.0;
    h += fmt::format("<td class=\"num\" data-v=\"{:.3f}\">{}</td>", t, duration(r.wall_s));
    h += "<td class=\"outputs\">";
    for (const auto& o : r.outputs)
        h += fmt::format("<a href=\"{}\">{}</a>", href(o.second), esc(o.first.empty() ? o.second : o.first));
    h += "</td>";
    h += fmt::format("<td class=\"error\">{}</td></tr>\n", esc(r.error));
}

}  // namespace

std::string report_html(const ReportData& d) {
    const std::string title = d.title.empty() ? std::string("flowinfer run") : d.title;
    const auto counts = status_counts(d);
    std::string h;
    h.reserve(4096 + d.rows.size() * 600);
    h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    // No network even by accident: the page may load only inline styles/scripts and data: images.
    h += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
         "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n";
    h += fmt::format("<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n", esc(title), kReportCss);
    h += fmt::format("<h1>{}</h1>\n<dl class=\"meta\">", esc(title));
    h += fmt::format("<dt>state</dt><dd><span class=\"state {}\" id=\"state\">{}</span></dd>", css_class(d.state),
                     esc(d.state));
    if (!d.started.empty()) h += fmt::format("<dt>started</dt><dd>{}</dd>", esc(d.started));
    if (!d.config.empty()) h += fmt::format("<dt>config</dt><dd>{}</dd>", esc(d.config));
    h += "</dl>\n";

    h += fmt::format("<div id=\"counts\"><span><span id=\"count-total\">{}</span> slides:</span>", d.rows.size());
    for (const auto& c : counts)
        h += fmt::format("<a class=\"count\" href=\"#status={}\"><span class=\"badge s-{}\">{}</span> "
                         "<span class=\"n\" id=\"count-{}\">{}</span></a>",
                         href(c.first), css_class(c.first), esc(c.first), esc(c.first), c.second);
    h += "</div>\n<div id=\"filters\">show:";
    for (const auto& c : counts)
        h += fmt::format("<label><input type=\"checkbox\" class=\"filter\" value=\"{0}\" checked> {0}</label>",
                         esc(c.first));
    h += fmt::format("<button type=\"button\" id=\"filter-all\">all</button>"
                     "<span><span id=\"shown\">{0}</span> of {0} shown</span></div>\n",
                     d.rows.size());

    h += "<table id=\"slides\">\n<thead><tr><th>thumbnail</th>"
         "<th data-sort=\"text\"><button type=\"button\">slide</button></th>"
         "<th data-sort=\"text\"><button type=\"button\">status</button></th>"
         "<th data-sort=\"num\"><button type=\"button\">patches</button></th>"
         "<th data-sort=\"num\"><button type=\"button\">time</button></th>"
         "<th>outputs</th>"
         "<th data-sort=\"text\"><button type=\"button\">error</button></th></tr></thead>\n<tbody>\n";
    for (const ReportRow& r : d.rows) append_row(h, r);
    h += "</tbody>\n</table>\n";
    if (d.rows.empty()) h += "<p class=\"empty\">No slides yet.</p>\n";
    h += fmt::format("<script>{}</script>\n</body>\n</html>\n", kReportJs);
    return h;
}

void write_report(const std::string& path, const ReportData& d) { write_file_atomically(path, report_html(d)); }

}  // namespace flowinfer
