"""The python tier object, lazy translation, and the names generated code uses.

Each instance gets one namespace dict shared by all of its functions. In it:
- `f<j>`: the callee of `call j` (a lazy stub until function j is translated,
  then the generated function itself, so direct calls cost one global load);
- `G<i>`: global instances, `TB<i>`: tables, `TY<i>`: interned function types,
  `MEM0`: memory 0 and `MV`: its `ViewCell`;
- `_fuel`, `_interrupt`: the store's cells (read only when the config enables them);
- `_instance`, plus the helpers of wasmtee.pytier.numeric and this module.

Memory accesses use struct's `unpack_from`/`pack_into` on `MV.view`, a
memoryview of exactly the memory's current `size` bytes, so an access past
`size` raises struct.error, which the generated function turns into
Trap(MEMORY_OUT_OF_BOUNDS). The view is replaced whenever the memory's
accessible region changes (its `on_resize` callback, run on grow and on
close), and generated code reloads it after every call and memory.grow.
When the store closes, the instance's `f<j>` entries are replaced by a function
that raises UsageError, so code that is still running fails at its next call.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import sys
import threading
import time
import types
import weakref
from typing import Any

from wasmtee.errors import CompileError, Frame, Trap, TrapCode, WasmteeError
from wasmtee.model import Module
from wasmtee.pytier import numeric
from wasmtee.runtime.config import DEFAULT_MAX_CALL_DEPTH
from wasmtee.runtime.func import store_closed
from wasmtee.runtime.table import uninitialized_element
from wasmtee.pytier.flat import FlatTranslator
from wasmtee.pytier.translate import (
    LARGE_FRAME_SLOTS,
    FunctionTranslator,
    NestingTooDeep,
    TranslateOptions,
)
from wasmtee.values import round_f32

logger = logging.getLogger(__name__)

# Python frames allowed on top of the store's max_call_depth (embedder and host frames).
RECURSION_MARGIN = 400
# Frames kept in a trap's backtrace; deep recursion would otherwise record thousands.
MAX_FRAMES = 64


def memory_view(memory: Any) -> memoryview:
    """Return a view of the accessible bytes of `memory`; empty once it is closed."""
    if memory.closed:
        return memoryview(b"")
    return memoryview(memory.buf)[:memory.size]


class ViewCell:
    """Holds a memoryview of a memory's first `size` bytes; replaced on every resize."""

    __slots__ = ("__weakref__", "view")

    def __init__(self, memory: Any) -> None:
        self.view = memory_view(memory)


class _EmptyView:
    __slots__ = ("view",)

    def __init__(self) -> None:
        self.view = memoryview(b"")


_NO_MEMORY = _EmptyView()
_cells: weakref.WeakKeyDictionary[Any, ViewCell] = weakref.WeakKeyDictionary()


def view_cell(memory: Any) -> ViewCell:
    """Return the one ViewCell of `memory`, creating it and its resize hook on first use."""
    cell = _cells.get(memory)
    if cell is None:
        cell = ViewCell(memory)
        _cells[memory] = cell
        cell_ref = weakref.ref(cell)

        def refresh(mem: Any, _old_pages: int) -> None:
            target = cell_ref()
            if target is not None:
                target.view = memory_view(mem)

        memory.on_resize.append(refresh)
    return cell


_depth_cells: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()
_slots_cells: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()


def _counter_cell(cells: weakref.WeakKeyDictionary[Any, list[int]], store: Any) -> list[int]:
    """Return the store's one-element counter list in `cells`, created at 0."""
    return cells.setdefault(store, [0])


def depth_cell(store: Any) -> list[int]:
    """Return the store's one-element list of active wasm frames (used with a small max depth)."""
    return _counter_cell(_depth_cells, store)


def slots_cell(store: Any) -> list[int]:
    """Return the store's count of frame slots that running large frames use."""
    return _counter_cell(_slots_cells, store)


# -- helpers called by generated code ------------------------------------------------


def _trap_div() -> Trap:
    return Trap(TrapCode.INTEGER_DIVIDE_BY_ZERO)


# The numbers in CPython's struct.error for a buffer that is too short, as in
# "pack_into requires a buffer of at least 65537 bytes for packing 4 bytes at
# offset 65533 (actual buffer size is 65536)".
_STRUCT_BOUNDS = re.compile(r"(\d+) bytes at offset (\d+) \(actual buffer size is (\d+)\)")


def _trap_memory(exc: BaseException) -> Trap:
    """Return the trap of a load or store whose struct call raised `exc`.

    The detail names the address, length and memory size in the form
    MemoryInstance uses; struct's own wording never reaches the message.
    """
    match = _STRUCT_BOUNDS.search(str(exc))
    if match is None:
        return Trap(TrapCode.MEMORY_OUT_OF_BOUNDS)
    length, address, size = (int(group) for group in match.groups())
    return Trap(TrapCode.MEMORY_OUT_OF_BOUNDS,
                f"address 0x{address:x}, length {length}, memory size 0x{size:x}")


def _trap_stack() -> Trap:
    return Trap(TrapCode.STACK_EXHAUSTED)


def _trap_unreachable() -> Trap:
    return Trap(TrapCode.UNREACHABLE)


def _trap_fuel() -> Trap:
    return Trap(TrapCode.OUT_OF_FUEL)


def _trap_interrupt() -> Trap:
    return Trap(TrapCode.INTERRUPTED)


def _resolve(elements: list[Any], index: int, expected: Any) -> Any:
    """Return the `call` of table element `index` for call_indirect, or trap."""
    if index >= len(elements):
        raise Trap(TrapCode.UNDEFINED_ELEMENT, f"index {index}, table size {len(elements)}")
    func = elements[index]
    if func is None:
        raise uninitialized_element(index)
    func_type = func.type
    if func_type is not expected and func_type != expected:
        raise Trap(
            TrapCode.INDIRECT_CALL_TYPE_MISMATCH,
            f"index {index}: expected {expected}, got {func_type}",
        )
    return func.call


# Bytes written per step of memory.fill.
_FILL_CHUNK = 1 << 20


def _memory_fill(memory: Any, dest: int, value: int, length: int) -> None:
    if dest + length > memory.size:
        raise Trap(
            TrapCode.MEMORY_OUT_OF_BOUNDS,
            f"memory.fill at {dest}, length {length}, memory size {memory.size}",
        )
    if not length:
        return
    # Fill in chunks, so a fill of a whole 4 GiB memory needs no 4 GiB temporary.
    chunk = bytes((value & 0xFF,)) * min(length, _FILL_CHUNK)
    end = dest + length
    while dest < end:
        count = min(len(chunk), end - dest)
        memory.buf[dest:dest + count] = chunk[:count] if count < len(chunk) else chunk
        dest += count


def _memory_copy(memory: Any, dest: int, source: int, length: int) -> None:
    size = memory.size
    if source + length > size or dest + length > size:
        raise Trap(
            TrapCode.MEMORY_OUT_OF_BOUNDS,
            f"memory.copy from {source} to {dest}, length {length}, memory size {size}",
        )
    if length:
        memory.buf.move(dest, source, length)


def _memory_init(memory: Any, datas: list[bytes], index: int, dest: int, source: int,
                 length: int) -> None:
    data = datas[index]
    if source + length > len(data) or dest + length > memory.size:
        raise Trap(
            TrapCode.MEMORY_OUT_OF_BOUNDS,
            f"memory.init of data {index} from {source} to {dest}, length {length}",
        )
    if length:
        memory.buf[dest:dest + length] = data[source:source + length]


def _table_init(table: Any, elems: list[list[Any]], index: int, dest: int, source: int,
                length: int) -> None:
    table.init(dest, elems[index], source, length)


_S = struct.Struct
HELPERS: dict[str, Any] = {
    "_trap_div": _trap_div,
    "_trap_memory": _trap_memory,
    "_trap_stack": _trap_stack,
    "_trap_unreachable": _trap_unreachable,
    "_trap_fuel": _trap_fuel,
    "_trap_interrupt": _trap_interrupt,
    "_Trap": Trap,
    "_StructError": struct.error,
    "_resolve": _resolve,
    "_memory_fill": _memory_fill,
    "_memory_copy": _memory_copy,
    "_memory_init": _memory_init,
    "_table_init": _table_init,
    "_copysign": math.copysign,
    "_round_f32": round_f32,
    "_u8": _S("<B").unpack_from, "_s8": _S("<b").unpack_from,
    "_u16": _S("<H").unpack_from, "_s16": _S("<h").unpack_from,
    "_u32": _S("<I").unpack_from, "_s32": _S("<i").unpack_from,
    "_u64": _S("<Q").unpack_from, "_f64": _S("<d").unpack_from,
    "_p8": _S("<B").pack_into, "_p16": _S("<H").pack_into,
    "_p32": _S("<I").pack_into, "_p64": _S("<Q").pack_into, "_pf64": _S("<d").pack_into,
}
for _name in dir(numeric):
    _value = getattr(numeric, _name)
    if callable(_value) and not _name.startswith("_") and getattr(_value, "__module__", None) == numeric.__name__:
        HELPERS["_" + _name] = _value


class CodeCache:
    """Code objects of translated functions, shared by every module in the process.

    The key contains everything the generated code depends on: the body, the
    locals, the module's types and function types, and the translation
    options. Like wasmtime's compilation cache it makes loading the same
    program again cheap. The oldest entries go first when it is full.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self.entries: dict[Any, tuple[Any, dict[str, object]]] = {}
        self.lock = threading.Lock()

    def get(self, key: Any) -> tuple[Any, dict[str, object]] | None:
        return self.entries.get(key)

    def put(self, key: Any, entry: tuple[Any, dict[str, object]]) -> None:
        with self.lock:
            while len(self.entries) >= self.capacity:
                del self.entries[next(iter(self.entries))]
            self.entries[key] = entry


CODE_CACHE = CodeCache()


class PythonTier:
    """Compiles validated modules for the python tier."""

    name = "python"
    automatic = True

    def compile(self, module: Module, info: Any, config: Any) -> CompiledModule:
        depth = getattr(config, "max_call_depth", DEFAULT_MAX_CALL_DEPTH)
        options = TranslateOptions(
            consume_fuel=bool(getattr(config, "consume_fuel", False)),
            interruptible=bool(getattr(config, "epoch_interruption", False)),
            # Bounds at or above the default use the cheaper recursion limit.
            max_depth=depth if depth < DEFAULT_MAX_CALL_DEPTH else None,
        )
        return CompiledModule(module, info, options)


def compile_function(module: Module, func_types: list[Any], func_index: int,
                     options: TranslateOptions) -> tuple[Any, dict[str, object], str]:
    """Translate and compile a defined function's `def`.

    Return its code object, the constants it reads and its source. The
    structured form comes first. A function nested too deeply for it, or
    whose structured source compile() rejects, gets the flat form, whose
    nesting does not grow with the wasm nesting.
    """
    filename = f"<wasm function {func_index}>"
    try:
        return _compile_counting_slots(FunctionTranslator, module, func_types, func_index,
                                       options, filename)
    except NestingTooDeep as exc:
        reason = str(exc)
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        # A CPython limit that NestingTooDeep does not predict.
        reason = f"compile() rejected the structured source: {exc}"
    logger.debug("function %d uses the flat translation: %s", func_index, reason)
    try:
        return _compile_counting_slots(FlatTranslator, module, func_types, func_index,
                                       options, filename)
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        raise CompileError(
            f"function {func_index} cannot be compiled to Python: {exc} (flat translation, "
            f"used because {reason})"
        ) from exc


def _compile_counting_slots(translator: type[FunctionTranslator], module: Module,
                            func_types: list[Any], func_index: int, options: TranslateOptions,
                            filename: str) -> tuple[Any, dict[str, object], str]:
    """Translate and compile with `translator`; a large frame is translated again to count it.

    The frame size (CPython's co_nlocals plus co_stacksize) is known only after
    compile(), so a function whose frame has LARGE_FRAME_SLOTS or more slots is
    translated a second time with code that counts them against MAX_FRAME_SLOTS.
    """
    source, constants = translator(module, func_types, func_index, options).translate()
    code = compile(source, filename, "exec")
    slots = _frame_slots(code, f"f{func_index}")
    if slots < LARGE_FRAME_SLOTS:
        return code, constants, source
    counting = translator(module, func_types, func_index, options)
    # One more slot for the counter's own local variable.
    counting.frame_slots = slots + 1
    source, constants = counting.translate()
    return compile(source, filename, "exec"), constants, source


def _frame_slots(code: Any, name: str) -> int:
    """Return the local and value-stack slots of the function `name` defined by `code`."""
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType) and constant.co_name == name:
            return int(constant.co_nlocals + constant.co_stacksize)
    return 0


class CompiledModule:
    """A module prepared for the python tier: code objects are made once per function.

    Translation happens on a function's first call in any instance, and the
    code object is reused by later instances of the same module.
    """

    def __init__(self, module: Module, info: Any, options: TranslateOptions) -> None:
        self.module = module
        self.info = info
        self.options = options
        imported_types = [
            module.types[imp.desc] for imp in module.imports if _is_func_import(imp)
        ]
        self.func_types = imported_types + [module.types[f.type_index] for f in module.funcs]
        self.first_defined = len(imported_types)
        self.cache_key: Any = None
        # func index -> (code object, constants)
        self.codes: dict[int, tuple[Any, dict[str, object]]] = {}
        self.translate_seconds = 0.0

    def code_for(self, func_index: int) -> tuple[Any, dict[str, object]]:
        entry = self.codes.get(func_index)
        if entry is None:
            key = self.function_key(func_index)
            entry = CODE_CACHE.get(key)
            if entry is not None:
                self.codes[func_index] = entry
                return entry
            started = time.perf_counter()
            code, constants, source = compile_function(
                self.module, self.func_types, func_index, self.options
            )
            entry = (code, constants)
            self.codes[func_index] = entry
            CODE_CACHE.put(key, entry)
            self.translate_seconds += time.perf_counter() - started
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("translated function %d:\n%s", func_index, source)
        return entry

    def function_key(self, func_index: int) -> Any:
        if self.cache_key is None:
            module = self.module
            self.cache_key = (
                tuple(module.types), tuple(self.func_types),
                tuple(g.type for g in module.globals),
                tuple(imp.desc for imp in module.imports),
                self.options.consume_fuel, self.options.interruptible, self.options.max_depth,
            )
        func = self.module.funcs[func_index - self.first_defined]
        return (self.cache_key, func_index, tuple(func.locals), tuple(func.body))

    def source_for(self, func_index: int) -> str:
        """Return the generated Python source of a defined function (for debugging)."""
        return compile_function(self.module, self.func_types, func_index, self.options)[2]

    def make_functions(self, instance: Any) -> list[Any]:
        from wasmtee.runtime.func import FunctionInstance

        store = instance.store
        limit = getattr(store, "max_call_depth", 10_000) + RECURSION_MARGIN
        if sys.getrecursionlimit() < limit:
            sys.setrecursionlimit(limit)
        linker = InstanceCode(self, instance)
        instance.release_hooks.append(linker.release)
        functions = []
        names = self.module.names.func_names
        for position, func in enumerate(self.module.funcs):
            index = self.first_defined + position
            function = FunctionInstance(
                self.func_types[index], names.get(index), None, instance, index
            )
            function.call = linker.stub(index, function)
            functions.append(function)
        linker.functions = functions
        return functions


def _is_func_import(imp: Any) -> bool:
    from wasmtee.model import ExternKind

    return imp.kind is ExternKind.FUNC


class InstanceCode:
    """The namespace of one instance's generated functions, built on the first call."""

    def __init__(self, compiled: CompiledModule, instance: Any) -> None:
        self.compiled = compiled
        self.instance = instance
        self.namespace: dict[str, Any] | None = None
        self.functions: list[Any] = []

    def stub(self, index: int, function: Any) -> Any:
        def lazy(*args: Any) -> Any:
            return self.install(index, function)(*args)

        return lazy

    def build_namespace(self) -> dict[str, Any]:
        instance = self.instance
        store = instance.store
        ns: dict[str, Any] = dict(HELPERS)
        ns["_instance"] = instance
        ns["_fuel"] = store.fuel_cell
        ns["_interrupt"] = store.interrupt_cell
        ns["_depth"] = depth_cell(store)
        ns["_slots"] = slots_cell(store)
        for j, func in enumerate(instance.funcs):
            if j < self.compiled.first_defined:
                ns[f"f{j}"] = self.import_stub(j)
            else:
                ns[f"f{j}"] = func.call
        for i, glob in enumerate(instance.globals):
            ns[f"G{i}"] = glob
        for i, table in enumerate(instance.tables):
            ns[f"TB{i}"] = table
        for i, func_type in enumerate(instance.types):
            ns[f"TY{i}"] = func_type
        if instance.mems:
            ns["MEM0"] = instance.mems[0]
            ns["MV"] = view_cell(instance.mems[0])
        else:
            # data.drop is a memory instruction that is valid without a memory.
            ns["MV"] = _NO_MEMORY
        ns["_add_frame"] = self.add_frame
        self.namespace = ns
        return ns

    def release(self) -> None:
        """Make every call through this instance's namespace raise UsageError (store closed)."""
        if self.namespace is None:
            return
        for j in range(len(self.instance.funcs)):
            self.namespace[f"f{j}"] = store_closed

    def import_stub(self, j: int) -> Any:
        """Bind `f<j>` for an imported function to its current `call` on the first call.

        An import from another python-tier instance may still be a lazy stub when
        this namespace is built, so it is looked up again at the first call.
        """
        def first_call(*args: Any) -> Any:
            imported = self.instance.funcs[j]
            result = imported.call(*args)
            # After its first call a lazy python-tier import has its generated function.
            # A store closed during the call keeps the entry that `release` set.
            if self.namespace is not None and not getattr(self.instance.store, "closed", False):
                self.namespace[f"f{j}"] = imported.call
            return result

        return first_call

    def install(self, index: int, function: Any) -> Any:
        if getattr(self.instance.store, "closed", False):
            return store_closed
        ns = self.namespace if self.namespace is not None else self.build_namespace()
        name = f"f{index}"
        current = ns.get(name)
        if current is not None and current is function.call and getattr(current, "__wasm__", False):
            return current
        code, constants = self.compiled.code_for(index)
        ns.update(constants)
        exec(code, ns)  # noqa: S102 - our own generated code
        generated = ns[name]
        generated.__wasm__ = True
        function.call = generated
        return generated

    def add_frame(self, trap: Trap, index: int) -> None:
        """Record a wasm frame in a trap's backtrace (innermost first, at most MAX_FRAMES)."""
        if len(trap.frames) < MAX_FRAMES:
            trap.frames.append(self.frame(index))

    def frame(self, index: int) -> Frame:
        instance = self.instance
        name = self.compiled.module.names.func_names.get(index)
        if name is None and 0 <= index < len(instance.funcs):
            name = instance.funcs[index].name
        return Frame(index, name, instance.name)


__all__ = ["CompiledModule", "PythonTier", "ViewCell", "view_cell", "WasmteeError"]
