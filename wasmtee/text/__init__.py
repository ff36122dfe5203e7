"""The WebAssembly text format: WAT modules and WAST scripts.

`parse_wat(text)` returns a `wasmtee.model.Module` in the same form as the
binary decoder's output. `parse_script(text)` returns the commands of a WAST
script (see `wasmtee.text.wast`).
"""

from __future__ import annotations

from wasmtee.errors import WatSyntaxError
from wasmtee.model import Module
from wasmtee.text.sexpr import ID, SList, read_sexprs
from wasmtee.text.wat import parse_module_fields


def parse_wat(text: str) -> Module:
    """Parse a WAT module: one `(module ...)` form, or bare module fields.

    Raises WatSyntaxError (with line and column) for malformed text, and
    UnsupportedFeature for syntax of proposals beyond WebAssembly 2.0.
    """
    source, nodes = read_sexprs(text)
    if len(nodes) == 1 and isinstance(nodes[0], SList) and nodes[0].head() == "module":
        items = nodes[0].items
        pos = 1
        if pos < len(items) and getattr(items[pos], "kind", None) == ID:
            pos += 1
        if pos < len(items) and getattr(items[pos], "text", None) in (
            "binary",
            "quote",
        ):
            raise source.error(
                "unexpected token: binary and quote modules belong in scripts",
                items[pos].offset,
            )
        return parse_module_fields(source, items[pos:])
    for node in nodes:
        if isinstance(node, SList) and node.head() == "module":
            raise source.error("unexpected token: module inside a module", node.offset)
    return parse_module_fields(source, nodes)


def parse_wat_bytes(data: bytes) -> Module:
    """Parse WAT source given as bytes, which must be valid UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WatSyntaxError(f"malformed UTF-8 encoding at byte {exc.start}") from None
    return parse_wat(text)


__all__ = ["WatSyntaxError", "parse_wat", "parse_wat_bytes"]
