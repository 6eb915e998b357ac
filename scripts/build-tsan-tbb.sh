#!/bin/bash
# build-tsan-tbb.sh DIR : builds oneTBB's libtbb with ThreadSanitizer from the Debian source of
# the installed libtbb12 and installs it under DIR/install (README, "Sanitizers and fuzzing").
# Prints the TBB_DIR to configure with: -DTBB_DIR="$(scripts/build-tsan-tbb.sh DIR)".
#
# Why: the flow graph hands every message from one thread to another through oneTBB's task
# scheduler (libtbb.so: task pools, small-object allocator, futex waits). Debian's libtbb is not
# instrumented, so TSan cannot see that synchronization and reports every hand-off as a race
# in flowinfer's code, which no narrow suppression can tell from a real one. With libtbb built
# with -fsanitize=thread those hand-offs are visible and the remaining reports are real.
#
# The source comes from the distribution's own archive through apt (deb-src entries derived
# from the configured deb ones, in a private apt state under DIR; the system's apt setup is not
# touched). Reuses DIR/install when it is already there. Takes about a minute on 2 cores.
set -euo pipefail
dir=$(mkdir -p "${1:?usage: build-tsan-tbb.sh DIR}" && cd "$1" && pwd)
prefix=$dir/install
if [ -f "$prefix/lib/cmake/TBB/TBBConfig.cmake" ] && [ -f "$prefix/.tsan-ok" ]; then
  echo "$prefix/lib/cmake/TBB"
  exit 0
fi

src_pkg=$(dpkg-query -W -f='${source:Package}' libtbb12)
src_ver=$(dpkg-query -W -f='${source:Version}' libtbb12)

# Private apt state: the system's deb sources turned into deb-src.
apt_dir=$dir/apt
rm -rf "$apt_dir" && mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && sed -E 's/^Types:.*/Types: deb-src/' "$f" > "$apt_dir/sources.list.d/$(basename "$f")"
done
: > "$apt_dir/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] && sed -nE 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >> "$apt_dir/sources.list"
done
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1")
apt-get "${apt_opts[@]}" update -qq >&2

work=$dir/src
rm -rf "$work" && mkdir -p "$work"
# The installed version when the archive still has it, else the suite's current one (libtbb.so.12
# keeps its ABI within a release; the TSan build uses the headers it installs itself).
(cd "$work" && { apt-get "${apt_opts[@]}" source --download-only -qq "$src_pkg=$src_ver" ||
                 apt-get "${apt_opts[@]}" source --download-only -qq "$src_pkg"; } >&2)
dsc=$(ls "$work"/*.dsc | head -n1)
dpkg-source -x "$dsc" "$work/tree" >&2

# libtbb only: no tbbmalloc (flowinfer does not use it), no tests or examples.
cmake -S "$work/tree" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$prefix" \
      -DTBB_SANITIZE=thread -DTBB_TEST=OFF -DTBB_EXAMPLES=OFF -DTBB_STRICT=OFF -DTBBMALLOC_BUILD=OFF \
      -DTBBMALLOC_PROXY_BUILD=OFF >&2
cmake --build "$dir/build" -j"$(nproc)" >&2
cmake --install "$dir/build" >&2
touch "$prefix/.tsan-ok"
echo "$prefix/lib/cmake/TBB"
