#!/usr/bin/env bash
# Puts the umqtt/simple.py that our firmware images freeze into CACHE_DIR/umqtt/, for the tests,
# `make run` and the unix build (XRT_EXTRA_PATH, firmware/host_manifest.py): micropython-lib's copy
# at the commit MicroPython v1.25.0 pins, taken from the offline MicroPython sources in VENDOR_DIR
# (default ../shared/vendor beside this clone; read only, never copied into the repository).
#
# firmware/umqtt-simple.sha256 records the file's SHA-256 and its path in the MicroPython tree: the
# file is checked against it (a changed archive or pin fails here, loudly) and a copy in the cache
# that differs (an older PyPI umqtt.simple, an edit) is replaced. Cheap when nothing changed: one
# sha256sum of a 6.7 KB file. tests/test_umqtt_pin.py and tests/test_manifest.py check the same pin.
#
# usage: tools/fetch_umqtt.sh CACHE_DIR
# Exit status: 2 for a wrong argument, 3 when the offline sources are missing, 1 when they hold
# another file than the pin.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: tools/fetch_umqtt.sh CACHE_DIR" >&2; exit 2; }
cache=$(mkdir -p "$1" && cd "$1" && pwd)
target="$cache/umqtt/simple.py"
pin_file="$root/firmware/umqtt-simple.sha256"
pinned=$(cat "$root/firmware/MICROPYTHON_VERSION")
read -r want member < "$pin_file"
[[ "$want" =~ ^[0-9a-f]{64}$ ]] && [ -n "$member" ] || { echo "fetch_umqtt: $pin_file is not '<sha256>  <path>'" >&2; exit 2; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$target" ] && [ "$(sha256_of "$target")" = "$want" ]; then
    [ -f "$cache/umqtt/__init__.py" ] || touch "$cache/umqtt/__init__.py"
    exit 0
fi

vendor=${VENDOR_DIR:-$root/../shared/vendor}
archive_name="micropython-$pinned-rp2-src.tar.xz"
archive="$vendor/$archive_name"
if [ ! -f "$archive" ]; then
    echo "fetch_umqtt: no $archive_name in $vendor: the tests use the umqtt.simple the images freeze," >&2
    echo "fetch_umqtt: taken from MicroPython's offline sources; give VENDOR_DIR=<folder with them>" >&2
    exit 3
fi
# The archive as SHA256SUMS names it (the same check tools/build_firmware.sh makes before a build).
line=$(grep -E "^[0-9a-f]{64}  $archive_name\$" "$vendor/SHA256SUMS" 2>/dev/null) || {
    echo "fetch_umqtt: $vendor/SHA256SUMS has no line for $archive_name" >&2; exit 3; }
(cd "$vendor" && echo "$line" | sha256sum -c --quiet --status -) || {
    echo "fetch_umqtt: $archive does not match its SHA256SUMS line: a damaged or changed archive" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! tar -xJf "$archive" -C "$work" "micropython-$pinned/$member" 2>"$work/tar.log"; then
    echo "fetch_umqtt: $archive has no micropython-$pinned/$member:" >&2
    cat "$work/tar.log" >&2
    exit 1
fi
found="$work/micropython-$pinned/$member"
got=$(sha256_of "$found")
if [ "$got" != "$want" ]; then
    echo "fetch_umqtt: $member in $archive_name has sha256 $got, but $pin_file pins $want:" >&2
    echo "fetch_umqtt: the umqtt.simple the images freeze changed; check gateway's MQTT code against it, then update the pin" >&2
    exit 1
fi
mkdir -p "$cache/umqtt"
cp "$found" "$target.tmp"
mv "$target.tmp" "$target"
touch "$cache/umqtt/__init__.py"
echo "fetch_umqtt: $target (micropython-lib of MicroPython $pinned, sha256 ${want:0:16}...)" >&2
