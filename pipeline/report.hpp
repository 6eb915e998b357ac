// The HTML run report: one self-contained file (inline CSS and JS, images only as data: URIs,
// per-slide files as relative links) that a person opens from the output directory, with no
// network and no server. A header counts slides by status; a table has one row per slide
// (thumbnail, name, status, patches, time, output links, error), sortable by clicking a
// column header and filterable by status. The filter is kept in the URL hash
// ("report.html#status=failed,interrupted"), so a link can open a filtered view and a
// headless browser can check it.
//
// Every text from the run (slide names, errors, labels, config) is HTML-escaped; bytes that
// are not UTF-8 become U+FFFD; link targets are percent-encoded so a file name cannot become
// another scheme (javascript:) or leave its attribute. A thumbnail that is not a
// "data:image/..." URI is left out rather than making the report fetch anything.
//
// Thread safety: pure functions; concurrent write_report calls must use different paths.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace flowinfer {

struct ReportRow {
    std::string slide;
    std::string status;  // ok, failed, skipped, interrupted, pending (others are shown as given)
    std::int64_t patches = 0;
    double wall_s = 0;
    std::vector<std::pair<std::string, std::string>> outputs;  // label, path relative to the report
    std::string error;
    std::string thumbnail_uri;  // data: URI (thumbnail_data_uri) or empty
    std::string preview;        // path of the slide's preview.png relative to the report, or empty
};

struct ReportData {
    std::string title;
    std::string state;  // running, finished, interrupted
    std::string started, config;
    std::vector<ReportRow> rows;
};

// The whole document.
std::string report_html(const ReportData& d);

// report_html through write_file_atomically (".partial" then rename), so a browser reloading
// the report while a run rewrites it never sees half a file. Throws OutputError naming `path`.
void write_report(const std::string& path, const ReportData& d);

// The inline stylesheet and script, kept in report_template.cpp so this API and the
// escaping code stay readable; not meant for other callers.
extern const char* const kReportCss;
extern const char* const kReportJs;

}  // namespace flowinfer
