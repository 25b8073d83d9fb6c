#!/usr/bin/env bash
# Builds a gateway firmware image with the official MicroPython port build and copies it to dist/.
#
# usage: tools/build_firmware.sh BOARD [MPY_DIR]     (make firmware BOARD=... [MPY_DIR=...])
#   BOARD    a folder of firmware/boards: RBAMP_PICO_W (.uf2) or RBAMP_ESP32 (.bin)
#   MPY_DIR  a MicroPython checkout at the version in firmware/MICROPYTHON_VERSION. Optional for
#            RBAMP_PICO_W: without it the offline sources in VENDOR_DIR (default ../shared/vendor
#            beside this clone) are checked against their SHA256SUMS and unpacked into
#            .cache/firmware/ once, picotool is built there once, and the Arm toolchain is
#            installed with apt where it is missing. The ESP32 always needs MPY_DIR and ESP-IDF
#            (idf.py on PATH, from its export.sh).
#   Either way microdot, which the images freeze, is fetched first into .cache/weblib
#   (tools/fetch_microdot.sh: the wheel pinned in firmware/microdot.sha256, from PyPI once).
# Environment: DIST_DIR (default dist/) where the images go; JOBS (default nproc) make's -j;
#   BUILD_DIR a port build folder of your own (default the port's build-BOARD in the source tree);
#   SOURCE_DATE_EPOCH the banner's build date (default MicroPython v1.25.0's commit time, below).
# Prints the files written to DIST_DIR, the image last; the build's own output goes to stderr.
# Exit status: 2 for a wrong argument, 3 when this machine cannot build (no toolchain and no way
# to install it, or no offline sources), otherwise the build's. See firmware/README.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pinned=$(cat "$root/firmware/MICROPYTHON_VERSION")
fail() { echo "make firmware: $*" >&2; exit 2; }
cannot() { echo "make firmware: $*" >&2; exit 3; }
log() { echo "make firmware: $*" >&2; }

# The offline sources (see VENDOR_DIR/README.md): only the rp2 port, with its submodules.
MPY_ARCHIVE="micropython-$pinned-rp2-src.tar.xz"
PICOTOOL_VERSION=2.1.1  # the picotool pico-sdk 2.1.1 (MicroPython v1.25.0's) asks for
PICOTOOL_ARCHIVE="picotool-$PICOTOOL_VERSION-src.tar.xz"
# The commit time of MicroPython v1.25.0 (f498a16c, 2025-04-15 14:28:30 UTC; the vendor archive's
# file times): the banner then reads "MicroPython v1.25.0 on 2025-04-15" as the official v1.25.0
# images do, whenever and wherever the image is built. The gateway's own version is in the image
# as rbamp.__version__. tests/test_firmware_build.py checks it against the archive.
MPY_RELEASE_EPOCH=1744727310
RP2_PACKAGES="gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib cmake build-essential python3"

board=${1:-}
mpy_dir=${2:-}
boards=$(cd "$root/firmware/boards" && ls -d */ | tr -d / | xargs)
[ -n "$board" ] || fail "BOARD is not set; one of: $boards"
[ -f "$root/firmware/boards/$board/mpconfigboard.cmake" ] || fail "no board '$board' in firmware/boards; one of: $boards"
board_dir="$root/firmware/boards/$board"
case "$board" in
    *ESP32*) port=esp32 image=firmware.bin suffix=bin ;;
    *PICO*) port=rp2 image=firmware.uf2 suffix=uf2 ;;
    *) fail "no port known for board '$board'" ;;
esac

if [ -z "$mpy_dir" ] && [ "$port" != rp2 ]; then
    fail "MPY_DIR is not set: the offline sources are for the Pico W only; give a MicroPython $pinned checkout (git clone -b $pinned https://github.com/micropython/micropython) and ESP-IDF, see firmware/README.md"
fi
if [ -n "$mpy_dir" ]; then
    [ -f "$mpy_dir/py/mpconfig.h" ] || fail "MPY_DIR=$mpy_dir is not a MicroPython source tree (no py/mpconfig.h)"
    mpy_dir=$(cd "$mpy_dir" && pwd)
fi

# ---------------------------------------------------------------- toolchain

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif [ -t 0 ]; then
        sudo "$@"
    else
        sudo -n "$@"  # no terminal to ask for a password on (a test run): only a cached sudo works
    fi
}

# What the rp2 build runs: the Arm compiler with newlib's C and libstdc++'s C++ headers, cmake and
# a host compiler (picotool, pioasm, mpy-cross), make and python3.
rp2_toolchain_missing() {
    local missing=()
    if command -v arm-none-eabi-gcc >/dev/null 2>&1; then
        echo '#include <stdio.h>' | arm-none-eabi-gcc -x c -E - >/dev/null 2>&1 || missing+=(newlib)
        echo '#include <cstddef>' | arm-none-eabi-g++ -x c++ -E - >/dev/null 2>&1 || missing+=(libstdc++-newlib)
    else
        missing+=(arm-none-eabi-gcc)
    fi
    local tool
    for tool in cmake make cc c++ python3; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    echo "${missing[*]:-}"
}

ensure_rp2_toolchain() {
    local missing
    missing=$(rp2_toolchain_missing)
    [ -n "$missing" ] || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        cannot "missing $missing and no apt-get to install it: install the Arm GNU toolchain with newlib, cmake and a host C/C++ compiler (Debian: apt-get install $RP2_PACKAGES)"
    fi
    log "installing $RP2_PACKAGES (missing: $missing)"
    # DPkg::Lock::Timeout: wait for another apt run instead of failing at once
    if ! { sudo_if_needed apt-get -o DPkg::Lock::Timeout=600 update -qq &&
           sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $RP2_PACKAGES; } >&2; then
        cannot "could not install $RP2_PACKAGES (missing: $missing); install them (sudo apt-get install ...) and run again"
    fi
    missing=$(rp2_toolchain_missing)
    [ -z "$missing" ] || cannot "still missing after apt-get install: $missing"
}

# ---------------------------------------------------------------- offline sources

cache="$root/.cache/firmware"

# The checksum SHA256SUMS gives for an archive, after checking the archive against it.
verified_sha256() {
    local vendor=$1 name=$2 line
    [ -f "$vendor/$name" ] || cannot "no $name in $vendor: give MPY_DIR=<MicroPython $pinned checkout> or VENDOR_DIR=<folder with the offline sources>"
    line=$(grep -E "^[0-9a-f]{64}  $name\$" "$vendor/SHA256SUMS" 2>/dev/null) || cannot "$vendor/SHA256SUMS has no line for $name"
    (cd "$vendor" && echo "$line" | sha256sum -c --quiet --status -) || cannot "$vendor/$name does not match its SHA256SUMS line: a damaged or changed archive"
    echo "${line%% *}"
}

# Unpacks an archive into DEST once (the folder name carries the archive's hash).
unpack_once() {
    local archive=$1 dest=$2
    [ -f "$dest/.unpacked" ] && return 0
    log "unpacking $(basename "$archive") into ${dest#"$root"/}"
    rm -rf "$dest" "$dest.tmp"
    mkdir -p "$dest.tmp"
    tar -xJf "$archive" -C "$dest.tmp"
    touch "$dest.tmp/.unpacked"
    mv "$dest.tmp" "$dest"
}

# picotool, which pico-sdk needs to write the .uf2 (it would git-clone it otherwise); without USB
# support it needs no libusb. Built once per (picotool, pico-sdk) pair, only the install is kept.
build_picotool_once() {
    local tree=$1 key=$2 vendor=$3
    local dir="$cache/picotool/$key"
    local config="$dir/install/lib/cmake/picotool/picotoolConfig.cmake"
    if [ ! -f "$config" ]; then
        unpack_once "$vendor/$PICOTOOL_ARCHIVE" "$dir/src"
        log "building picotool $PICOTOOL_VERSION"
        cmake -S "$dir/src/picotool-$PICOTOOL_VERSION" -B "$dir/build" -DPICO_SDK_PATH="$tree/lib/pico-sdk" \
            -DPICOTOOL_NO_LIBUSB=1 -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$dir/install" >&2
        make -C "$dir/build" -j"$jobs" install >&2
        rm -rf "$dir/src" "$dir/build"
        [ -f "$config" ] || fail "picotool built but $config is missing"
    fi
    echo "$dir/install/lib/cmake/picotool"
}

# ---------------------------------------------------------------- build

jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$MPY_RELEASE_EPOCH}
# MicroPython's generators iterate sets of strings, whose order follows Python's per-process string
# hash: tools/boardgen.py's pin aliases (LED and WL_GPIO0 name one pin) came out in either order.
# A fixed seed gives the same tables every build.
export PYTHONHASHSEED=0

if [ -z "$mpy_dir" ]; then
    vendor=${VENDOR_DIR:-$root/../shared/vendor}
    [ -d "$vendor" ] || cannot "MPY_DIR is not set and there are no offline sources in $vendor: give MPY_DIR=<MicroPython $pinned checkout> or VENDOR_DIR"
    vendor=$(cd "$vendor" && pwd)
    mpy_sha=$(verified_sha256 "$vendor" "$MPY_ARCHIVE")
    picotool_sha=$(verified_sha256 "$vendor" "$PICOTOOL_ARCHIVE")
    ensure_rp2_toolchain
    mkdir -p "$cache"
    # One build at a time in the shared source tree (make firmware and the tests' image builds).
    exec 9>"$cache/.lock"
    command -v flock >/dev/null 2>&1 && flock 9
    src="$cache/src/${mpy_sha:0:16}"
    unpack_once "$vendor/$MPY_ARCHIVE" "$src"
    mpy_dir="$src/micropython-$pinned"
    export picotool_DIR
    picotool_DIR=$(build_picotool_once "$mpy_dir" "${picotool_sha:0:16}-${mpy_sha:0:16}" "$vendor")
    # The tree sits inside this repository's git work tree, where makeversionhdr.py's git describe
    # would name our commit: the tag is given instead (MICROPY_GIT_HASH the tag's commit).
    export MICROPY_GIT_TAG=$pinned MICROPY_GIT_HASH=f498a16c7
    submodules=no  # the archive carries the submodules; the tree is no git checkout
else
    submodules=yes  # a checkout of your own: the port's submodules are fetched as it documents
fi

# The version the tree itself declares (works for git checkouts and release tarballs alike).
version_part() { sed -n "s/^#define MICROPY_VERSION_$1 (*\([0-9]*\))*$/\1/p" "$mpy_dir/py/mpconfig.h"; }
found="v$(version_part MAJOR).$(version_part MINOR).$(version_part MICRO)"
[ "$found" = "$pinned" ] || fail "MPY_DIR=$mpy_dir is MicroPython $found; the boards are made for $pinned (firmware/MICROPYTHON_VERSION)"

case "$port" in
    esp32) command -v idf.py >/dev/null || fail "idf.py is not on PATH: install ESP-IDF (the version ports/esp32/README.md names) and source its export.sh" ;;
    rp2) command -v arm-none-eabi-gcc >/dev/null || fail "arm-none-eabi-gcc is not on PATH (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi), or leave MPY_DIR out to have it installed" ;;
esac

port_dir="$mpy_dir/ports/$port"
build_args=()
build_dir="$port_dir/build-$board"
if [ -n "${BUILD_DIR:-}" ]; then
    build_dir=$(mkdir -p "$BUILD_DIR" && cd "$BUILD_DIR" && pwd)
    build_args=(BUILD="$build_dir")
fi
# cmake configures a build folder once, with absolute paths, and make regenerates files when their
# inputs change, not when the environment does: a folder built for another source tree or board
# folder (a moved clone), other settings above or another version of this script is started afresh.
configured_for="$mpy_dir $board_dir $SOURCE_DATE_EPOCH $PYTHONHASHSEED ${MICROPY_GIT_TAG:-} $(sha256sum < "$0" | cut -c1-16)"
if [ -f "$build_dir/.rbamp-configured-for" ] && [ "$(cat "$build_dir/.rbamp-configured-for")" != "$configured_for" ]; then
    rm -rf "$build_dir"
fi

# microdot, which manifest.py freezes from .cache/weblib: the wheel pinned in firmware/microdot.sha256
# (the one download of the build; the checked wheel and its modules are cached, so a second build
# stays offline). Fetched before the port's make, which evaluates the manifest.
fetch_python=${PYTHON:-}
[ -n "$fetch_python" ] || { [ -x "$root/.venv/bin/python" ] && fetch_python=$root/.venv/bin/python; } || fetch_python=python3
fetched=0
PYTHON=$fetch_python "$root/tools/fetch_microdot.sh" "$root/.cache/weblib" >&2 || fetched=$?
case "$fetched" in
    0) ;;
    3) cannot "microdot (firmware/microdot.sha256) is not in .cache/weblib and could not be downloaded: run \`make weblib\` where PyPI answers" ;;
    *) log "tools/fetch_microdot.sh failed ($fetched), see above"; exit "$fetched" ;;
esac

make -C "$mpy_dir/mpy-cross" -j"$jobs" >&2
if [ "$submodules" = yes ]; then
    make -C "$port_dir" BOARD_DIR="$board_dir" submodules >&2
fi
make -C "$port_dir" BOARD_DIR="$board_dir" "${build_args[@]}" -j"$jobs" >&2
[ -d "$build_dir" ] && echo "$configured_for" > "$build_dir/.rbamp-configured-for"

dist=${DIST_DIR:-$root/dist}
mkdir -p "$dist"
name="rbamp-gateway-$board-micropython-$pinned"
# Beside the image: the raw .bin (picotool load) and the .elf (symbols, section sizes).
for extra in elf bin; do
    if [ "$extra" != "$suffix" ] && [ -f "$build_dir/firmware.$extra" ]; then
        cp "$build_dir/firmware.$extra" "$dist/$name.$extra.tmp"
        mv "$dist/$name.$extra.tmp" "$dist/$name.$extra"
        echo "$dist/$name.$extra"
    fi
done
target="$dist/$name.$suffix"
cp "$build_dir/$image" "$target.tmp"
mv "$target.tmp" "$target"
echo "$target"
