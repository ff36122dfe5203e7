"""Build the harness module that observes a generated module through wasm code.

Python floats cannot carry every f32 bit pattern: wasmtime-py converts f32
values through C `float` to `double`, which quiets a signaling NaN on x86.
Reference values have no identity that two runtimes share. So the test never
passes a float or a reference across the embedding API. Instead a harness
module imports each export of the generated module and re-exports it with
integer-only signatures:

- `call<i>` wraps function export i. An f32 or f64 parameter arrives as its
  i32 or i64 bit pattern (`f32.reinterpret_i32`), a reference parameter is
  always null, and each result leaves as bits (floats) or as `ref.is_null`
  (references).
- `global<i>` returns global export i the same way.
- `table_size<i>` returns the size of table export i, and `table_nulls<i>` a
  hash over which of its elements are null.

Memory is read through the embedding API, which deals in bytes only.
Both runtimes run the same harness bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .generate import wat_to_wasm

NUMERIC_BITS = {"i32": "i32", "i64": "i64", "f32": "i32", "f64": "i64"}
REFERENCE_TYPES = {"funcref": "func", "externref": "extern"}


@dataclass(frozen=True)
class Export:
    """One export of the generated module, described without any runtime's types.

    `kind` is "func", "global", "table" or "memory". For functions, `params`
    and `results` are value type names (i32, i64, f32, f64, funcref,
    externref). For globals, `results` contains the one value type. For tables,
    `results` contains the element type and `limits` the table limits.
    """

    index: int
    name: str
    kind: str
    params: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    mutable: bool = False
    limits: tuple[int, int | None] = (0, None)

    def harness_params(self) -> tuple[str, ...]:
        """Return the harness parameter types: bit patterns, none for references."""
        return tuple(NUMERIC_BITS[t] for t in self.params if t in NUMERIC_BITS)

    def harness_results(self) -> tuple[str, ...]:
        """Return the harness result types: bit patterns, i32 for `ref.is_null`."""
        return tuple(NUMERIC_BITS.get(t, "i32") for t in self.results)


def _to_bits(value_type: str) -> list[str]:
    """Instructions that turn the value on top of the stack into its harness form."""
    if value_type == "f32":
        return ["i32.reinterpret_f32"]
    if value_type == "f64":
        return ["i64.reinterpret_f64"]
    if value_type in REFERENCE_TYPES:
        return ["ref.is_null"]
    return []


def _signature(params: tuple[str, ...], results: tuple[str, ...]) -> str:
    text = ""
    if params:
        text += f" (param {' '.join(params)})"
    if results:
        text += f" (result {' '.join(results)})"
    return text


def _import(export: Export) -> str:
    i = export.index
    if export.kind == "func":
        desc = f"(func $e{i}{_signature(export.params, export.results)})"
    elif export.kind == "global":
        value_type = export.results[0]
        desc = f"(global $e{i} {f'(mut {value_type})' if export.mutable else value_type})"
    else:
        minimum, maximum = export.limits
        bounds = f"{minimum}" if maximum is None else f"{minimum} {maximum}"
        desc = f"(table $e{i} {bounds} {export.results[0]})"
    return f'  (import "m" "{i}" {desc})'


def _call_wrapper(export: Export) -> list[str]:
    i = export.index
    body = []
    argument = 0
    for value_type in export.params:
        if value_type in REFERENCE_TYPES:
            body.append(f"ref.null {REFERENCE_TYPES[value_type]}")
            continue
        body.append(f"local.get {argument}")
        if value_type == "f32":
            body.append("f32.reinterpret_i32")
        elif value_type == "f64":
            body.append("f64.reinterpret_i64")
        argument += 1
    body.append(f"call $e{i}")
    # Results lie on the stack with the last on top: store them last first,
    # then push each one converted, in order.
    first_local = argument
    for k in reversed(range(len(export.results))):
        body.append(f"local.set {first_local + k}")
    for k, value_type in enumerate(export.results):
        body.append(f"local.get {first_local + k}")
        body += _to_bits(value_type)
    locals_decl = f" (local {' '.join(export.results)})" if export.results else ""
    signature = _signature(export.harness_params(), export.harness_results())
    lines = [f'  (func (export "call{i}"){signature}{locals_decl}']
    lines += [f"    {instruction}" for instruction in body]
    lines.append("  )")
    return lines


def _global_getter(export: Export) -> list[str]:
    i = export.index
    result = export.harness_results()[0]
    body = [f"global.get $e{i}"] + _to_bits(export.results[0])
    return [f'  (func (export "global{i}") (result {result})'] + [
        f"    {instruction}" for instruction in body
    ] + ["  )"]


def _table_getters(export: Export) -> list[str]:
    i = export.index
    return [
        f'  (func (export "table_size{i}") (result i32)',
        f"    table.size $e{i}",
        "  )",
        # hash = hash * 31 + is_null(element), over every element in order.
        f'  (func (export "table_nulls{i}") (result i64) (local $i i32) (local $hash i64)',
        "    block $done",
        "      loop $next",
        f"        local.get $i",
        f"        table.size $e{i}",
        "        i32.ge_u",
        "        br_if $done",
        "        local.get $hash",
        "        i64.const 31",
        "        i64.mul",
        "        local.get $i",
        f"        table.get $e{i}",
        "        ref.is_null",
        "        i64.extend_i32_u",
        "        i64.add",
        "        local.set $hash",
        "        local.get $i",
        "        i32.const 1",
        "        i32.add",
        "        local.set $i",
        "        br $next",
        "      end",
        "    end",
        "    local.get $hash",
        "  )",
    ]


def harness_imports(exports: list[Export]) -> list[Export]:
    """Return the exports that the harness imports, in its import order."""
    return [e for e in exports if e.kind in ("func", "global", "table")]


def build_harness_text(exports: list[Export]) -> str:
    imported = harness_imports(exports)
    lines = ["(module"]
    lines += [_import(export) for export in imported]
    for export in imported:
        if export.kind == "func":
            lines += _call_wrapper(export)
        elif export.kind == "global":
            lines += _global_getter(export)
        else:
            lines += _table_getters(export)
    lines.append(")")
    return "\n".join(lines) + "\n"


def build_harness(exports: list[Export]) -> bytes:
    """Assemble the harness module for the given exports."""
    return wat_to_wasm(build_harness_text(exports))
