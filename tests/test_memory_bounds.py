"""Bounds checks of both tiers, instruction by instruction, against wasmtime.

The cases cover every load and store instruction, static offsets from 0 to
2^32-1, and addresses near 0, near the end of memory and near 4 GiB. Each
access must trap exactly when wasmtime traps and must read or write the
same bytes. A
trapping store must leave memory unchanged, so the whole memory is compared
after every call. The same runs again after memory.grow and on a memory of
zero pages. The llvm tier is the one that matters here, because its code
reads and writes host memory directly; the python tier runs the same cases.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llvmlite")
wasmtime = pytest.importorskip("wasmtime")

from wasmtee import Config, Engine, Instance, Module, Store, Trap, TrapCode  # noqa: E402

# (instruction, access width in bytes, value type)
LOADS = [
    ("i32.load", 4, "i32"), ("i64.load", 8, "i64"), ("f32.load", 4, "f32"),
    ("f64.load", 8, "f64"), ("i32.load8_s", 1, "i32"), ("i32.load8_u", 1, "i32"),
    ("i32.load16_s", 2, "i32"), ("i32.load16_u", 2, "i32"), ("i64.load8_s", 1, "i64"),
    ("i64.load8_u", 1, "i64"), ("i64.load16_s", 2, "i64"), ("i64.load16_u", 2, "i64"),
    ("i64.load32_s", 4, "i64"), ("i64.load32_u", 4, "i64"),
]
STORES = [
    ("i32.store", 4, "i32"), ("i64.store", 8, "i64"), ("f32.store", 4, "f32"),
    ("f64.store", 8, "f64"), ("i32.store8", 1, "i32"), ("i32.store16", 2, "i32"),
    ("i64.store8", 1, "i64"), ("i64.store16", 2, "i64"), ("i64.store32", 4, "i64"),
]
LOAD_NAMES = {name for name, _, _ in LOADS}
OFFSETS = [0, 1, 7, 65535, 65536, 0x7FFF_FFFF, 0xFFFF_FFFF]

# Loads return the raw bits, so NaN payloads compare exactly.
AS_BITS = {"i32": "", "i64": "", "f32": "i32.reinterpret_f32", "f64": "i64.reinterpret_f64"}
BITS_TYPE = {"i32": "i32", "i64": "i64", "f32": "i32", "f64": "i64"}
STORE_VALUE = {
    "i32": "(i32.const 0x8badf00d)",
    "i64": "(i64.const 0x0123456789abcdef)",
    "f32": "(f32.reinterpret_i32 (i32.const 0x7fa00001))",
    "f64": "(f64.reinterpret_i64 (i64.const 0x7ff4000000000001))",
}


def module_text(instr: str, kind: str, pages: int) -> str:
    """Return a module with one exported accessor per static offset, and a grow export."""
    funcs = []
    for index, offset in enumerate(OFFSETS):
        if instr in LOAD_NAMES:
            access = f"({instr} offset={offset} (local.get 0))"
            if AS_BITS[kind]:
                access = f"({AS_BITS[kind]} {access})"
            body = (f"(func (export \"f{index}\") (param i32) (result {BITS_TYPE[kind]}) "
                    f"{access})")
        else:
            body = (f"(func (export \"f{index}\") (param i32) "
                    f"({instr} offset={offset} (local.get 0) {STORE_VALUE[kind]}))")
        funcs.append(body)
    pattern = "".join(f"\\{i:02x}" for i in range(1, 256))
    data = f'(data (i32.const 0) "{pattern}")' if pages else ""
    return f"""(module
      (memory (export "memory") {pages} {pages + 1})
      {data}
      (func (export "grow") (result i32) (memory.grow (i32.const 1)))
      {' '.join(funcs)})"""


def addresses(size: int, width: int) -> list[int]:
    near_end = [size - width - 1, size - width, size - width + 1, size - 1, size, size + 1]
    near_top = [2**31 - 1, 2**31, 2**32 - width - 1, 2**32 - width, 2**32 - 1]
    return sorted({a % 2**32 for a in [0, 1, width, *near_end, *near_top]})


class Wasmtime:
    def __init__(self, wat: str) -> None:
        self.store = wasmtime.Store(wasmtime.Engine())
        instance = wasmtime.Instance(self.store, wasmtime.Module(self.store.engine, wat), [])
        self.exports = instance.exports(self.store)

    def call(self, name: str, *args: int):
        try:
            return "value", self.exports[name](self.store, *args)
        except wasmtime.Trap as exc:
            assert "out of bounds" in str(exc), exc
            return "trap", None

    def memory(self) -> bytes:
        memory = self.exports["memory"]
        return bytes(memory.read(self.store, 0, memory.data_len(self.store)))


class Wasmtee:
    def __init__(self, wat: str, tier: str) -> None:
        engine = Engine(Config(tier=tier))
        self.store = Store(engine)
        self.exports = Instance(self.store, Module(engine, wat), []).exports(self.store)

    def call(self, name: str, *args: int):
        try:
            return "value", self.exports[name](self.store, *args)
        except Trap as exc:
            assert exc.code is TrapCode.MEMORY_OUT_OF_BOUNDS, exc
            return "trap", None

    def memory(self) -> bytes:
        return bytes(self.exports["memory"].read(self.store, 0, None))


def signed(address: int) -> int:
    return address - 2**32 if address >= 2**31 else address


def compare_all(ours: Wasmtee, theirs: Wasmtime, width: int) -> int:
    """Call every accessor at every address; return how many calls trapped."""
    size = len(theirs.memory())
    traps = 0
    for index, offset in enumerate(OFFSETS):
        for address in addresses(size, width):
            name = f"f{index}"
            expected = theirs.call(name, signed(address))
            got = ours.call(name, signed(address))
            where = f"{name} (offset {offset}) at address {address:#x}, memory {size} bytes"
            assert got == expected, where
            assert ours.memory() == theirs.memory(), where
            traps += expected[0] == "trap"
    return traps


@pytest.mark.parametrize("tier", ["llvm", "python"])
@pytest.mark.parametrize(("instr", "width", "kind"), LOADS + STORES,
                         ids=[name for name, _, _ in LOADS + STORES])
def test_access_matches_wasmtime(instr: str, width: int, kind: str, tier: str) -> None:
    wat = module_text(instr, kind, pages=1)
    ours, theirs = Wasmtee(wat, tier), Wasmtime(wat)
    assert compare_all(ours, theirs, width) > 0
    assert ours.call("grow") == theirs.call("grow") == ("value", 1)
    assert compare_all(ours, theirs, width) > 0


@pytest.mark.parametrize(("instr", "width", "kind"), [LOADS[1], STORES[1], STORES[4]],
                         ids=["i64.load", "i64.store", "i32.store8"])
def test_empty_memory_traps_everywhere(instr: str, width: int, kind: str) -> None:
    wat = module_text(instr, kind, pages=0)
    ours, theirs = Wasmtee(wat, "llvm"), Wasmtime(wat)
    calls = len(OFFSETS) * len(addresses(0, width))
    assert compare_all(ours, theirs, width) == calls
