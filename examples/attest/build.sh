#!/bin/sh
# Build attest.wasm from attest.c with zig's clang (pip install ziglang).
# The "wasmtee_attest" functions stay imports, resolved by the enclave at run time.
set -eu
cd "$(dirname "$0")"
python3 -m ziglang cc --target=wasm32-wasi -O2 attest.c -o attest.wasm
echo "built $(pwd)/attest.wasm"
