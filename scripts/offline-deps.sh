#!/bin/bash
# offline-deps.sh DIR : Debian bookworm's packages of flowinfer's non-torch dependencies, unpacked
# under DIR, for building and testing on a host without network whose LibTorch comes from its
# own PyTorch (the GPU host: scripts/gpu-check.sh --deps DIR). Holds oneTBB, fmt, toml++,
# OpenSlide, libtiff, zlib, nlohmann-json, CLI11, OpenSSL's libcrypto, libpng, OpenJPEG, HDF5 and
# their shared-library closure, and Boost.Test for the gpu-labelled tests. Base-system packages (libc, libstdc++, compilers, fonts) are left out, and so are the
# Boost headers no test includes: all of Boost's are 160 MB, too much to carry.
#
# On the offline host (scripts/gpu-check.sh does this):
#   export PKG_CONFIG_PATH=$DIR/usr/lib/x86_64-linux-gnu/pkgconfig:$DIR/usr/share/pkgconfig
#   export PKG_CONFIG_SYSROOT_DIR=$DIR   # the .pc files in the packages say prefix=/usr
#   export LD_LIBRARY_PATH=$DIR/usr/lib/x86_64-linux-gnu:$DIR/lib/x86_64-linux-gnu
#   cmake -DCMAKE_PREFIX_PATH="<torch package dir>;$DIR/usr" ...
# CMake's package configs under $DIR/usr/lib/x86_64-linux-gnu/cmake compute their prefix from
# their own path, so they work from DIR.
set -euo pipefail
out=${1:?usage: offline-deps.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
top="libopenslide0 libopenslide-dev libtbb12 libtbbmalloc2 libtbbbind-2-5 libtbb-dev libhwloc15 libfmt9 libfmt-dev
libtomlplusplus-dev libtomlplusplus3 libtiff6 libtiffxx6 libtiff-dev libjpeg62-turbo libjpeg62-turbo-dev libjpeg-dev
zlib1g zlib1g-dev nlohmann-json3-dev libcli11-dev libssl3 libssl-dev libpng16-16 libpng-dev libopenjp2-7 libopenjp2-7-dev
libboost-test1.74.0 libboost-test1.74-dev libboost1.74-dev libhdf5-103-1"
skip='^(libc6|libc6-dev|libc-dev-bin|libgcc|gcc-|libstdc\+\+|libasan|liblsan|libtsan|libubsan|libitm|libquadmath|libgomp|libatomic|linux-libc-dev|libcrypt|libnsl|libtirpc|rpcsvc|dpkg|debconf|cdebconf|install-info|tar|lsb-base|sysvinit|readline|libreadline|libtinfo|fonts-|ttf-|xfonts|fontconfig-config|shared-mime-info|libdebian-installer|libnewt|libslang|libtextwrap|libselinux|libmount|libblkid|libudev|libacl|libkrb|libk5|libgssapi|libkeyutils|libcom-err|libmd0|libbsd0|x11-common|libfontenc|libicu|python3|perl|mime-support|media-types)'
t0=$SECONDS
rm -rf "$out"
mkdir -p "$out/.debs"
out=$(cd "$out" && pwd)
pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances $top \
       | grep '^\w' | sort -u | grep -Ev "$skip")
# apt's sandbox user cannot write to a root-owned DIR; the download itself is what matters.
(cd "$out/.debs" && apt-get download -o APT::Sandbox::User=root $pkgs >/dev/null)
# libhdf5-dev without its dependencies: they are the Fortran and C++ bindings and the -dev
# packages of libcurl and libaec, none of which flowinfer uses; its headers, pkg-config file
# and the libhdf5.so link are what the build needs (libhdf5-103-1's closure is in the list).
(cd "$out/.debs" && apt-get download -o APT::Sandbox::User=root libhdf5-dev >/dev/null)
for f in "$out"/.debs/*.deb; do dpkg -x "$f" "$out"; done
find "$out" -name "*.a" -delete
rm -rf "$out/.debs" "$out/usr/share/doc" "$out/usr/share/man" "$out/usr/share/locale" "$out/usr/share/lintian" \
  "$out/usr/share/X11"

# Boost: keep the libraries (whole directories, since other compilers take other branches
# inside them) whose headers the test sources include, found with g++ -M against this copy.
boost=$out/usr/include/boost
used=$(g++ -std=c++17 -M -MG -DBOOST_TEST_DYN_LINK -I"$root" -I"$root/include" -isystem "$out/usr/include" \
         "$root"/tests/test_*.cpp "$root/tests/test_support.cpp" 2>/dev/null | tr ' \\' '\n\n' |
       sed -n "s|^$boost/||p" | sort -u)
keep=$(printf '%s\n' "$used" | awk -F/ 'NF > 1 { print $1 }' | sort -u)
for d in "$boost"/*/; do
  name=$(basename "$d")
  printf '%s\n' "$keep" | grep -qx "$name" || rm -rf "$d"
done
# numeric/ is mostly the interval and ublas libraries; Boost.Test needs numeric/conversion.
find "$boost/numeric" -mindepth 1 -maxdepth 1 ! -name conversion -exec rm -rf {} +
echo "offline-deps: $(du -sh "$out" | cut -f1) in $out ($((SECONDS - t0)) s)"
