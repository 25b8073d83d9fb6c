#!/usr/bin/env bash
# Builds the mpy32 interpreter: MicroPython's unix port, 32-bit, single-precision floats,
# from Debian trixie's `micropython` source package. The result is cached; a second run is a no-op
# (for a frozen variant: as long as the frozen files are unchanged).
#
# usage: tools/build_mpy32.sh CACHE_DIR [FROZEN_MANIFEST]
#   prints the path of the built binary on its last line.
set -euo pipefail

cache=$(mkdir -p "$1" && cd "$1" && pwd)
manifest=${2:-}
variant_tag=plain
if [ -n "$manifest" ]; then
    manifest=$(cd "$(dirname "$manifest")" && pwd)/$(basename "$manifest")
    variant_tag=frozen
fi
out="$cache/micropython-32-$variant_tag"

if [ -x "$out" ] && [ -z "$manifest" ]; then
    echo "$out"
    exit 0
fi

log() { echo "build_mpy32: $*" >&2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get is not available: cannot fetch Debian's micropython source"
    exit 3
fi

# gcc-multilib provides the 32-bit libc headers the -m32 build needs.
if ! dpkg -s gcc-multilib >/dev/null 2>&1 || ! command -v dpkg-source >/dev/null 2>&1; then
    log "installing gcc-multilib and dpkg-dev"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-multilib dpkg-dev pkg-config >&2
fi

src_root="$cache/src"
srcdir=$(ls -d "$src_root"/micropython-*/ 2>/dev/null | head -n 1 || true)
if [ -z "$srcdir" ]; then
    # A private apt configuration with a trixie deb-src line: the system's sources stay untouched.
    apt_dir="$cache/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$src_root"
    echo "deb-src http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=-"
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
              -o "APT::Sandbox::User=root")
    log "fetching Debian trixie micropython source"
    apt-get "${apt_opts[@]}" update -qq >&2
    (cd "$src_root" && apt-get "${apt_opts[@]}" source -qq micropython >&2)
    srcdir=$(ls -d "$src_root"/micropython-*/ | head -n 1)
fi
srcdir=${srcdir%/}
log "source: $srcdir"

# A frozen variant is rebuilt only when what it freezes changed: the files the manifest names
# (listed by MicroPython's own manifest tool), the manifests it visits, and this script.
inputs_stamp="$out.inputs"
inputs_hash=""
if [ -n "$manifest" ]; then
    inputs_hash=$(python3 - "$srcdir" "$manifest" "$0" <<'PY'
import hashlib, sys
srcdir, manifest, script = sys.argv[1:]
sys.path.insert(0, srcdir + "/tools")
import manifestfile
m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {
    "MPY_DIR": srcdir, "MPY_LIB_DIR": srcdir + "/lib/micropython-lib",
    "PORT_DIR": srcdir + "/ports/unix", "BOARD_DIR": None})
m.execute(manifest)
digest = hashlib.sha256()
# _visited: the manifest files evaluated (manifestfile.py of the pinned release keeps them there)
for path in sorted(set(f.full_path for f in m.files()) | m._visited | {script}):
    digest.update(path.encode() + b"\0" + str([f.opt for f in m.files() if f.full_path == path]).encode())
    with open(path, "rb") as f:
        digest.update(f.read())
print(digest.hexdigest())
PY
)
    if [ -x "$out" ] && [ "$(cat "$inputs_stamp" 2>/dev/null)" = "$inputs_hash" ]; then
        log "frozen build is up to date"
        echo "$out"
        exit 0
    fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
make -C "$srcdir/mpy-cross" -j"$jobs" >&2

default_manifest="$cache/manifest-asyncio.py"
echo 'include("$(MPY_DIR)/extmod/asyncio")' > "$default_manifest"
build_dir="build-32-$variant_tag"
make -C "$srcdir/ports/unix" -j"$jobs" VARIANT=standard BUILD="$build_dir" PROG=micropython \
    MICROPY_FORCE_32BIT=1 MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0 \
    MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0 \
    FROZEN_MANIFEST="${manifest:-$default_manifest}" \
    CFLAGS_EXTRA="-DMICROPY_PY_MICROPYTHON_HEAP_LOCKED=1 -DMICROPY_FLOAT_IMPL=MICROPY_FLOAT_IMPL_FLOAT" >&2
cp "$srcdir/ports/unix/$build_dir/micropython" "$out.tmp"
mv "$out.tmp" "$out"
if [ -n "$inputs_hash" ]; then
    echo "$inputs_hash" > "$inputs_stamp"
fi
echo "$out"
