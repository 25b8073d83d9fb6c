#!/usr/bin/env bash
# Puts MicroPython's umqtt/simple.py (PyPI: micropython-umqtt.simple) into CACHE_DIR/umqtt/.
# The sdist has no working build file, so `pip download` fails after fetching it; pip is run with
# --no-clean in a private TMPDIR so the fetched source survives, and simple.py is taken from there.
#
# usage: tools/fetch_umqtt.sh PIP CACHE_DIR
set -euo pipefail
pip=$1
cache=$(mkdir -p "$2" && cd "$2" && pwd)
target="$cache/umqtt/simple.py"
version=1.3.4
[ -f "$target" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp" "$work/dl"
TMPDIR="$work/tmp" "$pip" download --no-deps --no-binary :all: --no-clean --no-build-isolation \
    -d "$work/dl" "micropython-umqtt.simple==$version" >"$work/pip.log" 2>&1 || true

found=$(find "$work" -path '*umqtt/simple.py' -print -quit)
if [ -z "$found" ]; then
    archive=$(find "$work" -name "micropython-umqtt.simple-$version.tar.gz" -print -quit)
    if [ -n "$archive" ]; then
        mkdir -p "$work/x"
        tar -xzf "$archive" -C "$work/x"
        found=$(find "$work/x" -path '*umqtt/simple.py' -print -quit)
    fi
fi
if [ -z "$found" ]; then
    echo "fetch_umqtt: could not obtain umqtt/simple.py from PyPI; pip said:" >&2
    cat "$work/pip.log" >&2
    exit 1
fi
mkdir -p "$cache/umqtt"
cp "$found" "$target.tmp"
mv "$target.tmp" "$target"
touch "$cache/umqtt/__init__.py"
echo "fetch_umqtt: $target" >&2
