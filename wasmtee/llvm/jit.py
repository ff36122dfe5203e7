"""The LLVM tier: compiles lowered IR with llvmlite's MCJIT and runs it in process.

Ownership: one `CompiledModule` owns one MCJIT execution engine (and through it
the LLVM module and the machine code). Each instance gets its own `Context`
block, global cells and ctypes callbacks; these stay alive as long as the
function instances that `make_functions` returns.

Every call from Python enters native code through the entry trampoline of its
type, `@entry<type id>`, which sets a jump buffer; a trap longjmps back to it
and the trampoline returns the trap number. Host calls from native code go through ctypes callbacks, and
an exception raised there is kept and raised again once native code has
returned, so no Python frame is ever unwound by longjmp.

The context caches memory 0's base pointer and size. `sync_memory` refreshes
both at every entry and callback return, and from the memory's `on_resize`
callback, so a grow or close by any party updates them at once. A closed
memory has size 0, so every access traps before it dereferences the base,
and the base stays mapped while native code runs (see `enter`).
When the store closes, `release` makes the runtime callbacks raise
UsageError, so native code that is still running traps at its next call.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import sys
import threading
import time
import weakref
from typing import Any, Callable, Iterator

from wasmtee.errors import (
    CompileError, Frame, InternalError, Trap, TrapCode, UsageError, WasmteeError,
)
from wasmtee.llvm import aot, lower
from wasmtee.runtime.config import DEFAULT_MAX_CALL_DEPTH
from wasmtee.runtime.table import uninitialized_element
from wasmtee.model import ExternKind, FuncType, Module, ValType
from wasmtee.values import f32_from_bits, f32_to_bits, f64_from_bits, f64_to_bits

log = logging.getLogger(__name__)

_llvm_lock = threading.RLock()
_initialized = False

RT_CALL_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p)
RT_OP_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_int64,
    ctypes.c_int64, ctypes.c_void_p,
)
ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

# Native stack that wasm code may use below the outermost entry, in bytes,
# where the thread's stack bounds are unknown (see `stack_bounds`). Level 0
# and 1 code has large frames: CPython's interpreter loop takes 72 KB per call
# at level 1 (10 KB at level 2), so 4 MB allow about 50 nested interpreter
# calls. The other half of the stack stays for the Python frames above the
# entry and for host functions that wasm calls.
DEFAULT_STACK_BUDGET = 4 * 1024 * 1024


def _initialize_llvm() -> Any:
    """Initialize llvmlite once and register the libc symbols that the IR uses."""
    global _initialized
    import llvmlite.binding as llvm

    with _llvm_lock:
        if not _initialized:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            libc = ctypes.CDLL(None)
            for name in ("_setjmp", "longjmp"):
                address = ctypes.cast(getattr(libc, name), ctypes.c_void_p).value
                llvm.add_symbol(name, address)
            _initialized = True
    return llvm


def stack_budget() -> int:
    """Return how much native stack wasm code may use on the current thread."""
    if threading.current_thread() is threading.main_thread():
        soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
        size = soft if soft > 0 else 8 * 1024 * 1024
    else:
        size = threading.stack_size() or 8 * 1024 * 1024
    return min(DEFAULT_STACK_BUDGET, size // 2)


# Native stack kept free below wasm code when the thread's stack bounds are
# known: room for host functions that wasm calls, and for the frame that a
# function reserves before its entry check. At most half of a small stack.
STACK_RESERVE = 1024 * 1024

_thread_stacks = threading.local()


def stack_bounds() -> tuple[int, int]:
    """Return (floor, top) for the current thread's stack: wasm code may use it down to floor.

    Returns (0, 0) where glibc's pthread_getattr_np is unavailable, and the
    entry trampoline then falls back to `stack_budget`.
    """
    bounds = getattr(_thread_stacks, "bounds", None)
    if bounds is None:
        bounds = _query_stack_bounds()
        _thread_stacks.bounds = bounds
    return bounds


def _query_stack_bounds() -> tuple[int, int]:
    try:
        libc = ctypes.CDLL(None)
        get_attributes = libc.pthread_getattr_np
        get_stack = libc.pthread_attr_getstack
        destroy = libc.pthread_attr_destroy
        this_thread = libc.pthread_self
    except (AttributeError, OSError):
        return 0, 0
    this_thread.restype = ctypes.c_ulong
    get_attributes.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
    get_stack.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
    destroy.argtypes = [ctypes.c_void_p]
    # pthread_attr_t is 56 bytes on 64-bit glibc; the buffer leaves room.
    attributes = ctypes.create_string_buffer(256)
    if get_attributes(this_thread(), attributes) != 0:
        return 0, 0
    try:
        low = ctypes.c_void_p()
        size = ctypes.c_size_t()
        if get_stack(attributes, ctypes.byref(low), ctypes.byref(size)) != 0 or not low.value:
            return 0, 0
    finally:
        destroy(attributes)
    reserve = min(STACK_RESERVE, size.value // 2)
    return low.value + reserve, low.value + size.value


# Largest fuel that the signed i64 fuel field of Context holds.
NATIVE_FUEL_MAX = 2**63 - 1


class Context(ctypes.Structure):
    """The per-instance block that native code reaches through `%ctx`."""

    _fields_ = [
        ("jmpbuf", ctypes.c_void_p),
        ("mem_base", ctypes.c_void_p),
        ("mem_size", ctypes.c_uint64),
        ("fuel", ctypes.c_int64),
        ("interrupt", ctypes.c_int64),
        ("depth", ctypes.c_uint64),
        ("max_depth", ctypes.c_uint64),
        ("trap_code", ctypes.c_int64),
        ("globals", ctypes.c_void_p),
        ("stack_limit", ctypes.c_uint64),
        ("rt_call", ctypes.c_void_p),
        ("rt_op", ctypes.c_void_p),
        ("stack_budget", ctypes.c_uint64),
        ("tables", ctypes.c_void_p),
        ("stack_floor", ctypes.c_uint64),
        ("stack_top", ctypes.c_uint64),
        ("trap_function", ctypes.c_int64),
    ]


class TableDescriptor(ctypes.Structure):
    """One table's native mirror as native code sees it (see lower.TABLE_DESCRIPTOR_SIZE)."""

    _fields_ = [("entries", ctypes.c_void_p), ("size", ctypes.c_uint64)]


class TableEntry(ctypes.Structure):
    """One mirrored table element (see lower.TABLE_ENTRY_SIZE)."""

    _fields_ = [("type_id", ctypes.c_int64), ("code", ctypes.c_void_p), ("unused", ctypes.c_void_p)]


assert ctypes.sizeof(Context) == lower.CTX_SIZE
assert ctypes.sizeof(TableDescriptor) == lower.TABLE_DESCRIPTOR_SIZE
assert ctypes.sizeof(TableEntry) == lower.TABLE_ENTRY_SIZE


def to_slot(val_type: ValType, value: Any, refs: ReferenceTable) -> int:
    """Encode a raw value into a 64-bit slot as native code stores it."""
    if val_type is ValType.I32 or val_type is ValType.I64:
        return value
    if val_type is ValType.F32:
        return f32_to_bits(value)
    if val_type is ValType.F64:
        return f64_to_bits(value)
    return refs.handle(value)


def from_slot(val_type: ValType, slot: int, refs: ReferenceTable) -> Any:
    if val_type is ValType.I32:
        return slot & 0xFFFF_FFFF
    if val_type is ValType.I64:
        return slot
    if val_type is ValType.F32:
        return f32_from_bits(slot & 0xFFFF_FFFF)
    if val_type is ValType.F64:
        return f64_from_bits(slot)
    return refs.object(slot)


class ReferenceTable:
    """Maps references (function instances, host objects) to nonzero i64 handles."""

    def __init__(self) -> None:
        self._objects: dict[int, Any] = {}

    def handle(self, obj: Any) -> int:
        if obj is None:
            return 0
        key = id(obj)
        # TODO: handles keep their objects alive for the life of the process.
        self._objects[key] = obj
        return key

    def object(self, handle: int) -> Any:
        if handle == 0:
            return None
        try:
            return self._objects[handle]
        except KeyError:
            raise InternalError(f"unknown reference handle 0x{handle:x}") from None


REFERENCES = ReferenceTable()


# Wasm instructions per LLVM module when compiling; each chunk is one progress
# step. Chunks keep LLVM's memory use bounded and let workers share the work.
CHUNK_INSTRUCTIONS = 40_000
# Smaller modules compile in this process, because starting a worker costs
# about as much as compiling a few thousand instructions.
MIN_CHUNKS_FOR_WORKERS = 3

# Opt levels: 0 runs no IR passes and 1 runs FAST_PASSES, and both use LLVM's
# -O0 code generator (FastISel and the fast register allocator). 2 and 3 run
# LLVM's default -O2 and -O3 pipelines and code generators. SROA alone turns
# the locals' allocas into SSA values. Adding instcombine and simplifycfg
# doubled the compile time of graphviz.wasm and gained little speed on the
# bench/ programs, so level 1 leaves them out.
FAST_PASSES = ("sroa",)
FAST_OPT_LEVEL = 1
DEFAULT_OPT_LEVEL = 2

# Modules with more wasm instructions than this compile at FAST_OPT_LEVEL
# unless a level is requested. Measured on graphviz.wasm on one 2-core x86-64
# machine: level 2 compiled about 5,000 instructions per second of CPU, and
# level 1 about nine times as many.
LARGE_MODULE_INSTRUCTIONS = 50_000


def target_machine(opt_level: int, cpu: str | None = None) -> Any:
    llvm = _initialize_llvm()
    target = llvm.Target.from_default_triple()
    cpu_name = cpu or llvm.get_host_cpu_name()
    features = llvm.get_host_cpu_features().flatten() if cpu is None else ""
    codegen_level = opt_level if opt_level > FAST_OPT_LEVEL else 0
    return target.create_target_machine(
        cpu=cpu_name, features=features, opt=codegen_level, reloc="pic", codemodel="default"
    )


# LLVM's fixed cost per function, in wasm instructions, for sizing opt levels
# and chunks. An estimate: on one 2-core x86-64 machine at load 2.5, level 2
# took about 1.2 ms for an empty function and about 0.2 ms per instruction.
FUNCTION_COST_INSTRUCTIONS = 6


def code_size(module: Module) -> int:
    """Return the number of wasm instructions in the module's defined functions."""
    return sum(len(func.body) for func in module.funcs)


def compile_cost(module: Module, shared_code: dict[int, int] | None = None) -> int:
    """Return the compile work of the module's defined functions, in instructions.

    It adds FUNCTION_COST_INSTRUCTIONS per function and leaves out functions
    that share another's code (see `lower.find_shared_code`).
    """
    shared = len(shared_code) if shared_code else 0
    return code_size(module) + FUNCTION_COST_INSTRUCTIONS * (len(module.funcs) - shared)


def choose_opt_level(module: Module, requested: int | None) -> int:
    """Return `requested`, or for None the default level for a module of this size."""
    if requested is not None:
        if requested not in (0, 1, 2, 3):
            raise CompileError(f"invalid LLVM opt level {requested!r} (expected 0, 1, 2 or 3)")
        return requested
    size = compile_cost(module)
    if size > LARGE_MODULE_INSTRUCTIONS:
        log.info("using opt level %d for a large module (compile cost of %d wasm instructions)",
                 FAST_OPT_LEVEL, size)
        return FAST_OPT_LEVEL
    return DEFAULT_OPT_LEVEL


def plan_chunks(module: Module, first_defined: int,
                shared_code: dict[int, int] | None = None) -> list[list[int]]:
    """Split the defined functions into runs of about CHUNK_INSTRUCTIONS of compile cost.

    Functions in `shared_code` are left out, because they get no code of their own.
    """
    shared_code = shared_code or {}
    chunks: list[list[int]] = [[]]
    size = 0
    for offset, func in enumerate(module.funcs):
        func_index = first_defined + offset
        if func_index in shared_code:
            continue
        cost = len(func.body) + FUNCTION_COST_INSTRUCTIONS
        if chunks[-1] and size + cost > CHUNK_INSTRUCTIONS:
            chunks.append([])
            size = 0
        chunks[-1].append(func_index)
        size += cost
    return chunks


def optimize(llvm: Any, llvm_module: Any, machine: Any, opt_level: int) -> None:
    if opt_level == 0:
        return
    if opt_level == FAST_OPT_LEVEL:
        manager = llvm.create_new_module_pass_manager()
        for name in FAST_PASSES:
            getattr(manager, f"add_{name}_pass")()
        builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=1))
        manager.run(llvm_module, builder)
        return
    tuning = llvm.create_pipeline_tuning_options(speed_level=opt_level)
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(llvm_module, builder)


def compile_ir(ir: str, opt_level: int, cpu: str | None = None) -> bytes:
    """Parse, verify, optimise and compile one chunk's IR text to an object file."""
    llvm = _initialize_llvm()
    machine = target_machine(opt_level, cpu)
    with _llvm_lock:
        try:
            llvm_module = llvm.parse_assembly(ir)
            llvm_module.verify()
        except RuntimeError as exc:
            raise CompileError(f"LLVM rejected the generated IR: {exc}") from None
        optimize(llvm, llvm_module, machine, opt_level)
        return bytes(machine.emit_object(llvm_module))


def compile_objects(
    module: Module,
    func_types: list[FuncType],
    options: lower.Options,
    opt_level: int = DEFAULT_OPT_LEVEL,
    cpu: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> list[bytes]:
    """Compile every defined function to native object files, one per chunk.

    With `workers` None, modules of at least MIN_CHUNKS_FOR_WORKERS chunks
    compile in `workers.default_worker_count()` child processes. Set it to 0
    to compile in this process.
    """
    from wasmtee.llvm import workers as worker_pool

    lowering = lower.ModuleLowering(module, func_types, options)
    chunks = plan_chunks(module, lowering.num_imported_funcs, lowering.shared_code)
    irs = (lowering.module_ir(chunk, entries=index == 0) for index, chunk in enumerate(chunks))
    if workers is None:
        workers = worker_pool.default_worker_count() if len(chunks) >= MIN_CHUNKS_FOR_WORKERS else 0
    if workers > 1 and len(chunks) > 1:
        try:
            return worker_pool.compile_in_workers(irs, len(chunks), opt_level, cpu, workers, progress)
        except (OSError, worker_pool.WorkerUnavailable) as exc:
            log.warning("compiling in this process: LLVM worker processes are unavailable (%s)", exc)
            irs = (lowering.module_ir(chunk, entries=index == 0) for index, chunk in enumerate(chunks))
    objects = []
    for done, ir in enumerate(irs, start=1):
        objects.append(compile_ir(ir, opt_level, cpu))
        if progress is not None:
            progress(done, len(chunks))
    return objects


class CompiledModule:
    """Machine code for one module, shared by all of its instances."""

    def __init__(self, module: Module, func_types: list[FuncType], options: lower.Options,
                 objects: list[bytes]) -> None:
        self.module = module
        self.func_types = func_types
        self.options = options
        self.objects = objects
        self.num_imported_funcs = len(module.imports_of(ExternKind.FUNC))
        llvm = _initialize_llvm()
        with _llvm_lock:
            machine = target_machine(0)
            self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
            for code in objects:
                self.engine.add_object_file(llvm.ObjectFileRef.from_data(code))
            self.engine.finalize_object()
            self.type_ids = lower.canonical_type_ids(func_types, module.types)
            # Entry trampolines by type id, and the addresses of the `@f<index>` bodies.
            self.entries: dict[int, Any] = {}
            self.code_addresses: dict[int, int] = {}
            for type_id in self.type_ids.values():
                address = self.engine.get_function_address(f"entry{type_id}")
                if not address:
                    raise CompileError(f"native entry trampoline {type_id} is missing")
                self.entries[type_id] = ENTRY_TYPE(address)
            shared_code = lower.find_shared_code(module, func_types, self.num_imported_funcs)
            # Code that several functions share cannot name the one that trapped.
            self.shared_bodies = set(shared_code.values())
            for index in range(self.num_imported_funcs, len(func_types)):
                original = shared_code.get(index)
                if original is not None:
                    self.code_addresses[index] = self.code_addresses[original]
                    continue
                code = self.engine.get_function_address(f"f{index}")
                if not code:
                    raise CompileError(f"native code for function {index} is missing")
                self.code_addresses[index] = code
        log.info("loaded native code for %d functions", len(self.entries))

    def make_functions(self, instance: Any) -> list[Any]:
        native = NativeInstance(self, instance)
        return native.functions


class NativeInstance:
    """The native-side state of one module instance: context, cells, callbacks."""

    def __init__(self, compiled: CompiledModule, instance: Any) -> None:
        from wasmtee.runtime.func import FunctionInstance

        self.compiled = compiled
        self.instance = instance
        self.store = instance.store
        self.released = False
        self.pending: BaseException | None = None
        self.context = Context()
        # Fuel above NATIVE_FUEL_MAX that sync_to_native kept out of the context.
        self.held_fuel = 0
        self.context_address = ctypes.addressof(self.context)
        self.rt_call_callback = RT_CALL_TYPE(self._rt_call)
        self.rt_op_callback = RT_OP_TYPE(self._rt_op)
        self.context.rt_call = ctypes.cast(self.rt_call_callback, ctypes.c_void_p).value
        self.context.rt_op = ctypes.cast(self.rt_op_callback, ctypes.c_void_p).value
        self.context.max_depth = getattr(self.store, "max_call_depth", 10_000)
        native_contexts = getattr(self.store.interrupt_cell, "native_contexts", None)
        if native_contexts is not None:
            native_contexts.add(self)
        self.global_types: list[ValType] = list(
            imp.desc.val_type for imp in compiled.module.imports_of(ExternKind.GLOBAL)  # type: ignore[union-attr]
        ) + [g.type.val_type for g in compiled.module.globals]
        self.cells = (ctypes.c_uint64 * max(1, len(self.global_types)))()
        self.cell_pointers = (ctypes.c_void_p * max(1, len(self.global_types)))()
        base = ctypes.addressof(self.cells)
        for index in range(len(self.global_types)):
            self.cell_pointers[index] = base + 8 * index
        self.context.globals = ctypes.addressof(self.cell_pointers)
        table_count = len(module_tables(compiled.module))
        # Sizes stay 0 until the first entry builds the mirror, so every
        # call_indirect before that takes the runtime path.
        self.table_descriptors = (TableDescriptor * max(1, table_count))()
        self.table_entries: list[Any] = [None] * table_count
        self.mirrored_tables: list[Any] = []
        self.context.tables = ctypes.addressof(self.table_descriptors)
        self.functions = []
        # id(function) -> function index, for the functions of this instance.
        self.own_functions: dict[int, int] = {}
        module = compiled.module
        for func_index in range(compiled.num_imported_funcs, len(compiled.func_types)):
            func_type = compiled.func_types[func_index]
            name = module.func_name(func_index)
            function = FunctionInstance(
                func_type, name, self._make_call(func_index, func_type), instance, func_index
            )
            self.functions.append(function)
            self.own_functions[id(function)] = func_index
        self.watch_memory()
        instance.release_hooks.append(self.release)

    def watch_memory(self) -> None:
        """Refresh the context whenever memory 0 grows or closes, whoever grows or closes it."""
        if not self.instance.mems:
            return
        reference = weakref.ref(self)

        def on_resize(memory: Any, _old_pages: int) -> None:
            native = reference()
            if native is not None:
                native.sync_memory(memory)

        self.instance.mems[0].on_resize.append(on_resize)

    def sync_memory(self, memory: Any) -> None:
        # Only the size changes for a closed memory. Native code in another thread may
        # have passed its bounds check against the old size and still needs the old base,
        # whose pages the pin (see `enter`) keeps mapped.
        context = self.context
        if memory.closed:
            context.mem_size = 0
        else:
            context.mem_base = memory.address
            context.mem_size = memory.size

    def release(self) -> None:
        """Stop this instance from running again: the store has closed."""
        self.released = True
        self.context.mem_size = 0

    def check_released(self) -> None:
        if self.released:
            raise UsageError("the function's store is closed, so the function can no longer be called")

    @property
    def interrupt(self) -> int:
        return int(self.context.interrupt)

    @interrupt.setter
    def interrupt(self, value: int) -> None:
        # Written by the store's interrupt cell, possibly from another thread.
        self.context.interrupt = value

    # -- crossing into native code -----------------------------------------

    def _make_call(self, func_index: int, func_type: FuncType) -> Callable[..., Any]:
        entry = self.compiled.entries[self.compiled.type_ids[func_type]]
        code = self.compiled.code_addresses[func_index]
        params = func_type.params
        results = func_type.results
        slot_count = max(len(params), len(results), 1)
        slot_array = ctypes.c_uint64 * slot_count
        refs = REFERENCES

        def call(*args: Any) -> Any:
            slots = slot_array()
            for index, (val_type, value) in enumerate(zip(params, args)):
                slots[index] = to_slot(val_type, value, refs)
            pin = self.enter()
            try:
                status = entry(self.context_address, ctypes.addressof(slots), code)
            finally:
                self.leave(pin)
            if status:
                self.raise_trap(status)
            if not results:
                return None
            values = [from_slot(t, slots[i], refs) for i, t in enumerate(results)]
            return values[0] if len(values) == 1 else tuple(values)

        return call

    def enter(self) -> memoryview | None:
        """Copy the Python-side state that native code reads into the context.

        Returns the pin of memory 0 (see `MemoryInstance.pin`), which `leave`
        releases. It keeps the mapping in place while native code may hold
        the base pointer, even when another thread closes the store.
        """
        memory = self.instance.mems[0] if self.instance.mems else None
        pin = memory.pin() if memory is not None else None
        self.check_released()
        context = self.context
        if context.stack_limit == 0:
            context.stack_budget = stack_budget()
            context.stack_floor, context.stack_top = stack_bounds()
        if not self.mirrored_tables and self.table_entries:
            self.build_table_mirror()
        self.sync_to_native()
        return pin

    # -- the native table mirror ---------------------------------------------

    def build_table_mirror(self) -> None:
        """Mirror every table and follow its later writes through `on_change`."""
        tables = self.instance.tables
        if len(tables) != len(self.table_entries):
            return  # not instantiated yet: keep using the runtime path
        self.mirrored_tables = list(tables)
        reference = weakref.ref(self)

        def on_change(table: Any, start: int, count: int) -> None:
            native = reference()
            if native is not None:
                native.update_table_mirror(table, start, count)

        for table in {id(t): t for t in tables}.values():
            table.on_change.append(on_change)
            self.update_table_mirror(table, 0, len(table.elements))

    def update_table_mirror(self, table: Any, start: int, count: int) -> None:
        for table_index, mirrored in enumerate(self.mirrored_tables):
            if mirrored is not table:
                continue
            elements = table.elements
            entries = self.table_entries[table_index]
            if entries is None or len(entries) < len(elements):
                # Grow geometrically so that repeated table.grow stays linear.
                capacity = max(len(elements), 2 * (len(entries) if entries is not None else 0), 4)
                old, entries = entries, (TableEntry * capacity)()
                self.table_entries[table_index] = entries
                self.table_descriptors[table_index].entries = ctypes.addressof(entries)
                start, count = 0, len(elements)
                del old
            end = min(start + count, len(elements))
            for position in range(start, end):
                self.set_table_entry(entries[position], elements[position])
            # Shrinking never happens (tables only grow), but the size is exact.
            self.table_descriptors[table_index].size = len(elements)

    def set_table_entry(self, entry: Any, function: Any) -> None:
        func_index = self.own_functions.get(id(function)) if function is not None else None
        if func_index is None or self.functions[func_index - self.compiled.num_imported_funcs] is not function:
            entry.type_id = 0
            entry.code = None
            return
        entry.type_id = self.compiled.type_ids[self.compiled.func_types[func_index]]
        entry.code = self.compiled.code_addresses[func_index]

    def leave(self, pin: memoryview | None = None) -> None:
        try:
            self.sync_from_native()
        finally:
            if pin is not None:
                self.instance.mems[0].unpin(pin)

    def sync_to_native(self) -> None:
        instance = self.instance
        context = self.context
        if instance.mems:
            self.sync_memory(instance.mems[0])
        for index, val_type in enumerate(self.global_types):
            self.cells[index] = to_slot(val_type, instance.globals[index].value, REFERENCES)
        fuel_cell = getattr(self.store, "fuel_cell", None)
        if fuel_cell is not None:
            # The native field is a signed i64, so fuel above 2**63-1 stays
            # in the store: spending 2**63 units takes centuries, so the
            # native count never reaches 0 while part of the fuel is held back.
            native_fuel = min(fuel_cell[0], NATIVE_FUEL_MAX)
            self.held_fuel = fuel_cell[0] - native_fuel
            context.fuel = native_fuel
        interrupt_cell = getattr(self.store, "interrupt_cell", None)
        if interrupt_cell is not None:
            context.interrupt = 1 if interrupt_cell[0] else 0

    def sync_from_native(self) -> None:
        instance = self.instance
        for index, val_type in enumerate(self.global_types):
            if instance.globals[index].type.mutable:
                instance.globals[index].value = from_slot(val_type, self.cells[index], REFERENCES)
        fuel_cell = getattr(self.store, "fuel_cell", None)
        if fuel_cell is not None:
            fuel_cell[0] = self.context.fuel + self.held_fuel

    def raise_trap(self, status: int) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            raise pending
        try:
            code = lower.TRAP_CODES[status - 1]
        except IndexError:
            raise InternalError(f"native code returned unknown trap number {status}") from None
        trap = Trap(code)
        func_index = self.context.trap_function
        if func_index >= 0 and func_index not in self.compiled.shared_bodies:
            # TODO: record the callers too (a shadow stack of function indices).
            trap.frames.append(self.frame(func_index))
            trap.callers_recorded = False
        raise trap

    def frame(self, index: int) -> Frame:
        """Return the backtrace frame of function `index`, named from the name section."""
        instance = self.instance
        name = self.compiled.module.names.func_names.get(index)
        if name is None and 0 <= index < len(instance.funcs):
            name = instance.funcs[index].name
        return Frame(index, name, instance.name)

    # -- callbacks from native code ----------------------------------------

    def _rt_call(self, _context: int, func_index: int, slots_address: int) -> int:
        try:
            self.check_released()
            self.sync_from_native()
            function = self.instance.funcs[func_index]
            func_type = function.type
            results = self._call_with_slots(function, func_type, slots_address)
            self.check_released()
            self.sync_to_native()
            return 0 if results else 0
        except BaseException as exc:  # noqa: BLE001 - re-raised after native code unwinds
            self.pending = exc
            return 1

    def _call_with_slots(self, function: Any, func_type: FuncType, slots_address: int) -> bool:
        count = max(len(func_type.params), len(func_type.results), 1)
        slots = (ctypes.c_uint64 * count).from_address(slots_address)
        args = [from_slot(t, slots[i], REFERENCES) for i, t in enumerate(func_type.params)]
        result = function.call(*args)
        results = func_type.results
        if len(results) == 1:
            slots[0] = to_slot(results[0], result, REFERENCES)
        elif results:
            for index, (val_type, value) in enumerate(zip(results, result)):
                slots[index] = to_slot(val_type, value, REFERENCES)
        return True

    def _rt_op(self, _context: int, operation: int, a: int, b: int, c: int, slots: int) -> int:
        try:
            self.check_released()
            self.sync_from_native()
            result = self.run_op(operation, a, b, c, slots)
            self.check_released()
            self.sync_to_native()
            return result
        except BaseException as exc:  # noqa: BLE001 - re-raised after native code unwinds
            self.pending = exc
            return lower.RT_FAILED

    def run_op(self, operation: int, a: int, b: int, c: int, slots: int) -> int:
        instance = self.instance
        if operation == lower.RT_MEMORY_GROW:
            memory = instance.mems[0]
            return memory.grow(a) & 0xFFFF_FFFF
        if operation == lower.RT_CALL_INDIRECT:
            return self.call_indirect(a, b, c, slots)
        if operation == lower.RT_REF_FUNC:
            return REFERENCES.handle(instance.funcs[a])
        if operation == lower.RT_DATA_DROP:
            instance.datas[a] = b""
            return 0
        if operation == lower.RT_ELEM_DROP:
            instance.elems[a] = []
            return 0
        if operation == lower.RT_MEMORY_INIT:
            return self.memory_init(a, b, c)
        return self.table_op(operation, a, b, c)

    def call_indirect(self, type_index: int, table_index: int, element: int, slots: int) -> int:
        table = self.instance.tables[table_index]
        elements = table.elements
        if element >= len(elements):
            raise Trap(TrapCode.UNDEFINED_ELEMENT, f"index {element}, table size {len(elements)}")
        function = elements[element]
        if function is None:
            raise uninitialized_element(element)
        expected = self.compiled.module.types[type_index]
        if function.type is not expected and function.type != expected:
            raise Trap(TrapCode.INDIRECT_CALL_TYPE_MISMATCH,
                       f"expected {expected}, got {function.type}")
        self._call_with_slots(function, function.type, slots)
        return 0

    def memory_init(self, data_index: int, dest: int, packed: int) -> int:
        source, length = packed >> 32, packed & 0xFFFF_FFFF
        data = self.instance.datas[data_index]
        memory = self.instance.mems[0]
        if source + length > len(data) or dest + length > memory.size:
            raise Trap(TrapCode.MEMORY_OUT_OF_BOUNDS,
                       f"memory.init of {length} bytes from {source} to {dest}")
        if length:
            memory.buf[dest:dest + length] = data[source:source + length]
        return 0

    def table_op(self, operation: int, a: int, b: int, c: int) -> int:
        instance = self.instance
        if operation == lower.RT_TABLE_GET:
            table = instance.tables[a]
            if b >= len(table.elements):
                raise Trap(TrapCode.TABLE_OUT_OF_BOUNDS, f"index {b}, table size {len(table.elements)}")
            return REFERENCES.handle(table.elements[b])
        if operation == lower.RT_TABLE_SET:
            table = instance.tables[a]
            if b >= len(table.elements):
                raise Trap(TrapCode.TABLE_OUT_OF_BOUNDS, f"index {b}, table size {len(table.elements)}")
            table.set(b, REFERENCES.object(c))
            return 0
        if operation == lower.RT_TABLE_SIZE:
            return len(instance.tables[a].elements)
        if operation == lower.RT_TABLE_GROW:
            return instance.tables[a].grow(b, REFERENCES.object(c)) & 0xFFFF_FFFF
        if operation == lower.RT_TABLE_FILL:
            start, length = b >> 32, b & 0xFFFF_FFFF
            instance.tables[a].fill(start, REFERENCES.object(c), length)
            return 0
        if operation == lower.RT_TABLE_COPY:
            dest_table, source_table = a >> 32, a & 0xFFFF_FFFF
            dest, source = b >> 32, b & 0xFFFF_FFFF
            instance.tables[dest_table].copy(dest, instance.tables[source_table], source, c)
            return 0
        if operation == lower.RT_TABLE_INIT:
            elem_index, table_index = a >> 32, a & 0xFFFF_FFFF
            dest, source = b >> 32, b & 0xFFFF_FFFF
            instance.tables[table_index].init(dest, instance.elems[elem_index], source, c)
            return 0
        raise InternalError(f"unknown runtime operation {operation}")


class LlvmTier:
    """The `llvm` tier: whole-module compilation to machine code through MCJIT."""

    name = "llvm"
    # tier="auto" picks this tier: it passes the 83 spec scripts that the python tier runs.
    automatic = True

    def compile(self, module: Module, info: Any, config: Any) -> CompiledModule:
        """Compile `module`, or load its machine code from the JIT cache.

        The cache is keyed by the module's binary encoding, the wasmtee
        version, the host CPU, the options and the opt level (see
        `aot.cache_path`). Set WASMTEE_JIT_CACHE=0 in the environment to
        bypass it. WASMTEE_OPT_LEVEL (0 to 3) overrides the opt level that
        `choose_opt_level` picks by module size.
        """
        func_types = list(info.func_types)
        options = options_from_config(config)
        # Set by `wasmtee.api.module.Module` for binaries; taken off so that
        # the model cannot carry it past a later edit.
        source = module.__dict__.pop("source_binary", None)
        cached_objects = module.__dict__.pop("cached_objects", None)
        try:
            opt_level = choose_opt_level(module, requested_opt_level(config))
            objects = _PRELOADED.get(id(module)) or cached_objects
            wasm = None
            if objects is None and jit_cache_enabled(config):
                wasm = cache_key_bytes(module, source if isinstance(source, bytes) else None)
            if wasm is not None:
                objects = aot.load_cached(wasm, options, opt_level)
            if objects is None:
                progress = CompileProgress(code_size(module), opt_level)
                objects = compile_objects(module, func_types, options, opt_level, progress=progress)
                if wasm is not None:
                    aot.store_cached(wasm, objects, options, opt_level)
            return CompiledModule(module, func_types, options, objects)
        except WasmteeError:
            raise
        except Exception as exc:
            raise CompileError(f"LLVM compilation failed: {exc}") from exc


    def trusted_info(self, module: Module, config: Any) -> Any | None:
        """Return the ModuleInfo of a module whose code comes from a verified artifact, or None.

        That is a module that `aot.load_module` is loading, or a binary whose
        JIT cache entry exists and passes its MAC check. wasmtee wrote either
        only after validating the same bytes, so the caller may skip
        validation. The returned info holds only `func_types`, which is all
        that this tier and instantiation read.
        """
        if id(module) not in _PRELOADED:
            source = module.__dict__.get("source_binary")
            if not isinstance(source, bytes) or not jit_cache_enabled(config):
                return None
            try:
                opt_level = choose_opt_level(module, requested_opt_level(config))
            except CompileError:
                # `compile` reports a bad opt level, after validation.
                return None
            objects = aot.load_cached(source, options_from_config(config), opt_level)
            if objects is None:
                return None
            module.__dict__["cached_objects"] = objects
        from wasmtee.valid import ModuleInfo

        types = module.types
        func_types = [types[imp.desc] for imp in module.imports_of(ExternKind.FUNC)]  # type: ignore[index]
        func_types += [types[func.type_index] for func in module.funcs]
        return ModuleInfo(func_types=func_types)


def requested_opt_level(config: Any) -> int | None:
    """Return the opt level set by WASMTEE_OPT_LEVEL or the config, or None for the default."""
    text = os.environ.get("WASMTEE_OPT_LEVEL", "").strip()
    if text:
        try:
            return int(text)
        except ValueError:
            raise CompileError(f"invalid WASMTEE_OPT_LEVEL {text!r} (expected 0, 1, 2 or 3)") from None
    return getattr(config, "llvm_opt_level", None)


class CompileProgress:
    """Report compile progress: an INFO log line per chunk, and a bar on stderr when it is a terminal.

    The bar appears only once a compile has run for SHOW_AFTER seconds, so
    small modules print nothing.
    """

    SHOW_AFTER = 1.0

    def __init__(self, instructions: int, opt_level: int, stream: Any = None) -> None:
        self.instructions = instructions
        self.opt_level = opt_level
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.drawn = False
        try:
            self.terminal = self.stream.isatty()
        except (AttributeError, ValueError):
            self.terminal = False

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        log.info("compiled chunk %d of %d at opt level %d (%.1f s)", done, total, self.opt_level, elapsed)
        if not self.terminal or (elapsed < self.SHOW_AFTER and not self.drawn):
            return
        width = 30
        filled = width * done // total
        remaining = elapsed / done * (total - done)
        self.stream.write(
            f"\rwasmtee: compiling {self.instructions} wasm instructions "
            f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}, "
            f"{elapsed:.0f} s, about {remaining:.0f} s left "
        )
        if done == total:
            self.stream.write("\n")
        self.stream.flush()
        self.drawn = True


# Object files that `aot.load_module` hands to the next compile of a model, by id(model).
_PRELOADED: dict[int, list[bytes]] = {}


@contextlib.contextmanager
def preloaded_objects(module: Module, objects: list[bytes]) -> Iterator[None]:
    """Make `LlvmTier.compile` use `objects` for `module` instead of compiling it."""
    _PRELOADED[id(module)] = objects
    try:
        yield
    finally:
        _PRELOADED.pop(id(module), None)


def jit_cache_enabled(config: Any) -> bool:
    if os.environ.get("WASMTEE_JIT_CACHE", "1").strip().lower() in ("0", "no", "off", "false"):
        return False
    return bool(getattr(config, "cache", True))


def cache_key_bytes(module: Module, source: bytes | None = None) -> bytes | None:
    """Return the module's binary encoding, which keys the JIT cache, or None if it cannot be encoded.

    `source` is the binary that the module was decoded from, when known.
    """
    from wasmtee.binary import encode_module

    if source is not None:
        return source
    try:
        return encode_module(module)
    except (WasmteeError, ValueError, TypeError, KeyError) as exc:
        log.info("not using the JIT cache: the module cannot be encoded (%s)", exc)
        return None


def module_tables(module: Module) -> list[Any]:
    """Return the module's table index space (imports first) as types."""
    return [imp.desc for imp in module.imports_of(ExternKind.TABLE)] + list(module.tables)


def options_from_config(config: Any) -> lower.Options:
    return lower.Options(
        consume_fuel=bool(getattr(config, "consume_fuel", False)),
        count_depth=getattr(config, "max_call_depth", DEFAULT_MAX_CALL_DEPTH) != DEFAULT_MAX_CALL_DEPTH,
        interruptible=bool(getattr(config, "epoch_interruption", False)),
    )
