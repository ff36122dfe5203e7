#!/bin/sh
# Rebuild the example WASI programs from their C sources with Zig's clang.
# Usage: examples/build.sh   (needs the ziglang Python package)
set -eu
cd "$(dirname "$0")/wasi"
for src in *.c; do
    out="${src%.c}.wasm"
    python3 -m ziglang cc --target=wasm32-wasi -O2 -s "$src" -o "$out"
    echo "built examples/wasi/$out"
done
