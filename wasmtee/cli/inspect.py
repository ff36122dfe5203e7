"""`wasmtee inspect`: print a module's imports, exports, memories and feature use."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any, TextIO

from wasmtee.cli.module_file import ModuleKind, classify, read_module_file
from wasmtee.errors import UsageError
from wasmtee.model import ExternKind, Module, ValType
from wasmtee.opcodes import BLOCK, IF, LOOP, REF_FUNC, REF_IS_NULL, REF_NULL, SELECT_T

PAGE_SIZE = 65536

# Post-MVP features and the opcodes that reveal them (0xFC0n is the 0xFC prefix, subopcode n).
_OPCODE_FEATURES: list[tuple[str, range | tuple[int, ...]]] = [
    ("sign-extension", range(0xC0, 0xC5)),
    ("non-trapping float-to-int", range(0xFC00, 0xFC08)),
    ("bulk memory", range(0xFC08, 0xFC0F)),
    ("reference types", (0x25, 0x26, REF_NULL, REF_IS_NULL, REF_FUNC, SELECT_T,
                         0xFC0F, 0xFC10, 0xFC11)),
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="print a module's imports, exports, memory and feature use",
        description="Decode MODULE (.wasm or .wat) and print its imports, exports, "
        "memories (sizes in 64 KiB pages), tables, globals, WASI use and the "
        "post-MVP features it uses. Exit status: 0 on success, 1 when the file is not a "
        "module or cannot be decoded, 2 for bad arguments.",
    )
    parser.add_argument("module", metavar="MODULE", help="the .wasm or .wat file")
    parser.set_defaults(handler=run)


def load_model(path: str) -> Module:
    """Decode or parse the module at `path`.

    Raises UsageError when it cannot be read or is an AOT artifact, and
    DecodeError when it is neither a binary module nor WAT text.
    """
    data = read_module_file(path)
    kind = classify(path, data)
    if kind == ModuleKind.ARTIFACT:
        raise UsageError(f"{path} is a wasmtee AOT artifact; inspect the .wasm or .wat file "
                         "it was compiled from")
    if kind == ModuleKind.BINARY:
        from wasmtee.binary import decode_module

        return decode_module(data)
    from wasmtee.text import parse_wat

    return parse_wat(data.decode("utf-8"))


def _describe(model: Module, kind: ExternKind, desc: Any) -> str:
    if kind == ExternKind.FUNC:
        return f"func {model.types[desc] if isinstance(desc, int) else desc}"
    if kind == ExternKind.MEMORY:
        return f"memory {_limits(desc.limits)}"
    if kind == ExternKind.TABLE:
        return f"table {desc.elem_type} {_limits(desc.limits)}"
    if kind == ExternKind.GLOBAL:
        return f"global {'mut ' if desc.mutable else ''}{desc.val_type}"
    return str(kind)


def _limits(limits: Any) -> str:
    high = "unbounded" if limits.max is None else str(limits.max)
    return f"min {limits.min} max {high}"


def _export_type(model: Module, kind: ExternKind, index: int) -> str:
    imported = [imp for imp in model.imports if imp.kind == kind]
    if index < len(imported):
        return _describe(model, kind, imported[index].desc)
    local = index - len(imported)
    if kind == ExternKind.FUNC:
        return _describe(model, kind, model.funcs[local].type_index)
    if kind == ExternKind.MEMORY:
        return _describe(model, kind, model.mems[local].type)
    if kind == ExternKind.TABLE:
        return _describe(model, kind, model.tables[local].type)
    return _describe(model, kind, model.globals[local].type)


def features(model: Module) -> list[str]:
    """Return the post-MVP features the module uses, judged by its types and code."""
    found: set[str] = set()
    if any(len(t.results) > 1 for t in model.types):
        found.add("multi-value")
    if len(model.mems) + sum(i.kind == ExternKind.MEMORY for i in model.imports) > 1:
        found.add("multiple memories")
    if any(i.kind == ExternKind.GLOBAL and i.desc.mutable for i in model.imports):
        found.add("mutable globals (imported)")
    if any(t.type.elem_type == ValType.EXTERNREF for t in model.tables):
        found.add("reference types")
    ops: Counter[int] = Counter()
    for func in model.funcs:
        for instr in func.body:
            ops[instr.op] += 1
            if instr.op in (BLOCK, LOOP, IF) and type(instr.imm) is int:
                found.add("multi-value")
    for name, codes in _OPCODE_FEATURES:
        if any(ops[code] for code in codes):
            found.add(name)
    if model.datas and any(d.mode.name == "PASSIVE" for d in model.datas):
        found.add("bulk memory")
    return sorted(found)


def print_report(model: Module, out: TextIO) -> None:
    wasi = sorted({imp.module for imp in model.imports if imp.module.startswith("wasi")})
    defined = len(model.funcs)
    code_size = sum(len(f.body) for f in model.funcs)
    print(f"functions: {defined} defined, {code_size} instructions", file=out)
    print(f"WASI: {', '.join(wasi) if wasi else 'not used'}", file=out)
    exports = {e.name for e in model.exports}
    kind = "command (_start)" if "_start" in exports else (
        "reactor (_initialize)" if "_initialize" in exports else "library (no _start)")
    print(f"kind: {kind}", file=out)
    print(f"imports ({len(model.imports)}):", file=out)
    for imp in model.imports:
        print(f"  {imp.module}.{imp.name}: {_describe(model, imp.kind, imp.desc)}", file=out)
    print(f"exports ({len(model.exports)}):", file=out)
    for export in model.exports:
        print(f"  {export.name}: {_export_type(model, export.kind, export.index)}", file=out)
    print(f"memories ({len(model.mems)} defined):", file=out)
    for index, memory in enumerate(model.mems):
        limits = memory.type.limits
        print(f"  memory {index}: {_limits(limits)} pages "
              f"({limits.min * PAGE_SIZE} bytes initially)", file=out)
    data_bytes = sum(len(d.init) for d in model.datas)
    print(f"data segments: {len(model.datas)} ({data_bytes} bytes)", file=out)
    print(f"tables ({len(model.tables)} defined):", file=out)
    for index, table in enumerate(model.tables):
        print(f"  table {index}: {table.type.elem_type} {_limits(table.type.limits)}", file=out)
    print(f"globals: {len(model.globals)} defined", file=out)
    used = features(model)
    print(f"features: {', '.join(used) if used else 'MVP only'}", file=out)
    if model.customs:
        names = ", ".join(sorted({name for name, _ in model.customs}))
        print(f"custom sections: {names}", file=out)


def run(args: argparse.Namespace) -> int:
    """Print the report; errors reach the caller (UsageError exits with 2, others with 1)."""
    print_report(load_model(args.module), sys.stdout)
    return 0
