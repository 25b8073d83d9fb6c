#!/usr/bin/env bash
# Installs the emulator the Pico W runner (tools/picow/run.mjs) imports: rp2040js 1.3.3 from the
# offline vendor bundle, unpacked into .cache/picow (never into the repository), its dev
# dependencies from the npm registry, compiled to plain ES modules (so the runner needs no
# TypeScript loader), and the B1 bootrom the npm package lacks, extracted to a .bin.
#
#   tools/picow/setup.sh [VENDOR_DIR]     prints the rp2040js folder on its last line
#
# VENDOR_DIR defaults to $PICOW_VENDOR, then ../shared/vendor beside the clone (CI and /work).
# Idempotent: a stamp holding the archive's and this script's checksums skips a finished install.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENDOR="${1:-${PICOW_VENDOR:-$ROOT/../shared/vendor}}"
ARCHIVE="$VENDOR/rp2040js-1.3.3-src.tar.xz"
CACHE="$ROOT/.cache/picow"
SRC="$CACHE/rp2040js-1.3.3"

command -v node >/dev/null || { echo "setup.sh: node is not installed (Node 18 or later)" >&2; exit 2; }
command -v npm >/dev/null || { echo "setup.sh: npm is not installed" >&2; exit 2; }
[ -f "$ARCHIVE" ] || { echo "setup.sh: $ARCHIVE not found (set PICOW_VENDOR)" >&2; exit 2; }

STAMP_WANT="$( (sha256sum "$ARCHIVE" "$0" | cut -d' ' -f1; node --version) | sha256sum | cut -d' ' -f1)"
if [ -f "$CACHE/.stamp" ] && [ "$(cat "$CACHE/.stamp")" = "$STAMP_WANT" ] \
    && [ -f "$SRC/dist/esm/index.js" ] && [ -f "$CACHE/bootrom-b1.bin" ]; then
  echo "$SRC"
  exit 0
fi

rm -rf "$CACHE"
mkdir -p "$CACHE"
tar -xJf "$ARCHIVE" -C "$CACHE"
# HUSKY=0: its prepare script would install git hooks, which fails inside another work tree.
(cd "$SRC" && HUSKY=0 npm ci --no-audit --no-fund --loglevel=error >&2)
(cd "$SRC" && npx tsc -p tsconfig.json >&2)
# The bootrom ships as a TypeScript array literal; the runner reads a plain little-endian image.
node -e '
const fs = require("fs");
const text = fs.readFileSync(process.argv[1], "utf8");
const body = text.slice(text.indexOf("new Uint32Array(["));
const words = body.match(/0x[0-9a-fA-F]+/g).map((w) => parseInt(w, 16));
if (words.length !== 4096) throw new Error("bootrom: expected 4096 words, got " + words.length);
const out = Buffer.alloc(words.length * 4);
words.forEach((w, i) => out.writeUInt32LE(w >>> 0, i * 4));
fs.writeFileSync(process.argv[2], out);
' "$SRC/demo/bootrom.ts" "$CACHE/bootrom-b1.bin"
echo "$STAMP_WANT" > "$CACHE/.stamp"
echo "$SRC"
