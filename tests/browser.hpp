// A real browser for tests: Debian's headless Chromium loads a page from a file and gives back
// its DOM after the scripts ran (--dump-dom), its console (every console message and uncaught
// exception is logged to stderr) or a screenshot.
//
// Thread safety: run_browser may run concurrently (each run has its own profile directory),
// but Boost.Test assertions are single-threaded: call it from the test's thread.
#pragma once

#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace fit_browser {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

inline std::string chromium() {
    const char* env = std::getenv("FLOWINFER_CHROMIUM");
    return env && *env ? env : "/usr/bin/chromium";
}

struct Browser {
    std::string dom, log;
    int rc = -1;
};

// One headless run; `extra` adds flags (a screenshot). Each run gets its own profile.
inline Browser run_browser(const fs::path& dir, const fs::path& html, const std::string& hash,
                           const std::string& extra = "--dump-dom") {
    // A test without the browser would pass without checking anything: its absence fails.
    BOOST_REQUIRE_MESSAGE(access(chromium().c_str(), X_OK) == 0,
                          "no Chromium at " << chromium() << " (scripts/install-deps.sh installs Debian's chromium)");
    static int n = 0;
    const fs::path base = dir / ("chromium-" + std::to_string(++n));
    const std::string cmd = "timeout 60 '" + chromium() +
                            "' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir='" +
                            base.string() + "-profile' --enable-logging=stderr --v=0 " + extra + " 'file://" +
                            html.string() + hash + "' >'" + base.string() + ".out' 2>'" + base.string() + ".err'";
    Browser b;
    b.rc = std::system(cmd.c_str());
    b.dom = read_file(base.string() + ".out");
    b.log = read_file(base.string() + ".err");
    std::error_code ec;  // the profile is 2 MB of caches; the dumps and logs stay to read
    fs::remove_all(base.string() + "-profile", ec);
    return b;
}

// Chromium logs every console message, errors and uncaught exceptions alike, as
// "...:INFO:CONSOLE(line)] "message", source: ..."; the report logs nothing at all.
inline bool console_lines(const std::string& log) {
    return log.find(":CONSOLE") != std::string::npos || log.find("Uncaught") != std::string::npos;
}

// The opening tags of the slide rows, in document order.
inline std::vector<std::string> row_tags(const std::string& dom) {
    std::vector<std::string> out;
    for (std::size_t p = dom.find("<tr class=\"slide\""); p != std::string::npos; p = dom.find("<tr class=\"slide\"", p + 1))
        out.push_back(dom.substr(p, dom.find('>', p) + 1 - p));
    return out;
}
inline std::string status_of(const std::string& tag) {
    const std::size_t p = tag.find("data-status=\"");
    return p == std::string::npos ? "" : tag.substr(p + 13, tag.find('"', p + 13) - p - 13);
}
inline bool hidden(const std::string& tag) { return tag.find(" hidden") != std::string::npos; }


}  // namespace fit_browser
