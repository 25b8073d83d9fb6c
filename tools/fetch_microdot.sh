#!/usr/bin/env bash
# Puts the web framework the gateway's page runs on, microdot, into CACHE_DIR/microdot/: the wheel
# pinned in firmware/microdot.sha256 (version and SHA-256), downloaded from PyPI with pip and
# checked before anything is taken from it. Only the modules the gateway imports are extracted
# (microdot/__init__, microdot, helpers, sse): the same files run in the host tests under CPython and
# MicroPython, go into `make run`'s path, are frozen into the board images (manifest.py,
# microdot_dir) and are precompiled by `make deploy`.
#
# usage: tools/fetch_microdot.sh CACHE_DIR
# Exit status: 2 for a wrong argument, 3 when the wheel cannot be downloaded, 1 when the download
# is not the pinned file.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: tools/fetch_microdot.sh CACHE_DIR" >&2; exit 2; }
cache=$(mkdir -p "$1" && cd "$1" && pwd)
pin_file="$root/firmware/microdot.sha256"
read -r want wheel < "$pin_file"
[[ "$want" =~ ^[0-9a-f]{64}$ ]] && [[ "$wheel" =~ ^microdot-([0-9.]+)-py3-none-any\.whl$ ]] || {
    echo "fetch_microdot: $pin_file is not '<sha256>  microdot-<version>-py3-none-any.whl'" >&2; exit 2; }
version=${BASH_REMATCH[1]}
modules=(__init__.py microdot.py helpers.py sse.py)
stamp="$cache/microdot/.pinned"
# The verified wheel is kept beside the modules: the image build and the tests compare what they
# freeze and precompile with its members, byte for byte, without another download.
kept_wheel="$cache/$wheel"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$kept_wheel" ]; then
    exit 0
fi

python=${PYTHON:-$(command -v python3)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! "$python" -m pip download -q --no-deps --only-binary=:all: -d "$work" "microdot==$version" >"$work/pip.log" 2>&1; then
    echo "fetch_microdot: could not download microdot==$version from PyPI:" >&2
    cat "$work/pip.log" >&2
    exit 3
fi
got=$(sha256sum "$work/$wheel" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    echo "fetch_microdot: $wheel has SHA-256 $got, but $pin_file pins $want: refusing it" >&2
    exit 1
fi
"$python" - "$work/$wheel" "$work/out" "${modules[@]}" <<'PY'
import sys
import zipfile

wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as archive:
    for name in names:
        archive.extract("microdot/" + name, out)
PY
rm -rf "$cache/microdot"
mv "$work/out/microdot" "$cache/microdot"
rm -f "$cache"/microdot-*.whl
cp "$work/$wheel" "$kept_wheel"
echo "$want" > "$stamp"
