"""Runtime objects and instantiation, tested with hand-built modules and a stub tier.

The stub tier maps each defined function to a Python callable, so these tests
exercise only the runtime: memories, tables, globals, import matching,
constant expressions, segment initialization, start functions and callers.
"""

from __future__ import annotations

import ctypes
import gc
import threading

import pytest

from wasmtee.errors import (
    LinkError,
    ResourceLimitExceeded,
    Trap,
    TrapCode,
    UsageError,
    WasiExit,
)
from wasmtee.model import (
    DataSegment,
    ElemSegment,
    Export,
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
    Table,
    TableType,
    ValType,
)
from wasmtee.runtime import (
    Caller,
    Config,
    Engine,
    FunctionInstance,
    GlobalInstance,
    HostFunction,
    MemoryInstance,
    Store,
    TableInstance,
    instantiate,
)
from wasmtee.runtime.memory import PAGE_SIZE
from wasmtee.values import f32_from_bits

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
FUNCREF, EXTERNREF = ValType.FUNCREF, ValType.EXTERNREF
END = Instr(0x0B)


def i32(value: int) -> list[Instr]:
    return [Instr(0x41, value), END]


class StubCompiled:
    """A CompiledModule whose functions run the given Python factories."""

    def __init__(self, module: Module, factories: list) -> None:
        self.module = module
        self.factories = factories
        self.calls = 0

    def make_functions(self, instance):
        self.calls += 1
        imported = len(self.module.imports_of(ExternKind.FUNC))
        funcs = []
        for i, func in enumerate(self.module.funcs):
            call = self.factories[i](instance)
            funcs.append(
                FunctionInstance(instance.types[func.type_index], None, call, instance, imported + i)
            )
        return funcs


def run(store, module, imports=(), factories=None):
    factories = factories or [lambda inst: (lambda *a: None)] * len(module.funcs)
    return instantiate(store, module, None, list(imports), StubCompiled(module, factories))


# -- memory -----------------------------------------------------------------


def test_memory_grow_respects_declared_max():
    mem = MemoryInstance(MemoryType(Limits(1, 3)))
    assert mem.size == PAGE_SIZE
    assert mem.grow(1) == 1
    assert mem.grow(1) == 2
    assert mem.grow(1) == -1
    assert mem.grow(0) == 3
    assert mem.size == 3 * PAGE_SIZE
    mem.close()


def test_memory_grow_respects_store_limit_and_4gib():
    mem = MemoryInstance(MemoryType(Limits(0)), limit_pages=2)
    assert mem.grow(3) == -1
    assert mem.grow(2) == 0
    assert mem.grow(1) == -1
    mem.close()
    big = MemoryInstance(MemoryType(Limits(0)))
    assert big.max_pages == 65536
    assert big.grow(65537) == -1
    assert big.grow(65536) == 0
    assert big.size == 1 << 32
    big.close()


def test_memory_minimum_over_limit_raises():
    with pytest.raises(ResourceLimitExceeded, match="memory size exceeds limit"):
        MemoryInstance(MemoryType(Limits(5)), limit_pages=4)


def test_memory_read_write_and_bounds():
    mem = MemoryInstance(MemoryType(Limits(1)))
    mem.write(100, b"hello")
    assert mem.read(100, 5) == b"hello"
    assert mem.read(PAGE_SIZE - 1, 1) == b"\0"
    with pytest.raises(Trap) as info:
        mem.read(PAGE_SIZE - 2, 3)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert str(info.value).startswith("out of bounds memory access")
    assert "0xfffe" in str(info.value)
    with pytest.raises(Trap, match="out of bounds memory access"):
        mem.write(PAGE_SIZE, b"x")
    with pytest.raises(Trap, match="out of bounds memory access"):
        mem.read(-1, 1)
    mem.store_u32(8, 0xDEADBEEF)
    assert mem.load_u32(8) == 0xDEADBEEF
    assert mem.load_u16(8) == 0xBEEF
    mem.store_u64(16, -1)
    assert mem.load_u64(16) == 2**64 - 1
    with pytest.raises(Trap):
        mem.load_u64(PAGE_SIZE - 4)
    mem.write(200, b"abc\0def")
    assert mem.read_cstring(200) == b"abc"
    mem.close()


def test_memory_address_is_stable_and_shared_with_native_code():
    mem = MemoryInstance(MemoryType(Limits(1)))
    base = mem.address
    mem.write(0, b"\x2a")
    assert ctypes.c_uint8.from_address(base).value == 42
    assert mem.grow(10) == 1
    assert mem.address == base
    ctypes.c_uint8.from_address(base + 5 * PAGE_SIZE).value = 7
    assert mem.read(5 * PAGE_SIZE, 1) == b"\x07"
    # New pages read as zero.
    assert mem.read(10 * PAGE_SIZE, 16) == bytes(16)
    mem.close()
    assert mem.closed
    assert mem.grow(1) == -1
    with pytest.raises(UsageError, match="memory is closed"):
        mem.address  # noqa: B018
    with pytest.raises(Trap):
        mem.read(0, 1)


def test_memory_close_with_live_view_does_not_raise():
    mem = MemoryInstance(MemoryType(Limits(1)))
    view = mem.view(0, 4)
    mem.close()
    view.release()


def test_many_memories_do_not_exhaust_address_space():
    # 4 GiB reservations: 5000 of them (20 TiB) must come and go without
    # running out of address space or map slots.
    for _ in range(5000):
        mem = MemoryInstance(MemoryType(Limits(1)))
        mem.write(0, b"x")
    del mem
    gc.collect()
    store = Store()
    for _ in range(300):
        store.new_memory(MemoryInstance(MemoryType(Limits(1))))
    store.close()
    assert len(store._memories) == 0


# -- table and global ----------------------------------------------------------


def test_table_operations_and_bounds():
    table = TableInstance(TableType(FUNCREF, Limits(2, 4)))
    changes = []
    table.on_change.append(lambda t, start, count: changes.append((start, count)))
    marker = object()
    table.set(1, marker)
    assert table.get(1) is marker
    assert table.get(0) is None
    assert table.grow(2, marker) == 2
    assert table.grow(1) == -1
    assert table.size == 4
    table.fill(0, None, 4)
    assert table.elements == [None] * 4
    table.init(1, ["a", "b", "c"], 1, 2)
    assert table.elements == [None, "b", "c", None]
    table.copy(0, table, 1, 3)
    assert table.elements == ["b", "c", None, None]
    assert changes == [(1, 1), (2, 2), (0, 4), (1, 2), (0, 3)]
    for bad in (lambda: table.get(4), lambda: table.set(-1, None),
                lambda: table.fill(3, None, 2), lambda: table.copy(0, table, 2, 3),
                lambda: table.init(0, ["a"], 0, 2)):
        with pytest.raises(Trap) as info:
            bad()
        assert info.value.code is TrapCode.TABLE_OUT_OF_BOUNDS
    # Zero-length operations at the end are in bounds, past it they trap.
    table.fill(4, None, 0)
    with pytest.raises(Trap):
        table.fill(5, None, 0)


def test_table_limit():
    with pytest.raises(ResourceLimitExceeded, match="table size exceeds limit"):
        TableInstance(TableType(FUNCREF, Limits(10)), limit_elements=5)
    table = TableInstance(TableType(FUNCREF, Limits(1)), limit_elements=5)
    assert table.grow(5) == -1
    assert table.grow(4) == 1


def test_global_default_values():
    assert GlobalInstance(GlobalType(I64, True)).value == 0
    assert GlobalInstance(GlobalType(F32, False)).value == 0.0
    assert GlobalInstance(GlobalType(EXTERNREF, False)).value is None


# -- host functions ----------------------------------------------------------


def test_host_function_errors():
    ft = FuncType((I32,), (I32,))
    ok = HostFunction(ft, lambda x: x * 2)
    assert ok.call(21) == 42

    def boom(x):
        raise KeyError("nope")

    with pytest.raises(Trap) as info:
        HostFunction(ft, boom, name="boom").call(1)
    assert info.value.code is TrapCode.HOST_ERROR
    assert isinstance(info.value.__cause__, KeyError)
    assert "boom" in str(info.value)

    def leave(x):
        raise WasiExit(3)

    with pytest.raises(WasiExit) as exit_info:
        HostFunction(ft, leave).call(1)
    assert exit_info.value.code == 3
    with pytest.raises(TypeError):
        HostFunction("not a type", lambda: None)  # type: ignore[arg-type]


# -- instantiation -------------------------------------------------------------


def memory_module(**extra) -> Module:
    return Module(
        mems=[Memory(MemoryType(Limits(1, 2)))],
        exports=[Export("mem", ExternKind.MEMORY, 0)],
        **extra,
    )


def test_data_segments_and_exports():
    module = memory_module(
        globals=[Global(GlobalType(I32, False), i32(8))],
        datas=[
            DataSegment(b"abc", SegmentMode.ACTIVE, 0, i32(1)),
            DataSegment(b"zz", SegmentMode.PASSIVE),
            DataSegment(b"XY", SegmentMode.ACTIVE, 0, [Instr(0x23, 0), Instr(0x41, 2), Instr(0x6A), END]),
        ],
    )
    store = Store()
    inst = run(store, module)
    mem = inst.exports["mem"]
    assert isinstance(mem, MemoryInstance)
    assert mem.read(0, 12) == b"\0abc\0\0\0\0\0\0XY"
    # Active segments are dropped, passive ones kept.
    assert inst.datas == [b"", b"zz", b""]
    assert store.instance_count == 1


def test_const_exprs_extended():
    g_imp = GlobalInstance(GlobalType(I64, False), 5)
    module = Module(
        imports=[Import("env", "g", ExternKind.GLOBAL, GlobalType(I64, False))],
        globals=[
            Global(GlobalType(I64, False), [Instr(0x23, 0), Instr(0x42, -1), Instr(0x7E), END]),
            Global(GlobalType(I32, False), [Instr(0x41, 1), Instr(0x41, 3), Instr(0x6B), END]),
            Global(GlobalType(F32, False), [Instr(0x43, 0x7FC00001), END]),
            Global(GlobalType(F64, True), [Instr(0x44, 0x4000000000000000), END]),
            Global(GlobalType(EXTERNREF, False), [Instr(0xD0, EXTERNREF), END]),
        ],
    )
    inst = run(Store(), module, [g_imp])
    values = [g.value for g in inst.globals]
    assert values[0] == 5
    assert values[1] == (-5) & (2**64 - 1)
    assert values[2] == 0xFFFF_FFFE
    assert repr(values[3]) == repr(f32_from_bits(0x7FC00001))
    assert values[4] == 2.0
    assert values[5] is None


def test_elem_segments_ref_func_and_drop():
    ft = FuncType((), (I32,))
    module = Module(
        types=[ft],
        funcs=[Function(0, [], [END]), Function(0, [], [END])],
        tables=[Table(TableType(FUNCREF, Limits(4)))],
        elems=[
            ElemSegment(FUNCREF, [[Instr(0xD2, 1), END], [Instr(0xD0, FUNCREF), END]],
                        SegmentMode.ACTIVE, 0, i32(2)),
            ElemSegment(FUNCREF, [[Instr(0xD2, 0), END]], SegmentMode.PASSIVE),
            ElemSegment(FUNCREF, [[Instr(0xD2, 0), END]], SegmentMode.DECLARATIVE),
        ],
        exports=[Export("t", ExternKind.TABLE, 0), Export("f1", ExternKind.FUNC, 1)],
    )
    factories = [lambda inst: (lambda: 10), lambda inst: (lambda: 11)]
    inst = run(Store(), module, factories=factories)
    table = inst.tables[0]
    assert table.elements[:2] == [None, None]
    assert table.elements[2] is inst.funcs[1]
    assert table.elements[2].call() == 11
    assert inst.exports["f1"].name == "f1"
    assert inst.elems[0] == []
    assert inst.elems[2] == []
    assert inst.elems[1] == [inst.funcs[0]]
    # Types are interned per store.
    assert inst.funcs[0].type is inst.funcs[1].type


def test_failing_segment_keeps_earlier_writes():
    shared = MemoryInstance(MemoryType(Limits(1)))
    module = Module(
        imports=[Import("env", "mem", ExternKind.MEMORY, MemoryType(Limits(1)))],
        datas=[
            DataSegment(b"ok", SegmentMode.ACTIVE, 0, i32(0)),
            DataSegment(b"bad", SegmentMode.ACTIVE, 0, i32(PAGE_SIZE - 2)),
            DataSegment(b"never", SegmentMode.ACTIVE, 0, i32(10)),
        ],
        start=None,
    )
    with pytest.raises(Trap) as info:
        run(Store(), module, [shared])
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
    assert "data segment 1" in str(info.value)
    assert shared.read(0, 2) == b"ok"
    assert shared.read(10, 5) == bytes(5)


def test_failing_elem_segment_traps_before_data():
    module = Module(
        tables=[Table(TableType(FUNCREF, Limits(1)))],
        mems=[Memory(MemoryType(Limits(1)))],
        elems=[ElemSegment(FUNCREF, [], SegmentMode.ACTIVE, 0, i32(2))],
        datas=[DataSegment(b"a", SegmentMode.ACTIVE, 0, i32(0))],
    )
    with pytest.raises(Trap) as info:
        run(Store(), module)
    assert info.value.code is TrapCode.TABLE_OUT_OF_BOUNDS
    assert str(info.value).startswith("out of bounds table access")


def test_start_function_runs_last():
    seen = []

    def factory(inst):
        def start():
            seen.append(inst.mems[0].read(0, 1))
        return start

    module = Module(
        types=[FuncType((), ())],
        funcs=[Function(0, [], [END])],
        mems=[Memory(MemoryType(Limits(1)))],
        datas=[DataSegment(b"s", SegmentMode.ACTIVE, 0, i32(0))],
        start=0,
    )
    run(Store(), module, factories=[factory])
    assert seen == [b"s"]


def import_module(kind, desc, types=()):
    return Module(types=list(types), imports=[Import("env", "x", kind, desc)])


def test_import_type_checks():
    store = Store()
    ft = FuncType((I32,), ())
    host = HostFunction(ft, lambda x: None)
    run(store, import_module(ExternKind.FUNC, 0, [ft]), [host])
    with pytest.raises(LinkError, match=r"^incompatible import type \(env\.x"):
        run(store, import_module(ExternKind.FUNC, 0, [FuncType((I64,), ())]), [host])
    with pytest.raises(LinkError, match="incompatible import type"):
        run(store, import_module(ExternKind.FUNC, 0, [ft]), [GlobalInstance(GlobalType(I32, False))])

    mem = MemoryInstance(MemoryType(Limits(2, 4)))
    for limits, ok in [(Limits(1), True), (Limits(2, 4), True), (Limits(1, 5), True),
                       (Limits(3), False), (Limits(1, 3), False)]:
        module = import_module(ExternKind.MEMORY, MemoryType(limits))
        if ok:
            run(store, module, [mem])
        else:
            with pytest.raises(LinkError, match="incompatible import type"):
                run(store, module, [mem])
    unbounded = MemoryInstance(MemoryType(Limits(1)))
    with pytest.raises(LinkError):
        run(store, import_module(ExternKind.MEMORY, MemoryType(Limits(1, 10))), [unbounded])
    # A grown memory satisfies a larger minimum.
    assert unbounded.grow(2) == 1
    run(store, import_module(ExternKind.MEMORY, MemoryType(Limits(3))), [unbounded])

    table = TableInstance(TableType(FUNCREF, Limits(3, 3)))
    run(store, import_module(ExternKind.TABLE, TableType(FUNCREF, Limits(2, 5))), [table])
    with pytest.raises(LinkError):
        run(store, import_module(ExternKind.TABLE, TableType(EXTERNREF, Limits(2))), [table])
    with pytest.raises(LinkError):
        run(store, import_module(ExternKind.TABLE, TableType(FUNCREF, Limits(4))), [table])

    g = GlobalInstance(GlobalType(I32, True), 1)
    run(store, import_module(ExternKind.GLOBAL, GlobalType(I32, True)), [g])
    with pytest.raises(LinkError):
        run(store, import_module(ExternKind.GLOBAL, GlobalType(I32, False)), [g])
    with pytest.raises(LinkError):
        run(store, import_module(ExternKind.GLOBAL, GlobalType(I64, True)), [g])
    with pytest.raises(LinkError, match="^unknown import"):
        run(store, import_module(ExternKind.GLOBAL, GlobalType(I32, True)), [])


def test_caller_is_bound_per_importing_instance():
    ft = FuncType((), (I32,))
    seen = []

    def host(caller):
        seen.append(caller)
        caller.memory.write(0, b"\x05")
        return caller.memory.load_u8(0)

    hf = HostFunction(ft, host, access_caller=True)
    module = Module(
        types=[ft],
        imports=[Import("env", "h", ExternKind.FUNC, 0)],
        mems=[Memory(MemoryType(Limits(1)))],
        exports=[Export("memory", ExternKind.MEMORY, 0), Export("h", ExternKind.FUNC, 0)],
    )
    store = Store(data="payload")
    a = run(store, module, [hf])
    b = run(store, module, [hf])
    assert a.funcs[0].call() == 5
    assert b.funcs[0].call() == 5
    assert seen[0].instance is a
    assert seen[1].instance is b
    assert seen[0].data == "payload"
    assert seen[0].get_export("memory") is a.mems[0]
    assert seen[0].get_export("missing") is None
    # Called outside any instance, the caller has no instance.
    assert HostFunction(FuncType((), ()), lambda c: seen.append(c), access_caller=True).call() is None
    assert seen[-1].instance is None
    assert seen[-1].memory is None


def test_store_limits_at_instantiation():
    store = Store()
    store.set_limits(memory_size=2 * PAGE_SIZE, table_elements=10, instances=2)
    with pytest.raises(ResourceLimitExceeded):
        run(store, Module(mems=[Memory(MemoryType(Limits(3)))]))
    with pytest.raises(ResourceLimitExceeded):
        run(store, Module(tables=[Table(TableType(FUNCREF, Limits(11)))]))
    inst = run(store, Module(mems=[Memory(MemoryType(Limits(1)))]))
    assert inst.mems[0].grow(1) == 1
    assert inst.mems[0].grow(1) == -1
    run(store, Module())
    with pytest.raises(ResourceLimitExceeded, match="instance count exceeds limit"):
        run(store, Module())


def test_deadline_sets_interrupt_cell():
    store = Store(Engine(Config(tier="python", epoch_interruption=True)))
    store.set_deadline(0.01)
    done = threading.Event()
    for _ in range(500):
        if store.interrupt_cell[0]:
            done.set()
            break
        threading.Event().wait(0.01)
    assert done.is_set()
    store.set_deadline(None)
    assert store.interrupt_cell[0] is False
    store.interrupt()
    assert store.interrupt_cell[0] is True
    store.clear_interrupt()
    assert store.interrupt_cell[0] is False


def test_caller_type():
    assert Caller(None, None).get("x") is None


def test_reservation_shrinks_under_address_space_limit():
    import subprocess
    import sys

    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from wasmtee.runtime import MemoryInstance\n"
        "from wasmtee.model import Limits, MemoryType\n"
        "m = MemoryInstance(MemoryType(Limits(1)))\n"
        "print(m.max_pages, m.grow(3), m.grow(m.max_pages))\n"
    )
    root = __file__.rsplit("/tests/", 1)[0]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    max_pages, grown, too_far = (int(x) for x in out.stdout.split())
    assert 4 <= max_pages < 65536
    assert grown == 1
    assert too_far == -1


# -- model-based checks ---------------------------------------------------------

from hypothesis import given, settings
from hypothesis import strategies as st

_MEMORY_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(-5, 3 * PAGE_SIZE), st.binary(max_size=40)),
        st.tuples(st.just("read"), st.integers(-5, 3 * PAGE_SIZE), st.integers(0, 40)),
        st.tuples(st.just("grow"), st.integers(0, 2), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_MEMORY_OPS)
def test_memory_matches_bytearray_model(ops):
    mem = MemoryInstance(MemoryType(Limits(1, 3)))
    model = bytearray(PAGE_SIZE)
    try:
        for kind, address, arg in ops:
            if kind == "grow":
                expected = len(model) // PAGE_SIZE if len(model) // PAGE_SIZE + address <= 3 else -1
                assert mem.grow(address) == expected
                if expected >= 0:
                    model.extend(bytes(address * PAGE_SIZE))
                continue
            length = len(arg) if kind == "write" else arg
            in_bounds = 0 <= address and address + length <= len(model)
            if kind == "write":
                if in_bounds:
                    mem.write(address, arg)
                    model[address:address + length] = arg
                else:
                    with pytest.raises(Trap):
                        mem.write(address, arg)
            elif in_bounds:
                assert mem.read(address, length) == bytes(model[address:address + length])
            else:
                with pytest.raises(Trap):
                    mem.read(address, length)
        assert mem.size == len(model)
        assert mem.read(0, len(model)) == bytes(model)
    finally:
        mem.close()


_TABLE_OPS = st.lists(
    st.tuples(
        st.sampled_from(["set", "grow", "fill", "copy", "init"]),
        st.integers(-1, 12),
        st.integers(-1, 12),
        st.integers(0, 6),
    ),
    max_size=30,
)


@settings(max_examples=80, deadline=None)
@given(_TABLE_OPS)
def test_table_matches_list_model(ops):
    table = TableInstance(TableType(EXTERNREF, Limits(4, 10)))
    model: list = [None] * 4
    segment = ["s0", "s1", "s2", "s3"]
    for step, (kind, a, b, n) in enumerate(ops):
        value = f"v{step}"
        if kind == "grow":
            expected = len(model) if len(model) + n <= 10 else -1
            assert table.grow(n, value) == expected
            if expected >= 0:
                model.extend([value] * n)
            continue
        _apply_table_op(table, model, segment, kind, a, b, n, value)
        assert table.elements == model


def _apply_table_op(table, model, segment, kind, a, b, n, value):
    """Apply one table operation to `table` and, when in bounds, to `model`."""
    if kind == "set":
        ok = 0 <= a < len(model)
        action = lambda: table.set(a, value)
        new = [value]
        start = a
    elif kind == "fill":
        ok = 0 <= a and a + n <= len(model)
        action = lambda: table.fill(a, value, n)
        new = [value] * n
        start = a
    elif kind == "copy":
        ok = 0 <= a and a + n <= len(model) and 0 <= b and b + n <= len(model)
        action = lambda: table.copy(a, table, b, n)
        new = model[b:b + n] if ok else []
        start = a
    else:
        ok = 0 <= a and a + n <= len(model) and 0 <= b and b + n <= len(segment)
        action = lambda: table.init(a, segment, b, n)
        new = segment[b:b + n] if ok else []
        start = a
    if not ok:
        with pytest.raises(Trap) as info:
            action()
        assert info.value.code is TrapCode.TABLE_OUT_OF_BOUNDS
        return
    action()
    model[start:start + len(new)] = new


# -- grow failures, closing, and store ownership --------------------------------------


def test_memory_grow_failure_names_the_maximum():
    declared = MemoryInstance(MemoryType(Limits(1, 3)))
    assert declared.grow(5) == -1
    assert declared.grow_failure(5) == (
        "cannot grow memory from 1 to 6 pages: its declared maximum is 3 pages"
    )
    limited = MemoryInstance(MemoryType(Limits(1, 10)), limit_pages=2)
    assert limited.grow(2) == -1
    assert limited.grow_failure(2) == (
        "cannot grow memory from 1 to 3 pages: the store's memory limit is 2 pages"
    )
    unbounded = MemoryInstance(MemoryType(Limits(0)))
    assert unbounded.grow(65537) == -1
    assert unbounded.grow_failure(65537) == (
        "cannot grow memory from 0 to 65537 pages: a 32-bit memory has at most 65536 pages"
    )
    declared.close()
    assert declared.grow(1) == -1
    assert declared.grow_failure(1) == "cannot grow memory: the memory is closed"
    limited.close()
    unbounded.close()


def test_table_grow_failure_names_the_maximum():
    declared = TableInstance(TableType(FUNCREF, Limits(1, 2)))
    assert declared.grow(3) == -1
    assert declared.grow_failure(3) == (
        "cannot grow table from 1 to 4 elements: its declared maximum is 2 elements"
    )
    limited = TableInstance(TableType(FUNCREF, Limits(0)), limit_elements=5)
    assert limited.grow(6) == -1
    assert limited.grow_failure(6) == (
        "cannot grow table from 0 to 6 elements: the store's table limit is 5 elements"
    )


def test_memory_close_runs_resize_callbacks_once():
    mem = MemoryInstance(MemoryType(Limits(2, 4)))
    seen = []
    mem.on_resize.append(lambda memory, old: seen.append((old, memory.size, memory.closed)))
    assert mem.grow(1) == 2
    assert mem.grow(0) == 3
    mem.close()
    mem.close()
    assert seen == [(2, 3 * PAGE_SIZE, False), (3, 0, True)]


def test_closed_memory_host_helpers_trap():
    mem = MemoryInstance(MemoryType(Limits(1)))
    mem.close()
    assert mem.closed
    for action in (
        lambda: mem.read(0, 0),
        lambda: mem.write(0, b""),
        lambda: mem.read_cstring(0),
        lambda: mem.view(0, 0),
        lambda: mem.load_u32(0),
    ):
        with pytest.raises(Trap, match="the memory is closed") as info:
            action()
        assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS


def test_closed_memory_with_live_view_reports_closed():
    mem = MemoryInstance(MemoryType(Limits(1)))
    view = mem.view(0, 4)
    mem.close()
    # The live view keeps the mapping, but the memory still counts as closed.
    assert mem.closed
    with pytest.raises(UsageError, match="memory is closed"):
        mem.address  # noqa: B018
    view.release()


def test_store_records_owner_of_every_extern():
    store = Store()
    ft = FuncType((), (I32,))
    module = Module(
        types=[ft],
        funcs=[Function(0, (), i32(1))],
        mems=[Memory(MemoryType(Limits(1)))],
        tables=[Table(TableType(FUNCREF, Limits(1)))],
        globals=[Global(GlobalType(I32, False), i32(3))],
    )
    instance = run(store, module, factories=[lambda inst: (lambda: 1)])
    assert instance.funcs[0].store is store
    assert instance.mems[0].store is store
    assert instance.tables[0].store is store
    assert instance.globals[0].store is store
    assert HostFunction(ft, lambda: 1).store is None
    bound = HostFunction(ft, lambda caller: 1, access_caller=True).bind(Caller(instance, store))
    assert bound.store is store


def test_instantiate_rejects_imports_of_another_store():
    first, second = Store(), Store()
    memory = first.new_memory(MemoryInstance(MemoryType(Limits(1))))
    table = first.new_table(TableInstance(TableType(FUNCREF, Limits(1))))
    glob = first.new_global(GlobalInstance(GlobalType(I32, False), 1))
    ft = FuncType((), ())
    host = HostFunction(ft, lambda: None, store=first)
    cases = [
        (import_module(ExternKind.MEMORY, MemoryType(Limits(1))), memory, "memory"),
        (import_module(ExternKind.TABLE, TableType(FUNCREF, Limits(1))), table, "table"),
        (import_module(ExternKind.GLOBAL, GlobalType(I32, False)), glob, "global"),
        (import_module(ExternKind.FUNC, 0, [ft]), host, "func"),
    ]
    for module, item, kind in cases:
        with pytest.raises(UsageError, match=rf"^import env\.x \({kind}\) belongs to a different store"):
            run(second, module, [item])
        run(first, module, [item])
    # A host function without a store fits every store.
    run(second, import_module(ExternKind.FUNC, 0, [ft]), [HostFunction(ft, lambda: None)])


def test_store_close_disables_instance_functions():
    store = Store()
    ft = FuncType((), (I32,))
    module = Module(
        types=[ft],
        funcs=[Function(0, (), i32(1))],
        mems=[Memory(MemoryType(Limits(1)))],
        exports=[Export("f", ExternKind.FUNC, 0)],
    )
    instance = run(store, module, factories=[lambda inst: (lambda: 7)])
    released = []
    instance.release_hooks.append(lambda: released.append(True))
    assert instance.funcs[0].call() == 7
    store.close()
    assert store.closed
    assert released == [True]
    assert instance.mems[0].closed
    with pytest.raises(UsageError, match="store is closed"):
        instance.funcs[0].call()
    with pytest.raises(UsageError, match="store is closed"):
        run(store, Module())
    with pytest.raises(UsageError, match="store is closed"):
        store.new_memory(MemoryInstance(MemoryType(Limits(1))))
    store.close()


def test_host_function_that_closes_its_store_raises():
    store = Store()
    host = HostFunction(FuncType((), (I32,)), lambda: store.close() or 5, name="closer", store=store)
    with pytest.raises(UsageError, match="^closer closed its store"):
        host.call()
    with pytest.raises(UsageError, match="store is closed"):
        host.call()
    free = HostFunction(FuncType((), (I32,)), lambda: 5)
    assert free.call() == 5


def test_memory_pin_delays_unmap_until_unpin():
    mem = MemoryInstance(MemoryType(Limits(1)))
    mem.write(0, b"\x07")
    pin = mem.pin()
    assert pin is not None
    mem.close()
    # Still mapped: the pages read as zeros instead of faulting.
    assert not mem.buf.closed
    assert pin[0] == 0
    mem.unpin(pin)
    assert mem.buf.closed
    assert mem.pin() is None
