#!/usr/bin/env bash
# Builds a gateway firmware image with the official MicroPython port build and copies it to dist/.
#
# usage: tools/build_firmware.sh BOARD MPY_DIR        (make firmware BOARD=... MPY_DIR=...)
#   BOARD    a folder of firmware/boards: RBAMP_ESP32 (.bin) or RBAMP_PICO_W (.uf2)
#   MPY_DIR  a MicroPython checkout at the version in firmware/MICROPYTHON_VERSION
# The toolchains are the ports' own: ESP-IDF (its export.sh sourced, so idf.py is on PATH) for
# the ESP32, arm-none-eabi-gcc for the Pico W. See firmware/README.md. DIST_DIR overrides dist/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pinned=$(cat "$root/firmware/MICROPYTHON_VERSION")
fail() { echo "make firmware: $*" >&2; exit 2; }

board=${1:-}
mpy_dir=${2:-}
boards=$(cd "$root/firmware/boards" && ls -d */ | tr -d / | xargs)
[ -n "$board" ] || fail "BOARD is not set; one of: $boards"
[ -f "$root/firmware/boards/$board/mpconfigboard.cmake" ] || fail "no board '$board' in firmware/boards; one of: $boards"
[ -n "$mpy_dir" ] || fail "MPY_DIR is not set: give a MicroPython $pinned checkout (git clone -b $pinned https://github.com/micropython/micropython)"
[ -f "$mpy_dir/py/mpconfig.h" ] || fail "MPY_DIR=$mpy_dir is not a MicroPython source tree (no py/mpconfig.h)"
mpy_dir=$(cd "$mpy_dir" && pwd)

# The version the tree itself declares (works for git checkouts and release tarballs alike).
version_part() { sed -n "s/^#define MICROPY_VERSION_$1 (*\([0-9]*\))*$/\1/p" "$mpy_dir/py/mpconfig.h"; }
found="v$(version_part MAJOR).$(version_part MINOR).$(version_part MICRO)"
[ "$found" = "$pinned" ] || fail "MPY_DIR=$mpy_dir is MicroPython $found; the boards are made for $pinned (firmware/MICROPYTHON_VERSION)"

board_dir="$root/firmware/boards/$board"
case "$board" in
    *ESP32*)
        port=esp32
        image=firmware.bin
        suffix=bin
        command -v idf.py >/dev/null || fail "idf.py is not on PATH: install ESP-IDF (the version ports/esp32/README.md names) and source its export.sh"
        ;;
    *PICO*)
        port=rp2
        image=firmware.uf2
        suffix=uf2
        command -v arm-none-eabi-gcc >/dev/null || fail "arm-none-eabi-gcc is not on PATH (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"
        ;;
    *)
        fail "no port known for board '$board'"
        ;;
esac

jobs=$(nproc 2>/dev/null || echo 2)
make -C "$mpy_dir/mpy-cross" -j"$jobs"
make -C "$mpy_dir/ports/$port" BOARD_DIR="$board_dir" submodules
make -C "$mpy_dir/ports/$port" BOARD_DIR="$board_dir" -j"$jobs"

dist=${DIST_DIR:-$root/dist}
mkdir -p "$dist"
target="$dist/rbamp-gateway-$board-micropython-$pinned.$suffix"
cp "$mpy_dir/ports/$port/build-$board/$image" "$target"
echo "$target"
