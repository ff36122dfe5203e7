"""Resource limits seen from the embedding API: fuel, memory, call depth, interruption."""

from __future__ import annotations

import threading
import time

import pytest

from wasmtee import (
    Config,
    Engine,
    Instance,
    Module,
    ResourceLimitExceeded,
    Store,
    Trap,
    TrapCode,
    UsageError,
)
from wasmtee.runtime.tiers import available_tiers

TIERS = [t for t in ("python", "llvm") if t in available_tiers()]

LOOP = """
(module
  (func (export "count") (param $n i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
  (func (export "forever") (loop $l (br $l))))
"""

RECURSE = """
(module
  (func $down (export "down") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1)))))))
  (func $runaway (export "runaway") (call $runaway)))
"""


@pytest.fixture(params=TIERS)
def tier(request):
    return request.param


def instance(engine, wat, store=None):
    store = store or Store(engine)
    return store, Instance(store, Module(engine, wat), []).exports(store)


def test_fuel_exhaustion_and_refill(tier):
    engine = Engine(Config(tier=tier, consume_fuel=True))
    store, ex = instance(engine, LOOP)
    assert store.get_fuel() == 0
    with pytest.raises(Trap) as info:
        ex["count"](store, 10)
    assert info.value.code is TrapCode.OUT_OF_FUEL
    assert str(info.value).startswith("all fuel consumed")

    store.set_fuel(100_000)
    assert ex["count"](store, 100) == 100
    after_one = store.get_fuel()
    assert 0 < after_one < 100_000
    # Fuel persists across calls: a second, equal call uses about as much again.
    assert ex["count"](store, 100) == 100
    used = 100_000 - after_one
    assert store.get_fuel() == pytest.approx(after_one - used, abs=used // 10 + 2)
    # A long loop runs out part way, and refilling lets it run again.
    with pytest.raises(Trap) as info:
        ex["count"](store, 10_000_000)
    assert info.value.code is TrapCode.OUT_OF_FUEL
    assert store.get_fuel() == 0
    store.set_fuel(1_000_000)
    assert ex["count"](store, 1000) == 1000
    with pytest.raises(Trap) as info:
        ex["forever"](store)
    assert info.value.code is TrapCode.OUT_OF_FUEL


def test_fuel_requires_config():
    store = Store(Engine(Config(tier="python")))
    with pytest.raises(UsageError, match="fuel is not enabled"):
        store.set_fuel(10)
    with pytest.raises(UsageError):
        store.get_fuel()
    fuel_store = Store(Engine(Config(tier="python", consume_fuel=True)))
    with pytest.raises(UsageError):
        fuel_store.set_fuel(-1)


def test_memory_limit(tier):
    engine = Engine(Config(tier=tier))
    store = Store(engine)
    store.set_limits(memory_size=3 * 65536)
    store, ex = instance(engine, """
      (module (memory (export "m") 1)
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))""", store)
    assert ex["grow"](store, 1) == 1
    assert ex["grow"](store, 2) == -1
    assert ex["grow"](store, 1) == 2
    assert ex["grow"](store, 1) == -1
    assert ex["m"].size(store) == 3
    with pytest.raises(ResourceLimitExceeded, match="memory size exceeds limit"):
        Instance(store, Module(engine, "(module (memory 4))"), [])
    store.set_limits(instances=0)
    with pytest.raises(ResourceLimitExceeded, match="instance count exceeds limit"):
        Instance(store, Module(engine, "(module)"), [])
    with pytest.raises(UsageError):
        store.set_limits(memory_size=-1)


def test_table_limit(tier):
    engine = Engine(Config(tier=tier))
    store = Store(engine)
    store.set_limits(table_elements=5)
    store, ex = instance(engine, """
      (module (table (export "t") 2 funcref)
        (func (export "grow") (param i32) (result i32) (table.grow (ref.null func) (local.get 0))))""",
        store)
    assert ex["grow"](store, 4) == -1
    assert ex["grow"](store, 3) == 2
    with pytest.raises(ResourceLimitExceeded):
        Instance(store, Module(engine, "(module (table 6 funcref))"), [])


def guarded_store(engine):
    """Return a store whose deadline turns a hang into an INTERRUPTED trap, so the test fails."""
    store = Store(engine)
    store.set_deadline(20)
    return store


def test_deep_recursion_exhausts_stack(tier):
    engine = Engine(Config(tier=tier, max_call_depth=500, epoch_interruption=True))
    store, ex = instance(engine, RECURSE, guarded_store(engine))
    assert ex["down"](store, 400) == 400
    with pytest.raises(Trap) as info:
        ex["down"](store, 5000)
    assert info.value.code is TrapCode.STACK_EXHAUSTED
    assert str(info.value).startswith("call stack exhausted")
    with pytest.raises(Trap) as info:
        ex["runaway"](store)
    assert info.value.code is TrapCode.STACK_EXHAUSTED
    # The store still works after the exhaustion.
    assert ex["down"](store, 10) == 10


def test_default_depth_never_raises_recursion_error(tier):
    engine = Engine(Config(tier=tier, epoch_interruption=True))
    store, ex = instance(engine, RECURSE, guarded_store(engine))
    with pytest.raises(Trap) as info:
        ex["runaway"](store)
    assert info.value.code is TrapCode.STACK_EXHAUSTED
    assert ex["down"](store, 2000) == 2000


def test_interrupt_from_another_thread(tier):
    engine = Engine(Config(tier=tier, epoch_interruption=True))
    store, ex = instance(engine, LOOP)
    timer = threading.Timer(0.2, store.interrupt)
    timer.start()
    started = time.monotonic()
    with pytest.raises(Trap) as info:
        ex["forever"](store)
    assert info.value.code is TrapCode.INTERRUPTED
    assert time.monotonic() - started < 10
    timer.join()
    # The interrupt stays set until cleared.
    with pytest.raises(Trap):
        ex["count"](store, 5)
    store.clear_interrupt()
    assert ex["count"](store, 5) == 5


def test_deadline_interrupts_start_function(tier):
    engine = Engine(Config(tier=tier, epoch_interruption=True))
    store = Store(engine)
    module = Module(engine, "(module (func $spin (loop $l (br $l))) (start $spin))")
    store.set_deadline(0.2)
    with pytest.raises(Trap) as info:
        Instance(store, module, [])
    assert info.value.code is TrapCode.INTERRUPTED
    store.set_deadline(30)
    store2, ex = instance(engine, LOOP, store)
    assert ex["count"](store2, 10) == 10
    store.set_deadline(None)


def test_interrupt_requires_config():
    store = Store(Engine(Config(tier="python")))
    with pytest.raises(UsageError, match="interruption is not enabled"):
        store.interrupt()
    with pytest.raises(UsageError):
        store.set_deadline(1)


def test_large_frames_recursion_bounded(tier):
    # 50000 i64 locals: 10000 such frames would hold about 4 GB on the python tier.
    locals_ = " ".join(["i64"] * 50_000)
    engine = Engine(Config(tier=tier, epoch_interruption=True))
    wat = f'(module (func $f (export "f") (local {locals_}) call $f))'
    store, ex = instance(engine, wat, guarded_store(engine))
    started = time.monotonic()
    with pytest.raises(Trap) as info:
        ex["f"](store)
    assert info.value.code is TrapCode.STACK_EXHAUSTED
    assert time.monotonic() - started < 15


def test_large_frames_still_recurse(tier):
    from wasmtee.pytier.translate import MAX_FRAME_SLOTS

    # A function with 300 locals counts its frame; it may still recurse deeply,
    # and the count returns to zero after a trap.
    locals_ = " ".join(["i32"] * 300)
    wat = f"""(module
      (func $down (export "down") (param i32) (result i32) (local {locals_})
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
          (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1))))))))"""
    engine = Engine(Config(tier=tier, epoch_interruption=True))
    store, ex = instance(engine, wat, guarded_store(engine))
    assert ex["down"](store, 5000) == 5000
    with pytest.raises(Trap) as info:
        ex["down"](store, MAX_FRAME_SLOTS)
    assert info.value.code is TrapCode.STACK_EXHAUSTED
    for _ in range(3):
        assert ex["down"](store, 5000) == 5000


def test_memory_fill_in_chunks(tier, monkeypatch):
    from wasmtee.pytier import runtime

    # A small chunk makes the fill take several steps, with a short last one.
    monkeypatch.setattr(runtime, "_FILL_CHUNK", 1000)
    engine = Engine(Config(tier=tier))
    wat = """(module (memory (export "mem") 1)
      (func (export "fill") (param i32 i32 i32) local.get 0 local.get 1 local.get 2 memory.fill))"""
    store, ex = instance(engine, wat)
    ex["fill"](store, 7, 0x1AB, 2500)
    data = ex["mem"].read(store, 0, 2600)
    assert data[:7] == bytes(7)
    assert data[7:2507] == b"\xab" * 2500
    assert data[2507:] == bytes(93)
    with pytest.raises(Trap) as info:
        ex["fill"](store, 65000, 1, 1000)
    assert info.value.code is TrapCode.MEMORY_OUT_OF_BOUNDS
