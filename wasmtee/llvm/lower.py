"""Lowering of validated WebAssembly functions to textual LLVM IR.

This module only produces text; `wasmtee.llvm.jit` owns the LLVM objects.

Conventions:
- Every function, defined or imported, becomes `@f<index>(ptr %ctx, params...)`
  with a plain, struct (two or more results) or void return. Imported functions
  get a thunk that calls back into the runtime through `@rt_call`.
- `%ctx` points at the context block laid out by `CTX_*` below. Native code
  reads the memory base and size from it at every access, so memory.grow and
  host calls never leave stale values behind.
- Locals and block results live in allocas; LLVM's mem2reg pass turns them into
  SSA values and phis.
- References (funcref, externref) are i64 handles: 0 is null, and the runtime
  keeps the table that maps other handles to objects.
- Traps call `@wasmtee_trap(ctx, code, func)`. It records the trap code and
  the trapping function's index, then longjmps to the entry trampoline that
  the runtime called, so no native frame is unwound through Python.
"""

from __future__ import annotations

import operator
import platform
from dataclasses import dataclass, field

from wasmtee import opcodes as op
from wasmtee.errors import CompileError, TrapCode
from wasmtee.fuel import fuel_costs
from wasmtee.model import ExternKind, FuncType, Instr, Module, ValType

# Byte offsets of the context block's fields; `jit.Context` mirrors this layout.
CTX_JMPBUF = 0
CTX_MEM_BASE = 8
CTX_MEM_SIZE = 16
CTX_FUEL = 24
CTX_INTERRUPT = 32
CTX_DEPTH = 40
CTX_MAX_DEPTH = 48
CTX_TRAP_CODE = 56
CTX_GLOBALS = 64
CTX_STACK_LIMIT = 72
CTX_RT_CALL = 80
CTX_RT_OP = 88
CTX_STACK_BUDGET = 96
CTX_TABLES = 104
CTX_STACK_FLOOR = 112
CTX_STACK_TOP = 120
# The index of the function whose code trapped, or -1 when no function's code did.
CTX_TRAP_FUNCTION = 128
CTX_SIZE = 136

# The native table mirror: `CTX_TABLES` points at one {ptr entries, i64 size}
# descriptor per table, and each entry is {i64 type id, ptr code, ptr unused}.
# Type id 0 means "not callable natively" (null, a host function or a
# function of another instance), so call_indirect calls the runtime instead.
TABLE_DESCRIPTOR_SIZE = 16
TABLE_ENTRY_SIZE = 24

# Trap codes passed through longjmp; 0 means no trap.
TRAP_CODES: list[TrapCode] = list(TrapCode)
TRAP_NUMBER = {code: index + 1 for index, code in enumerate(TRAP_CODES)}

# Operations that native code delegates to the runtime through `@rt_op`.
RT_MEMORY_GROW = 1
RT_TABLE_GET = 2
RT_TABLE_SET = 3
RT_TABLE_SIZE = 4
RT_TABLE_GROW = 5
RT_TABLE_FILL = 6
RT_TABLE_COPY = 7
RT_TABLE_INIT = 8
RT_ELEM_DROP = 9
RT_MEMORY_INIT = 10
RT_DATA_DROP = 11
RT_REF_FUNC = 12
RT_CALL_INDIRECT = 13

LLVM_TYPE = {
    ValType.I32: "i32",
    ValType.I64: "i64",
    ValType.F32: "float",
    ValType.F64: "double",
    ValType.FUNCREF: "i64",
    ValType.EXTERNREF: "i64",
}

ZERO = {"i32": "0", "i64": "0", "float": "0.0", "double": "0.0"}

PRELUDE = f"""\
declare void @longjmp(ptr, i32) noreturn nounwind
declare ptr @llvm.stacksave.p0()
declare void @llvm.memmove.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

define internal void @wasmtee_trap(ptr %ctx, i32 %code, i64 %func) noreturn cold noinline {{
  %codep = getelementptr i8, ptr %ctx, i64 {CTX_TRAP_CODE}
  store i32 %code, ptr %codep
  %funcp = getelementptr i8, ptr %ctx, i64 {CTX_TRAP_FUNCTION}
  store i64 %func, ptr %funcp
  %jb = load ptr, ptr %ctx
  call void @longjmp(ptr %jb, i32 %code)
  unreachable
}}

define internal i64 @rt_op(ptr %ctx, i32 %op, i64 %a, i64 %b, i64 %c, ptr %slots) {{
  %fp = getelementptr i8, ptr %ctx, i64 {CTX_RT_OP}
  %f = load ptr, ptr %fp
  %r = call i64 %f(ptr %ctx, i32 %op, i64 %a, i64 %b, i64 %c, ptr %slots)
  %failed = icmp eq i64 %r, -9223372036854775808
  br i1 %failed, label %trap, label %ok
trap:
  call void @wasmtee_trap(ptr %ctx, i32 {TRAP_NUMBER[TrapCode.HOST_ERROR]}, i64 -1)
  unreachable
ok:
  ret i64 %r
}}

define internal void @rt_call(ptr %ctx, i32 %func, ptr %slots) {{
  %fp = getelementptr i8, ptr %ctx, i64 {CTX_RT_CALL}
  %f = load ptr, ptr %fp
  %r = call i32 %f(ptr %ctx, i32 %func, ptr %slots)
  %failed = icmp ne i32 %r, 0
  br i1 %failed, label %trap, label %ok
trap:
  call void @wasmtee_trap(ptr %ctx, i32 {TRAP_NUMBER[TrapCode.HOST_ERROR]}, i64 -1)
  unreachable
ok:
  ret void
}}
"""

# Wasm `rt_op` result for "the runtime raised": INT64_MIN, which no operation returns.
RT_FAILED = -(1 << 63)

# Type-based alias classes: linear memory (!2), runtime data such as the
# context block and table mirror (!3), and global cells (!4) never alias each
# other, so LLVM may keep context fields in registers across memory stores.
TBAA_METADATA = """\
!1 = !{!"wasmtee"}
!2 = !{!5, !5, i64 0}
!3 = !{!6, !6, i64 0}
!4 = !{!7, !7, i64 0}
!5 = !{!"linear memory", !1, i64 0}
!6 = !{!"runtime", !1, i64 0}
!7 = !{!"global", !1, i64 0}
"""

# Bit patterns of +-0.0 and +-1.0, the operands that LLVM's identity folds use, by width.
IDENTITY_FLOAT_BITS = {
    32: {0x0000_0000, 0x8000_0000, 0x3F80_0000, 0xBF80_0000},
    64: {0, 0x8000_0000_0000_0000, 0x3FF0_0000_0000_0000, 0xBFF0_0000_0000_0000},
}
# The inline asm constraint for a floating-point register on the host.
FLOAT_REGISTER = "w" if platform.machine().lower() in ("aarch64", "arm64") else "x"

# Instructions that end an LLVM basic block, as `FunctionLowering.emit` writes them.
TERMINATORS = ("  br ", "  ret", "  unreachable", "  switch ")


def ret_type(func_type: FuncType) -> str:
    results = func_type.results
    if not results:
        return "void"
    if len(results) == 1:
        return LLVM_TYPE[results[0]]
    return "{" + ", ".join(LLVM_TYPE[t] for t in results) + "}"


@dataclass
class Options:
    consume_fuel: bool = False
    # Count wasm frames against the store's max_call_depth. Without it only the
    # native stack budget (jit.stack_budget) bounds recursion, which saves a
    # load and a store per call.
    count_depth: bool = False
    interruptible: bool = False


# Defined functions with at most this many instructions share the machine
# code of an earlier identical function. LLVM's fixed cost per function
# matters most for small functions, and comparing larger ones would cost
# time on every compile and cache hit.
SHARED_CODE_MAX_INSTRUCTIONS = 16
# Functions with at most this many instructions and locals (parameters
# included) that call nothing skip the native stack check at entry. Their
# frames take well under the 1 MB kept free below the limit (jit.STACK_RESERVE).
UNCHECKED_LEAF_MAX_INSTRUCTIONS = 16
CALL_OPCODES = frozenset((op.CALL, op.CALL_INDIRECT))
# An instruction without its byte offset, which differs between copies.
_OPCODE_AND_IMMEDIATE = operator.itemgetter(0, 1)


def find_shared_code(module: Module, func_types: list[FuncType], first_defined: int) -> dict[int, int]:
    """Map each small defined function that repeats an earlier one to that earlier function's index.

    A function's behaviour depends only on its type, locals and body (its own
    index appears nowhere in its code), so identical functions can share one
    compiled body. Modules of many identical stubs then compile once.
    """
    shared: dict[int, int] = {}
    first_seen: dict[tuple, int] = {}
    for offset, func in enumerate(module.funcs):
        if len(func.body) > SHARED_CODE_MAX_INSTRUCTIONS:
            continue
        func_index = first_defined + offset
        key = (
            func_types[func_index],
            tuple(func.locals),
            tuple(map(_OPCODE_AND_IMMEDIATE, func.body)),
        )
        original = first_seen.setdefault(key, func_index)
        if original != func_index:
            shared[func_index] = original
    return shared


@dataclass
class Frame:
    """One entry of the control stack during lowering."""

    kind: str  # "func", "block", "loop", "if"
    params: tuple[ValType, ...]
    results: tuple[ValType, ...]
    height: int  # operand stack height below the params
    label: str  # branch target: the end label, or the loop header
    end_label: str
    result_slots: list[str] = field(default_factory=list)
    param_slots: list[str] = field(default_factory=list)  # loops only
    param_values: list[tuple[str, str]] = field(default_factory=list)  # ifs only
    else_label: str | None = None
    seen_else: bool = False
    reachable_at_end: bool = False

    @property
    def branch_types(self) -> tuple[ValType, ...]:
        return self.params if self.kind == "loop" else self.results


class FunctionLowering:
    """Lower one defined function. Use `ModuleLowering.function_ir`."""

    def __init__(self, owner: ModuleLowering, func_index: int) -> None:
        self.owner = owner
        self.module = owner.module
        self.func_index = func_index
        defined = self.module.funcs[func_index - owner.num_imported_funcs]
        self.func = defined
        self.type = owner.func_types[func_index]
        self.local_types = list(self.type.params) + list(defined.locals)
        self.lines: list[str] = []
        self.allocas: list[str] = []
        self.counter = 0
        self.stack: list[tuple[str, str]] = []  # (llvm type, value)
        self.frames: list[Frame] = []
        self.reachable = True
        self.trap_blocks: dict[TrapCode, str] = {}
        self.global_cells: dict[int, str] = {}
        # Facts about the current basic block, valid in the blocks that only it
        # reaches: the SSA value of each local read or written in it, and for
        # each address value, the end of the range already bounds-checked with
        # its zext to i64 and the memory base loaded after that check.
        self.local_values: dict[int, str] = {}
        self.checked: dict[str, tuple[int, str, str]] = {}
        # Defined functions that this one calls directly; a chunk declares them.
        self.callees: set[int] = set()
        # Index in the body of the instruction being lowered.
        self.index = 0
        self.fuel_costs = fuel_costs(self.func.body) if owner.options.consume_fuel else {}

    # -- helpers ---------------------------------------------------------

    def tmp(self) -> str:
        self.counter += 1
        return f"%t{self.counter}"

    def label(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}{self.counter}"

    def emit(self, line: str) -> None:
        self.lines.append("  " + line)
        if "call " in line and "@llvm." not in line:
            # A call may grow memory and move its base.
            self.checked = {}

    def start_block(self, name: str, only_from_current: bool = False) -> None:
        """Start block `name`. Set `only_from_current` when no block but the current one branches to it."""
        # A block left open here is dead code (after `unreachable`, `br` or a
        # trap), and LLVM requires every block to end in a terminator.
        last = self.lines[-1] if self.lines else ""
        if not last.startswith(TERMINATORS):
            self.lines.append("  unreachable")
        self.lines.append(f"{name}:")
        if not only_from_current:
            self.local_values = {}
            self.checked = {}

    def push(self, llvm_type: str, value: str) -> None:
        self.stack.append((llvm_type, value))

    def pop(self) -> str:
        return self.stack.pop()[1]

    def value(self, expr: str) -> str:
        name = self.tmp()
        self.emit(f"{name} = {expr}")
        return name

    def slot(self, llvm_type: str) -> str:
        name = self.tmp()
        self.allocas.append(f"  {name} = alloca {llvm_type}")
        return name

    def trap(self, code: TrapCode) -> None:
        self.emit(f"call void @wasmtee_trap(ptr %ctx, i32 {TRAP_NUMBER[code]}, "
                  f"i64 {self.func_index})")
        self.emit("unreachable")

    def trap_if(self, condition: str, code: TrapCode) -> None:
        # One shared block per trap code and function keeps the code small.
        bad = self.trap_blocks.setdefault(code, f"trap.{TRAP_NUMBER[code]}")
        good = self.label("ok")
        self.emit(f"br i1 {condition}, label %{bad}, label %{good}, !prof !0")
        self.start_block(good, only_from_current=True)

    def ctx_field(self, offset: int, llvm_type: str) -> tuple[str, str]:
        pointer = self.value(f"getelementptr i8, ptr %ctx, i64 {offset}")
        return pointer, self.value(f"load {llvm_type}, ptr {pointer}, !tbaa !3")

    def block_signature(self, block_type: object) -> tuple[tuple[ValType, ...], tuple[ValType, ...]]:
        if block_type is None:
            return (), ()
        if isinstance(block_type, ValType):
            return (), (block_type,)
        func_type = self.module.types[block_type]  # type: ignore[index]
        return func_type.params, func_type.results

    # -- function structure ----------------------------------------------

    def lower(self) -> str:
        header_params = ", ".join(
            f"{LLVM_TYPE[t]} %a{i}" for i, t in enumerate(self.type.params)
        )
        sep = ", " if header_params else ""
        self.local_slots = []
        self.emit(f"%membasep = getelementptr i8, ptr %ctx, i64 {CTX_MEM_BASE}")
        self.emit(f"%memsizep = getelementptr i8, ptr %ctx, i64 {CTX_MEM_SIZE}")
        # The stack check runs before the frame's locals are touched.
        self.entry_checks()
        for index, val_type in enumerate(self.local_types):
            llvm_type = LLVM_TYPE[val_type]
            slot = self.slot(llvm_type)
            self.local_slots.append((llvm_type, slot))
            if index < len(self.type.params):
                self.emit(f"store {llvm_type} %a{index}, ptr {slot}")
            else:
                self.emit(f"store {llvm_type} {ZERO[llvm_type]}, ptr {slot}")
        end_label = self.label("fnend")
        frame = Frame("func", (), self.type.results, 0, end_label, end_label)
        frame.result_slots = [self.slot(LLVM_TYPE[t]) for t in self.type.results]
        self.frames.append(frame)
        for index, instr in enumerate(self.func.body):
            self.index = index
            self.lower_instr(instr)
        for code, label in self.trap_blocks.items():
            self.start_block(label)
            self.trap(code)
        prologue = []
        if self.global_cells:
            prologue = [
                f"  %globalsp = getelementptr i8, ptr %ctx, i64 {CTX_GLOBALS}",
                "  %globals = load ptr, ptr %globalsp, !tbaa !3",
            ]
        body = "\n".join(prologue + self.allocas + self.lines)
        signature = f"define {ret_type(self.type)} @f{self.func_index}(ptr %ctx{sep}{header_params})"
        return f"{signature} {{\nentry:\n{body}\n}}\n"

    def needs_stack_check(self) -> bool:
        """Return False for a small function that calls no function, so it cannot recurse.

        Its small frame fits in the reserve below the stack limit, and the
        check in its caller bounds the depth. Skipping the check roughly
        halves LLVM's time for such functions at level 1.
        """
        if self.owner.options.count_depth:
            return True
        if len(self.func.body) > UNCHECKED_LEAF_MAX_INSTRUCTIONS:
            return True
        if len(self.local_types) > UNCHECKED_LEAF_MAX_INSTRUCTIONS:
            return True
        return any(instr.op in CALL_OPCODES for instr in self.func.body)

    def entry_checks(self) -> None:
        if not self.needs_stack_check():
            self.poll_checks(max(self.fuel_costs.get(-1, 1), 1))
            return
        # NOTE: the prologue has already reserved this function's frame, so a
        # frame larger than the stack left below the limit (jit.STACK_RESERVE,
        # 1 MB, or half of a smaller stack) could fault before this check.
        # CPython's largest function (36,505 instructions) has a 72 KB frame
        # at level 1.
        sp = self.value("call ptr @llvm.stacksave.p0()")
        sp_int = self.value(f"ptrtoint ptr {sp} to i64")
        _, limit = self.ctx_field(CTX_STACK_LIMIT, "i64")
        exhausted = self.value(f"icmp ult i64 {sp_int}, {limit}")
        if self.owner.options.count_depth:
            depth_ptr, depth = self.ctx_field(CTX_DEPTH, "i64")
            _, max_depth = self.ctx_field(CTX_MAX_DEPTH, "i64")
            new_depth = self.value(f"add i64 {depth}, 1")
            self.emit(f"store i64 {new_depth}, ptr {depth_ptr}")
            self.depth_ptr = depth_ptr
            too_deep = self.value(f"icmp ugt i64 {new_depth}, {max_depth}")
            exhausted = self.value(f"or i1 {too_deep}, {exhausted}")
        self.trap_if(exhausted, TrapCode.STACK_EXHAUSTED)
        self.poll_checks(max(self.fuel_costs.get(-1, 1), 1))

    def poll_checks(self, cost: int) -> None:
        """Charge `cost` units of fuel (none when 0) and check the interrupt flag."""
        options = self.owner.options
        if options.consume_fuel and cost > 0:
            fuel_ptr, fuel = self.ctx_field(CTX_FUEL, "i64")
            left = self.value(f"sub i64 {fuel}, {cost}")
            self.emit(f"store i64 {left}, ptr {fuel_ptr}")
            empty = self.value(f"icmp slt i64 {left}, 0")
            self.trap_if(empty, TrapCode.OUT_OF_FUEL)
        if options.interruptible:
            pointer = self.value(f"getelementptr i8, ptr %ctx, i64 {CTX_INTERRUPT}")
            # Volatile, because another thread sets the flag while this loop runs.
            flag = self.value(f"load volatile i64, ptr {pointer}")
            raised = self.value(f"icmp ne i64 {flag}, 0")
            self.trap_if(raised, TrapCode.INTERRUPTED)

    def emit_return(self, values: list[tuple[str, str]]) -> None:
        if self.owner.options.count_depth:
            depth = self.value(f"load i64, ptr {self.depth_ptr}")
            lowered = self.value(f"sub i64 {depth}, 1")
            self.emit(f"store i64 {lowered}, ptr {self.depth_ptr}")
        results = self.type.results
        if not results:
            self.emit("ret void")
        elif len(results) == 1:
            llvm_type, value = values[0]
            self.emit(f"ret {llvm_type} {value}")
        else:
            struct_type = ret_type(self.type)
            aggregate = "undef"
            for index, (llvm_type, value) in enumerate(values):
                aggregate = self.value(
                    f"insertvalue {struct_type} {aggregate}, {llvm_type} {value}, {index}"
                )
            self.emit(f"ret {struct_type} {aggregate}")

    # -- branches --------------------------------------------------------

    def branch_to(self, depth: int) -> None:
        """Emit the stores and jump for `br depth`; the stack is not popped."""
        target = self.frames[-1 - depth]
        types = target.branch_types
        values = self.stack[len(self.stack) - len(types):] if types else []
        if target.kind == "func":
            self.emit_return(list(values))
            return
        slots = target.param_slots if target.kind == "loop" else target.result_slots
        for (llvm_type, value), slot in zip(values, slots):
            self.emit(f"store {llvm_type} {value}, ptr {slot}")
        self.emit(f"br label %{target.label}")

    def mark_unreachable(self) -> None:
        self.reachable = False
        self.skip_depth = 0

    # -- instructions ----------------------------------------------------

    def lower_instr(self, instr: Instr) -> None:
        code = instr.op
        if not self.reachable:
            self.skip(instr)
            return
        handler = CONTROL_HANDLERS.get(code)
        if handler is not None:
            handler(self, instr)
            return
        info = op.OPS[code]
        family_handler = FAMILY_HANDLERS.get(info.family)
        if family_handler is None:
            raise CompileError(f"unsupported instruction {info.name}")
        family_handler(self, instr, info)

    def skip(self, instr: Instr) -> None:
        """Skip dead code after an unconditional branch, up to the matching else/end."""
        code = instr.op
        if code in op.BLOCK_STARTS:
            self.skip_depth += 1
        elif code == op.END:
            if self.skip_depth:
                self.skip_depth -= 1
            else:
                self.end(instr)
        elif code == op.ELSE and not self.skip_depth:
            self.else_(instr)

    def block(self, instr: Instr) -> None:
        params, results = self.block_signature(instr.imm)
        end_label = self.label("end")
        frame = Frame("block", params, results, len(self.stack) - len(params), end_label, end_label)
        frame.result_slots = [self.slot(LLVM_TYPE[t]) for t in results]
        self.frames.append(frame)

    def loop(self, instr: Instr) -> None:
        params, results = self.block_signature(instr.imm)
        header = self.label("loop")
        frame = Frame("loop", params, results, len(self.stack) - len(params), header, header)
        frame.param_slots = [self.slot(LLVM_TYPE[t]) for t in params]
        for (llvm_type, value), slot in zip(self.stack[frame.height:], frame.param_slots):
            self.emit(f"store {llvm_type} {value}, ptr {slot}")
        del self.stack[frame.height:]
        self.emit(f"br label %{header}")
        self.start_block(header)
        for val_type, slot in zip(params, frame.param_slots):
            llvm_type = LLVM_TYPE[val_type]
            self.push(llvm_type, self.value(f"load {llvm_type}, ptr {slot}"))
        self.frames.append(frame)
        # A loop that no branch re-enters runs once, and its instructions are
        # charged with the enclosing region's.
        self.poll_checks(self.fuel_costs.get(self.index, 0))

    def if_(self, instr: Instr) -> None:
        condition = self.pop()
        params, results = self.block_signature(instr.imm)
        then_label = self.label("then")
        else_label = self.label("else")
        end_label = self.label("endif")
        frame = Frame("if", params, results, len(self.stack) - len(params), end_label, end_label)
        frame.result_slots = [self.slot(LLVM_TYPE[t]) for t in results]
        frame.else_label = else_label
        frame.param_values = list(self.stack[frame.height:])
        self.frames.append(frame)
        truth = self.value(f"icmp ne i32 {condition}, 0")
        self.emit(f"br i1 {truth}, label %{then_label}, label %{else_label}")
        self.start_block(then_label)

    def else_(self, instr: Instr) -> None:
        frame = self.frames[-1]
        if self.reachable:
            self.branch_to(0)
        frame.reachable_at_end = frame.reachable_at_end or self.reachable
        frame.seen_else = True
        del self.stack[frame.height:]
        self.stack.extend(frame.param_values)
        self.reachable = True
        self.start_block(frame.else_label)  # type: ignore[arg-type]

    def end(self, instr: Instr) -> None:
        frame = self.frames[-1]
        if frame.kind == "loop":
            self.frames.pop()
            if not self.reachable:
                # Only a fall-through leaves a loop, so the code after is dead too.
                del self.stack[frame.height:]
                self.mark_unreachable()
                if self.frames:
                    return
            return
        if self.reachable:
            self.branch_to(0)
        if frame.kind == "if" and not frame.seen_else:
            # The implicit else passes the params through as results.
            self.start_block(frame.else_label)  # type: ignore[arg-type]
            for (llvm_type, value), slot in zip(frame.param_values, frame.result_slots):
                self.emit(f"store {llvm_type} {value}, ptr {slot}")
            self.emit(f"br label %{frame.end_label}")
        self.frames.pop()
        del self.stack[frame.height:]
        self.start_block(frame.end_label)
        self.reachable = True
        if frame.kind == "func":
            values = []
            for val_type, slot in zip(frame.results, frame.result_slots):
                llvm_type = LLVM_TYPE[val_type]
                values.append((llvm_type, self.value(f"load {llvm_type}, ptr {slot}")))
            self.emit_return(values)
            return
        for val_type, slot in zip(frame.results, frame.result_slots):
            llvm_type = LLVM_TYPE[val_type]
            self.push(llvm_type, self.value(f"load {llvm_type}, ptr {slot}"))

    def br(self, instr: Instr) -> None:
        self.branch_to(instr.imm)
        self.mark_unreachable()

    def br_if(self, instr: Instr) -> None:
        condition = self.pop()
        truth = self.value(f"icmp ne i32 {condition}, 0")
        taken = self.label("brif")
        fallthrough = self.label("cont")
        self.emit(f"br i1 {truth}, label %{taken}, label %{fallthrough}")
        local_values, checked = dict(self.local_values), dict(self.checked)
        self.start_block(taken, only_from_current=True)
        self.branch_to(instr.imm)
        self.start_block(fallthrough, only_from_current=True)
        self.local_values, self.checked = local_values, checked

    def br_table(self, instr: Instr) -> None:
        labels, default = instr.imm
        index = self.pop()
        targets: dict[int, str] = {}
        for depth in list(labels) + [default]:
            if depth not in targets:
                targets[depth] = self.label("case")
        cases = " ".join(f"i32 {i}, label %{targets[d]}" for i, d in enumerate(labels))
        self.emit(f"switch i32 {index}, label %{targets[default]} [{cases}]")
        for depth, name in targets.items():
            self.start_block(name)
            self.branch_to(depth)
        self.mark_unreachable()

    def return_(self, instr: Instr) -> None:
        self.branch_to(len(self.frames) - 1)
        self.mark_unreachable()

    def unreachable(self, instr: Instr) -> None:
        self.trap(TrapCode.UNREACHABLE)
        self.start_block(self.label("dead"))
        self.mark_unreachable()

    def nop(self, instr: Instr) -> None:
        pass

    def call(self, instr: Instr) -> None:
        callee_type = self.owner.func_types[instr.imm]
        callee = self.owner.shared_code.get(instr.imm, instr.imm)
        self.callees.add(callee)
        self.emit_call(f"@f{callee}", callee_type)

    def emit_call(self, callee: str, callee_type: FuncType) -> None:
        count = len(callee_type.params)
        args = self.stack[len(self.stack) - count:] if count else []
        del self.stack[len(self.stack) - count:]
        arg_text = "".join(f", {t} {v}" for t, v in args)
        result_type = ret_type(callee_type)
        if result_type == "void":
            # `notail`: tail-recursion elimination would turn unbounded wasm
            # recursion into an endless loop instead of exhausting the stack.
            self.emit(f"notail call void {callee}(ptr %ctx{arg_text})")
            return
        result = self.value(f"notail call {result_type} {callee}(ptr %ctx{arg_text})")
        if len(callee_type.results) == 1:
            self.push(result_type, result)
            return
        for index, val_type in enumerate(callee_type.results):
            self.push(LLVM_TYPE[val_type], self.value(f"extractvalue {result_type} {result}, {index}"))

    def call_indirect(self, instr: Instr) -> None:
        """Call through the native table mirror, or through the runtime when the entry is not native."""
        type_index, table_index = instr.imm
        callee_type = self.module.types[type_index]
        element = self.pop()
        count = len(callee_type.params)
        args = self.stack[len(self.stack) - count:] if count else []
        del self.stack[len(self.stack) - count:]
        result_slots = [self.slot(LLVM_TYPE[t]) for t in callee_type.results]
        element64 = self.value(f"zext i32 {element} to i64")
        _, descriptors = self.ctx_field(CTX_TABLES, "ptr")
        descriptor = self.value(
            f"getelementptr i8, ptr {descriptors}, i64 {table_index * TABLE_DESCRIPTOR_SIZE}"
        )
        entries = self.value(f"load ptr, ptr {descriptor}, !tbaa !3")
        size_pointer = self.value(f"getelementptr i8, ptr {descriptor}, i64 8")
        size = self.value(f"load i64, ptr {size_pointer}, !tbaa !3")
        in_bounds = self.value(f"icmp ult i64 {element64}, {size}")
        check_label, fast_label = self.label("icheck"), self.label("ifast")
        slow_label, join_label = self.label("islow"), self.label("ijoin")
        self.emit(f"br i1 {in_bounds}, label %{check_label}, label %{slow_label}")
        self.start_block(check_label)
        offset = self.value(f"mul i64 {element64}, {TABLE_ENTRY_SIZE}")
        entry = self.value(f"getelementptr i8, ptr {entries}, i64 {offset}")
        type_id = self.value(f"load i64, ptr {entry}, !tbaa !3")
        expected = self.owner.type_id(type_index)
        matches = self.value(f"icmp eq i64 {type_id}, {expected}")
        self.emit(f"br i1 {matches}, label %{fast_label}, label %{slow_label}")
        self.start_block(fast_label)
        code_pointer = self.value(f"getelementptr i8, ptr {entry}, i64 8")
        code = self.value(f"load ptr, ptr {code_pointer}, !tbaa !3")
        self.stack.extend(args)
        self.emit_call(code, callee_type)
        self.store_results(callee_type, result_slots)
        self.emit(f"br label %{join_label}")
        self.start_block(slow_label)
        self.stack.extend(args)
        slots = self.spill_args(callee_type)
        self.emit(
            f"call i64 @rt_op(ptr %ctx, i32 {RT_CALL_INDIRECT}, i64 {type_index}, "
            f"i64 {table_index}, i64 {element64}, ptr {slots})"
        )
        self.load_results(callee_type, slots)
        self.store_results(callee_type, result_slots)
        self.emit(f"br label %{join_label}")
        self.start_block(join_label)
        for val_type, slot in zip(callee_type.results, result_slots):
            llvm_type = LLVM_TYPE[val_type]
            self.push(llvm_type, self.value(f"load {llvm_type}, ptr {slot}"))

    def store_results(self, func_type: FuncType, result_slots: list[str]) -> None:
        """Pop a call's results off the stack into `result_slots`."""
        values = self.stack[len(self.stack) - len(result_slots):] if result_slots else []
        del self.stack[len(self.stack) - len(result_slots):]
        for (llvm_type, value), slot in zip(values, result_slots):
            self.emit(f"store {llvm_type} {value}, ptr {slot}")

    def spill_args(self, func_type: FuncType) -> str:
        """Store the call's arguments into an i64 slot array and pop them."""
        size = max(len(func_type.params), len(func_type.results), 1)
        slots = self.slot(f"[{size} x i64]")
        count = len(func_type.params)
        args = self.stack[len(self.stack) - count:] if count else []
        del self.stack[len(self.stack) - count:]
        for index, (llvm_type, value) in enumerate(args):
            pointer = self.value(f"getelementptr i64, ptr {slots}, i64 {index}")
            self.emit(f"store {llvm_type} {value}, ptr {pointer}")
        return slots

    def load_results(self, func_type: FuncType, slots: str) -> None:
        for index, val_type in enumerate(func_type.results):
            llvm_type = LLVM_TYPE[val_type]
            pointer = self.value(f"getelementptr i64, ptr {slots}, i64 {index}")
            self.push(llvm_type, self.value(f"load {llvm_type}, ptr {pointer}"))

    def drop(self, instr: Instr) -> None:
        self.pop()

    def select(self, instr: Instr) -> None:
        condition = self.pop()
        second_type, second = self.stack.pop()
        first_type, first = self.stack.pop()
        truth = self.value(f"icmp ne i32 {condition}, 0")
        self.push(first_type, self.value(f"select i1 {truth}, {first_type} {first}, {first_type} {second}"))

    # -- variables -------------------------------------------------------

    def local_get(self, instr: Instr) -> None:
        llvm_type, slot = self.local_slots[instr.imm]
        value = self.local_values.get(instr.imm)
        if value is None:
            value = self.value(f"load {llvm_type}, ptr {slot}")
            self.local_values[instr.imm] = value
        self.push(llvm_type, value)

    def local_set(self, instr: Instr) -> None:
        llvm_type, slot = self.local_slots[instr.imm]
        value = self.pop()
        self.emit(f"store {llvm_type} {value}, ptr {slot}")
        self.local_values[instr.imm] = value

    def local_tee(self, instr: Instr) -> None:
        llvm_type, slot = self.local_slots[instr.imm]
        value = self.stack[-1][1]
        self.emit(f"store {llvm_type} {value}, ptr {slot}")
        self.local_values[instr.imm] = value

    def global_cell(self, index: int) -> str:
        """Return the pointer to a global's cell, loaded once per call at function entry.

        The runtime fixes every cell's address when it creates the instance,
        so the pointer stays valid for the whole call.
        """
        cell = self.global_cells.get(index)
        if cell is None:
            cell = f"%g{index}"
            self.allocas.append(f"  %gp{index} = getelementptr i8, ptr %globals, i64 {8 * index}")
            self.allocas.append(f"  {cell} = load ptr, ptr %gp{index}, !tbaa !3")
            self.global_cells[index] = cell
        return cell

    def global_get(self, instr: Instr) -> None:
        llvm_type = LLVM_TYPE[self.owner.global_types[instr.imm]]
        cell = self.global_cell(instr.imm)
        self.push(llvm_type, self.value(f"load {llvm_type}, ptr {cell}, !tbaa !4"))

    def global_set(self, instr: Instr) -> None:
        llvm_type = LLVM_TYPE[self.owner.global_types[instr.imm]]
        cell = self.global_cell(instr.imm)
        self.emit(f"store {llvm_type} {self.pop()}, ptr {cell}, !tbaa !4")

    # -- memory ----------------------------------------------------------

    def address(self, base: str, offset: int, width: int) -> str:
        """Bounds-check an access and return a pointer into linear memory."""
        known = self.checked.get(base)
        if known is not None and offset + width <= known[0]:
            # An earlier check of this block already covered the range. Memory
            # only changes size at calls, which clear `checked`, or when
            # another thread closes it, and the runtime keeps the old pages
            # mapped while native code runs.
            _, base64, memory = known
        else:
            base64 = known[1] if known is not None else self.value(f"zext i32 {base} to i64")
            end = self.value(f"add i64 {base64}, {offset + width}")
            # Both fields are loaded again after every call because memory.grow
            # and host calls change them. `lower` sets up both pointers.
            size = self.value("load i64, ptr %memsizep, !tbaa !3")
            outside = self.value(f"icmp ugt i64 {end}, {size}")
            self.trap_if(outside, TrapCode.MEMORY_OUT_OF_BOUNDS)
            memory = self.value("load ptr, ptr %membasep, !tbaa !3")
            covered = max(offset + width, known[0] if known is not None else 0)
            self.checked[base] = (covered, base64, memory)
        effective = self.value(f"add i64 {base64}, {offset}") if offset else base64
        return self.value(f"getelementptr i8, ptr {memory}, i64 {effective}")

    def load(self, instr: Instr, info: op.OpInfo) -> None:
        _, offset = instr.imm
        pointer = self.address(self.pop(), offset, info.mem_bytes)
        result_type = LLVM_TYPE[info.results[0]]  # type: ignore[index]
        width = info.mem_bytes * 8
        if result_type in ("float", "double") or width == int(result_type[1:]):
            self.push(result_type, self.value(f"load {result_type}, ptr {pointer}, align 1, !tbaa !2"))
            return
        narrow = self.value(f"load i{width}, ptr {pointer}, align 1, !tbaa !2")
        extend = "sext" if info.name.endswith("_s") else "zext"
        self.push(result_type, self.value(f"{extend} i{width} {narrow} to {result_type}"))

    def store(self, instr: Instr, info: op.OpInfo) -> None:
        _, offset = instr.imm
        value_type, value = self.stack.pop()
        pointer = self.address(self.pop(), offset, info.mem_bytes)
        width = info.mem_bytes * 8
        if value_type in ("i32", "i64") and width != int(value_type[1:]):
            value = self.value(f"trunc {value_type} {value} to i{width}")
            value_type = f"i{width}"
        self.emit(f"store {value_type} {value}, ptr {pointer}, align 1, !tbaa !2")

    def memory_op(self, instr: Instr, info: op.OpInfo) -> None:
        name = info.name
        if name == "memory.size":
            _, size = self.ctx_field(CTX_MEM_SIZE, "i64")
            pages = self.value(f"lshr i64 {size}, 16")
            self.push("i32", self.value(f"trunc i64 {pages} to i32"))
        elif name == "memory.grow":
            delta = self.value(f"zext i32 {self.pop()} to i64")
            self.push("i32", self.rt_op_i32(RT_MEMORY_GROW, delta, "0", "0"))
        elif name == "memory.fill":
            length, value, dest = self.pop(), self.pop(), self.pop()
            pointer = self.range_pointer(dest, length)
            byte = self.value(f"trunc i32 {value} to i8")
            length64 = self.value(f"zext i32 {length} to i64")
            self.emit(f"call void @llvm.memset.p0.i64(ptr {pointer}, i8 {byte}, i64 {length64}, i1 false)")
        elif name == "memory.copy":
            length, source, dest = self.pop(), self.pop(), self.pop()
            source_pointer = self.range_pointer(source, length)
            dest_pointer = self.range_pointer(dest, length)
            length64 = self.value(f"zext i32 {length} to i64")
            self.emit(
                f"call void @llvm.memmove.p0.p0.i64(ptr {dest_pointer}, ptr {source_pointer}, "
                f"i64 {length64}, i1 false)"
            )
        elif name == "memory.init":
            length, source, dest = self.pop(), self.pop(), self.pop()
            packed = self.pack_pair(source, length)
            dest64 = self.value(f"zext i32 {dest} to i64")
            self.rt_op(RT_MEMORY_INIT, str(instr.imm), dest64, packed)
        elif name == "data.drop":
            self.rt_op(RT_DATA_DROP, str(instr.imm), "0", "0")
        else:
            raise CompileError(f"unsupported instruction {name}")

    def range_pointer(self, start: str, length: str) -> str:
        start64 = self.value(f"zext i32 {start} to i64")
        length64 = self.value(f"zext i32 {length} to i64")
        end = self.value(f"add i64 {start64}, {length64}")
        _, size = self.ctx_field(CTX_MEM_SIZE, "i64")
        outside = self.value(f"icmp ugt i64 {end}, {size}")
        self.trap_if(outside, TrapCode.MEMORY_OUT_OF_BOUNDS)
        _, memory = self.ctx_field(CTX_MEM_BASE, "ptr")
        return self.value(f"getelementptr i8, ptr {memory}, i64 {start64}")

    def pack_pair(self, high: str, low: str) -> str:
        high64 = self.value(f"zext i32 {high} to i64")
        low64 = self.value(f"zext i32 {low} to i64")
        shifted = self.value(f"shl i64 {high64}, 32")
        return self.value(f"or i64 {shifted}, {low64}")

    def rt_op(self, operation: int, a: str, b: str, c: str) -> str:
        return self.value(
            f"call i64 @rt_op(ptr %ctx, i32 {operation}, i64 {a}, i64 {b}, i64 {c}, ptr null)"
        )

    def rt_op_i32(self, operation: int, a: str, b: str, c: str) -> str:
        result = self.rt_op(operation, a, b, c)
        return self.value(f"trunc i64 {result} to i32")

    # -- tables and references -------------------------------------------

    def table_op(self, instr: Instr, info: op.OpInfo) -> None:
        name = info.name
        if name == "table.get":
            index = self.value(f"zext i32 {self.pop()} to i64")
            self.push("i64", self.rt_op(RT_TABLE_GET, str(instr.imm), index, "0"))
        elif name == "table.set":
            value = self.pop()
            index = self.value(f"zext i32 {self.pop()} to i64")
            self.rt_op(RT_TABLE_SET, str(instr.imm), index, value)
        elif name == "table.size":
            self.push("i32", self.rt_op_i32(RT_TABLE_SIZE, str(instr.imm), "0", "0"))
        elif name == "table.grow":
            delta = self.value(f"zext i32 {self.pop()} to i64")
            value = self.pop()
            self.push("i32", self.rt_op_i32(RT_TABLE_GROW, str(instr.imm), delta, value))
        elif name == "table.fill":
            length, value, start = self.pop(), self.pop(), self.pop()
            packed = self.pack_pair(start, length)
            self.rt_op(RT_TABLE_FILL, str(instr.imm), packed, value)
        elif name == "table.copy":
            dest_table, source_table = instr.imm
            length, source, dest = self.pop(), self.pop(), self.pop()
            tables = (dest_table << 32) | source_table
            positions = self.pack_pair(dest, source)
            length64 = self.value(f"zext i32 {length} to i64")
            self.rt_op(RT_TABLE_COPY, str(tables), positions, length64)
        elif name == "table.init":
            elem_index, table_index = instr.imm
            length, source, dest = self.pop(), self.pop(), self.pop()
            indices = (elem_index << 32) | table_index
            positions = self.pack_pair(dest, source)
            length64 = self.value(f"zext i32 {length} to i64")
            self.rt_op(RT_TABLE_INIT, str(indices), positions, length64)
        elif name == "elem.drop":
            self.rt_op(RT_ELEM_DROP, str(instr.imm), "0", "0")
        else:
            raise CompileError(f"unsupported instruction {name}")

    def reference_op(self, instr: Instr, info: op.OpInfo) -> None:
        if instr.op == op.REF_NULL:
            self.push("i64", "0")
        elif instr.op == op.REF_IS_NULL:
            is_null = self.value(f"icmp eq i64 {self.pop()}, 0")
            self.push("i32", self.value(f"zext i1 {is_null} to i32"))
        else:
            self.push("i64", self.rt_op(RT_REF_FUNC, str(instr.imm), "0", "0"))

    # -- numeric ---------------------------------------------------------

    def const(self, instr: Instr, info: op.OpInfo) -> None:
        val_type = info.results[0]  # type: ignore[index]
        llvm_type = LLVM_TYPE[val_type]
        if val_type in (ValType.I32, ValType.I64):
            self.push(llvm_type, str(instr.imm))
            return
        # Float constants go through their bits so that every NaN payload survives.
        bits = instr.imm
        width = 32 if val_type is ValType.F32 else 64
        signed = bits - (1 << width) if bits >= 1 << (width - 1) else bits
        value = self.value(f"bitcast i{width} {signed} to {llvm_type}")
        if bits in IDENTITY_FLOAT_BITS[width]:
            # LLVM folds x - 0.0, x * 1.0, x / -1.0 and similar into x or -x,
            # which keeps a signalling NaN that wasm arithmetic must quiet.
            value = self.opaque(llvm_type, value)
        self.push(llvm_type, value)

    def opaque(self, llvm_type: str, value: str) -> str:
        """Return `value` through an empty inline asm, so LLVM cannot fold on it."""
        return self.value(f'call {llvm_type} asm "", "={FLOAT_REGISTER},0"({llvm_type} {value})')

    def numeric(self, instr: Instr, info: op.OpInfo) -> None:
        lower_numeric(self, info)


def _int_type(name: str) -> str:
    return name[:3]


def lower_numeric(fn: FunctionLowering, info: op.OpInfo) -> None:
    """Lower a test, comparison, unary, binary or conversion instruction."""
    name = info.name
    prefix, _, operation = name.partition(".")
    llvm_type = {"i32": "i32", "i64": "i64", "f32": "float", "f64": "double"}[prefix]
    family = info.family
    if family is op.Family.TEST:
        zero = fn.value(f"icmp eq {llvm_type} {fn.pop()}, 0")
        fn.push("i32", fn.value(f"zext i1 {zero} to i32"))
        return
    if family is op.Family.COMPARE:
        right, left = fn.pop(), fn.pop()
        if llvm_type in ("i32", "i64"):
            predicate = INT_PREDICATES[operation]
            result = fn.value(f"icmp {predicate} {llvm_type} {left}, {right}")
        else:
            predicate = FLOAT_PREDICATES[operation]
            result = fn.value(f"fcmp {predicate} {llvm_type} {left}, {right}")
        fn.push("i32", fn.value(f"zext i1 {result} to i32"))
        return
    if family is op.Family.UNARY:
        operand = fn.pop()
        fn.push(llvm_type, lower_unary(fn, llvm_type, operation, operand))
        return
    if family is op.Family.BINARY:
        right, left = fn.pop(), fn.pop()
        fn.push(llvm_type, lower_binary(fn, llvm_type, operation, left, right))
        return
    lower_conversion(fn, info)


INT_PREDICATES = {
    "eq": "eq", "ne": "ne", "lt_s": "slt", "lt_u": "ult", "gt_s": "sgt", "gt_u": "ugt",
    "le_s": "sle", "le_u": "ule", "ge_s": "sge", "ge_u": "uge",
}
FLOAT_PREDICATES = {"eq": "oeq", "ne": "une", "lt": "olt", "gt": "ogt", "le": "ole", "ge": "oge"}
INT_INTRINSIC_SUFFIX = {"i32": "i32", "i64": "i64"}
FLOAT_INTRINSIC_SUFFIX = {"float": "f32", "double": "f64"}


def lower_unary(fn: FunctionLowering, llvm_type: str, operation: str, operand: str) -> str:
    if llvm_type in ("i32", "i64"):
        intrinsic = {"clz": "ctlz", "ctz": "cttz", "popcnt": "ctpop"}[operation]
        fn.owner.need_intrinsic(intrinsic, llvm_type)
        if intrinsic == "ctpop":
            return fn.value(f"call {llvm_type} @llvm.ctpop.{llvm_type}({llvm_type} {operand})")
        return fn.value(f"call {llvm_type} @llvm.{intrinsic}.{llvm_type}({llvm_type} {operand}, i1 false)")
    if operation == "neg":
        return fn.value(f"fneg {llvm_type} {operand}")
    intrinsic = {
        "abs": "fabs", "ceil": "ceil", "floor": "floor", "trunc": "trunc",
        "nearest": "roundeven", "sqrt": "sqrt",
    }[operation]
    suffix = FLOAT_INTRINSIC_SUFFIX[llvm_type]
    fn.owner.need_intrinsic(intrinsic, llvm_type)
    return fn.value(f"call {llvm_type} @llvm.{intrinsic}.{suffix}({llvm_type} {operand})")


def lower_binary(fn: FunctionLowering, llvm_type: str, operation: str, left: str, right: str) -> str:
    if llvm_type in ("i32", "i64"):
        return lower_int_binary(fn, llvm_type, operation, left, right)
    simple = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv"}
    if operation in simple:
        return fn.value(f"{simple[operation]} {llvm_type} {left}, {right}")
    intrinsic = {"min": "minimum", "max": "maximum", "copysign": "copysign"}[operation]
    suffix = FLOAT_INTRINSIC_SUFFIX[llvm_type]
    fn.owner.need_intrinsic(intrinsic, llvm_type, arity=2)
    result = fn.value(f"call {llvm_type} @llvm.{intrinsic}.{suffix}({llvm_type} {left}, {llvm_type} {right})")
    if operation == "copysign":
        return result
    # llvm.minimum passes a signalling NaN operand through unchanged, but wasm
    # returns a quiet (arithmetic) NaN; the sum of the operands is one.
    unordered = fn.value(f"fcmp uno {llvm_type} {left}, {right}")
    quiet_nan = fn.value(f"fadd {llvm_type} {left}, {right}")
    return fn.value(f"select i1 {unordered}, {llvm_type} {quiet_nan}, {llvm_type} {result}")


def lower_int_binary(fn: FunctionLowering, llvm_type: str, operation: str, left: str, right: str) -> str:
    bits = int(llvm_type[1:])
    simple = {"add": "add", "sub": "sub", "mul": "mul", "and": "and", "or": "or", "xor": "xor"}
    if operation in simple:
        return fn.value(f"{simple[operation]} {llvm_type} {left}, {right}")
    if operation in ("shl", "shr_s", "shr_u"):
        amount = fn.value(f"and {llvm_type} {right}, {bits - 1}")
        instruction = {"shl": "shl", "shr_s": "ashr", "shr_u": "lshr"}[operation]
        return fn.value(f"{instruction} {llvm_type} {left}, {amount}")
    if operation in ("rotl", "rotr"):
        intrinsic = "fshl" if operation == "rotl" else "fshr"
        fn.owner.need_intrinsic(intrinsic, llvm_type, arity=3)
        return fn.value(
            f"call {llvm_type} @llvm.{intrinsic}.{llvm_type}({llvm_type} {left}, "
            f"{llvm_type} {left}, {llvm_type} {right})"
        )
    zero = fn.value(f"icmp eq {llvm_type} {right}, 0")
    fn.trap_if(zero, TrapCode.INTEGER_DIVIDE_BY_ZERO)
    min_value = -(1 << (bits - 1))
    if operation == "div_s":
        is_min = fn.value(f"icmp eq {llvm_type} {left}, {min_value}")
        is_minus_one = fn.value(f"icmp eq {llvm_type} {right}, -1")
        overflow = fn.value(f"and i1 {is_min}, {is_minus_one}")
        fn.trap_if(overflow, TrapCode.INTEGER_OVERFLOW)
        return fn.value(f"sdiv {llvm_type} {left}, {right}")
    if operation == "div_u":
        return fn.value(f"udiv {llvm_type} {left}, {right}")
    if operation == "rem_s":
        # srem of INT_MIN by -1 is undefined in LLVM; wasm defines the result as 0.
        is_minus_one = fn.value(f"icmp eq {llvm_type} {right}, -1")
        divisor = fn.value(f"select i1 {is_minus_one}, {llvm_type} 1, {llvm_type} {right}")
        return fn.value(f"srem {llvm_type} {left}, {divisor}")
    return fn.value(f"urem {llvm_type} {left}, {right}")


def lower_conversion(fn: FunctionLowering, info: op.OpInfo) -> None:
    name = info.name
    source = LLVM_TYPE[info.params[0]]  # type: ignore[index]
    target = LLVM_TYPE[info.results[0]]  # type: ignore[index]
    operand = fn.pop()
    operation = name.split(".", 1)[1]
    if operation == "wrap_i64":
        result = fn.value(f"trunc i64 {operand} to i32")
    elif operation.startswith("extend_i32"):
        extend = "sext" if operation.endswith("_s") else "zext"
        result = fn.value(f"{extend} i32 {operand} to i64")
    elif operation.startswith("extend"):
        width = int(operation[6:-2])
        narrow = fn.value(f"trunc {target} {operand} to i{width}")
        result = fn.value(f"sext i{width} {narrow} to {target}")
    elif operation.startswith("trunc_sat"):
        signed = operation.endswith("_s")
        intrinsic = "fptosi.sat" if signed else "fptoui.sat"
        suffix = FLOAT_INTRINSIC_SUFFIX[source]
        fn.owner.need_declaration(f"declare {target} @llvm.{intrinsic}.{target}.{suffix}({source})")
        result = fn.value(f"call {target} @llvm.{intrinsic}.{target}.{suffix}({source} {operand})")
    elif operation.startswith("trunc"):
        result = lower_trapping_truncation(fn, source, target, operation.endswith("_s"), operand)
    elif operation.startswith("convert"):
        convert = "sitofp" if operation.endswith("_s") else "uitofp"
        result = fn.value(f"{convert} {source} {operand} to {target}")
    elif operation == "demote_f64":
        # Opaque, so that demote(promote(x)) is not folded to x: wasm quiets a signalling NaN.
        operand = fn.opaque("double", operand)
        result = fn.value(f"fptrunc double {operand} to float")
    elif operation == "promote_f32":
        result = fn.value(f"fpext float {operand} to double")
    elif operation.startswith("reinterpret"):
        result = fn.value(f"bitcast {source} {operand} to {target}")
    else:
        raise CompileError(f"unsupported instruction {name}")
    fn.push(target, result)


def lower_trapping_truncation(fn: FunctionLowering, source: str, target: str, signed: bool, operand: str) -> str:
    is_nan = fn.value(f"fcmp uno {source} {operand}, {operand}")
    fn.trap_if(is_nan, TrapCode.BAD_CONVERSION_TO_INTEGER)
    bits = int(target[1:])
    mantissa = 24 if source == "float" else 53
    if signed:
        # In range iff lower < x < 2**(bits-1), with the bound exactly representable.
        if mantissa > bits:
            low, low_predicate = -(2 ** (bits - 1)) - 1, "ogt"
        else:
            low, low_predicate = -(2 ** (bits - 1)), "oge"
        high = 2 ** (bits - 1)
    else:
        low, low_predicate = -1, "ogt"
        high = 2**bits
    low_ok = fn.value(f"fcmp {low_predicate} {source} {operand}, {float(low)!r}")
    high_ok = fn.value(f"fcmp olt {source} {operand}, {hex_float(float(high))}")
    in_range = fn.value(f"and i1 {low_ok}, {high_ok}")
    out_of_range = fn.value(f"xor i1 {in_range}, true")
    fn.trap_if(out_of_range, TrapCode.INTEGER_OVERFLOW)
    convert = "fptosi" if signed else "fptoui"
    return fn.value(f"{convert} {source} {operand} to {target}")


def hex_float(value: float) -> str:
    """Return a float as LLVM's exact hexadecimal double constant."""
    import struct

    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", value))[0]


CONTROL_HANDLERS = {
    op.UNREACHABLE: FunctionLowering.unreachable,
    op.NOP: FunctionLowering.nop,
    op.BLOCK: FunctionLowering.block,
    op.LOOP: FunctionLowering.loop,
    op.IF: FunctionLowering.if_,
    op.ELSE: FunctionLowering.else_,
    op.END: FunctionLowering.end,
    op.BR: FunctionLowering.br,
    op.BR_IF: FunctionLowering.br_if,
    op.BR_TABLE: FunctionLowering.br_table,
    op.RETURN: FunctionLowering.return_,
    op.CALL: FunctionLowering.call,
    op.CALL_INDIRECT: FunctionLowering.call_indirect,
    op.DROP: FunctionLowering.drop,
    op.SELECT: FunctionLowering.select,
    op.SELECT_T: FunctionLowering.select,
    op.LOCAL_GET: FunctionLowering.local_get,
    op.LOCAL_SET: FunctionLowering.local_set,
    op.LOCAL_TEE: FunctionLowering.local_tee,
    op.GLOBAL_GET: FunctionLowering.global_get,
    op.GLOBAL_SET: FunctionLowering.global_set,
}

FAMILY_HANDLERS = {
    op.Family.LOAD: FunctionLowering.load,
    op.Family.STORE: FunctionLowering.store,
    op.Family.MEMORY: FunctionLowering.memory_op,
    op.Family.TABLE: FunctionLowering.table_op,
    op.Family.REFERENCE: FunctionLowering.reference_op,
    op.Family.CONST: FunctionLowering.const,
    op.Family.TEST: FunctionLowering.numeric,
    op.Family.COMPARE: FunctionLowering.numeric,
    op.Family.UNARY: FunctionLowering.numeric,
    op.Family.BINARY: FunctionLowering.numeric,
    op.Family.CONVERT: FunctionLowering.numeric,
}


class ModuleLowering:
    """Lower a validated module's functions to one LLVM IR module."""

    def __init__(self, module: Module, func_types: list[FuncType], options: Options) -> None:
        self.module = module
        self.func_types = func_types
        self.options = options
        self.num_imported_funcs = len(module.imports_of(ExternKind.FUNC))
        self.global_types = [imp.desc.val_type for imp in module.imports_of(ExternKind.GLOBAL)]  # type: ignore[union-attr]
        self.global_types += [g.type.val_type for g in module.globals]
        self.declarations: set[str] = set()
        self.type_ids = canonical_type_ids(func_types, module.types)
        self.shared_code = find_shared_code(module, func_types, self.num_imported_funcs)

    def type_id(self, type_index: int) -> int:
        """Return the table-mirror id of a type of this module (structurally equal types share one)."""
        return self.type_ids[self.module.types[type_index]]

    def need_declaration(self, text: str) -> None:
        self.declarations.add(text)

    def need_intrinsic(self, name: str, llvm_type: str, arity: int = 1) -> None:
        suffix = FLOAT_INTRINSIC_SUFFIX.get(llvm_type, llvm_type)
        params = [llvm_type] * arity
        if name in ("ctlz", "cttz"):
            params.append("i1")
        self.declarations.add(f"declare {llvm_type} @llvm.{name}.{suffix}({', '.join(params)})")

    def import_thunk(self, func_index: int) -> str:
        """Return a function that forwards a call to an imported function through `@rt_call`."""
        func_type = self.func_types[func_index]
        size = max(len(func_type.params), len(func_type.results), 1)
        params = ", ".join(f"{LLVM_TYPE[t]} %a{i}" for i, t in enumerate(func_type.params))
        sep = ", " if params else ""
        lines = [f"define internal {ret_type(func_type)} @f{func_index}(ptr %ctx{sep}{params}) {{"]
        lines.append(f"  %slots = alloca [{size} x i64]")
        for index, val_type in enumerate(func_type.params):
            lines.append(f"  %p{index} = getelementptr i64, ptr %slots, i64 {index}")
            lines.append(f"  store {LLVM_TYPE[val_type]} %a{index}, ptr %p{index}")
        lines.append(f"  call void @rt_call(ptr %ctx, i32 {func_index}, ptr %slots)")
        values = []
        for index, val_type in enumerate(func_type.results):
            llvm_type = LLVM_TYPE[val_type]
            lines.append(f"  %q{index} = getelementptr i64, ptr %slots, i64 {index}")
            lines.append(f"  %r{index} = load {llvm_type}, ptr %q{index}")
            values.append((llvm_type, f"%r{index}"))
        lines.extend(return_lines(func_type, values))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def entry_trampoline(self, func_type: FuncType) -> str:
        """Return `@entry<type id>(ctx, slots, code) -> i32`, the runtime's way into native code.

        It calls `code`, a function of type `func_type`. Arguments and results
        travel in an i64 slot array. It returns 0, or the trap number when the
        function trapped. One trampoline per type keeps the setjmp frames out
        of the function bodies and the code small.
        """
        lines = [
            f"define i32 @entry{self.type_ids[func_type]}(ptr %ctx, ptr %slots, ptr %code) {{",
            "  %jb = alloca [64 x i64], align 16",
            "  %saved = load ptr, ptr %ctx",
            f"  %depthp = getelementptr i8, ptr %ctx, i64 {CTX_DEPTH}",
            "  %depth = load i64, ptr %depthp",
            "  store ptr %jb, ptr %ctx",
            # The outermost entry sets the native stack limit: the thread's
            # stack floor when its stack pointer lies between the floor and
            # the stack's top (so not on a stack that a coroutine library
            # switched to), else its own stack pointer minus the budget.
            # Nested entries from host calls keep the limit.
            f"  %limitp = getelementptr i8, ptr %ctx, i64 {CTX_STACK_LIMIT}",
            "  %limit = load i64, ptr %limitp",
            f"  %budgetp = getelementptr i8, ptr %ctx, i64 {CTX_STACK_BUDGET}",
            "  %budget = load i64, ptr %budgetp",
            f"  %floorp = getelementptr i8, ptr %ctx, i64 {CTX_STACK_FLOOR}",
            "  %floor = load i64, ptr %floorp",
            f"  %topp = getelementptr i8, ptr %ctx, i64 {CTX_STACK_TOP}",
            "  %top = load i64, ptr %topp",
            "  %sp = call ptr @llvm.stacksave.p0()",
            "  %spi = ptrtoint ptr %sp to i64",
            "  %relative = sub i64 %spi, %budget",
            "  %abovefloor = icmp ugt i64 %spi, %floor",
            "  %belowtop = icmp ule i64 %spi, %top",
            "  %onstack = and i1 %abovefloor, %belowtop",
            "  %fresh = select i1 %onstack, i64 %floor, i64 %relative",
            "  %outer = icmp eq i64 %limit, 0",
            "  %newlimit = select i1 %outer, i64 %fresh, i64 %limit",
            "  store i64 %newlimit, ptr %limitp",
            "  %status = call i32 @_setjmp(ptr %jb) returns_twice",
            "  %ok = icmp eq i32 %status, 0",
            "  br i1 %ok, label %run, label %trapped",
            "trapped:",
            "  store ptr %saved, ptr %ctx",
            "  store i64 %depth, ptr %depthp",
            "  store i64 %limit, ptr %limitp",
            "  ret i32 %status",
            "run:",
        ]
        args = []
        for index, val_type in enumerate(func_type.params):
            llvm_type = LLVM_TYPE[val_type]
            lines.append(f"  %p{index} = getelementptr i64, ptr %slots, i64 {index}")
            lines.append(f"  %a{index} = load {llvm_type}, ptr %p{index}")
            args.append(f", {llvm_type} %a{index}")
        result_type = ret_type(func_type)
        call = f"call {result_type} %code(ptr %ctx{''.join(args)})"
        if result_type == "void":
            lines.append(f"  {call}")
        else:
            lines.append(f"  %result = {call}")
        for index, val_type in enumerate(func_type.results):
            llvm_type = LLVM_TYPE[val_type]
            value = "%result"
            if len(func_type.results) > 1:
                lines.append(f"  %v{index} = extractvalue {result_type} %result, {index}")
                value = f"%v{index}"
            lines.append(f"  %q{index} = getelementptr i64, ptr %slots, i64 {index}")
            lines.append(f"  store {llvm_type} {value}, ptr %q{index}")
        lines += [
            "  store ptr %saved, ptr %ctx",
            "  store i64 %limit, ptr %limitp",
            "  ret i32 0",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def declaration(self, func_index: int) -> str:
        func_type = self.func_types[func_index]
        params = "".join(f", {LLVM_TYPE[t]}" for t in func_type.params)
        return f"declare {ret_type(func_type)} @f{func_index}(ptr{params})\n"

    def module_ir(self, func_indices: list[int] | None = None, entries: bool = True) -> str:
        """Return one LLVM module: the given defined functions, and the entry trampolines.

        With `func_indices` None the module holds every defined function. A
        partial module declares the defined functions that its own functions
        call, so several partial modules link together in one execution
        engine. Exactly one of them must have `entries` True.
        """
        total = len(self.func_types)
        defined = range(self.num_imported_funcs, total)
        selected = list(defined) if func_indices is None else list(func_indices)
        # A function that shares another's code gets no body of its own.
        selected = [index for index in selected if index not in self.shared_code]
        chosen = set(selected)
        bodies = []
        callees: set[int] = set()
        for func_index in selected:
            function = FunctionLowering(self, func_index)
            bodies.append(function.lower())
            callees |= function.callees
        parts = [PRELUDE, "declare i32 @_setjmp(ptr) returns_twice\n"]
        for func_index in range(self.num_imported_funcs):
            parts.append(self.import_thunk(func_index))
        for func_index in sorted(callees - chosen):
            if func_index >= self.num_imported_funcs:
                parts.append(self.declaration(func_index))
        parts.extend(bodies)
        if entries:
            for func_type in self.type_ids:
                parts.append(self.entry_trampoline(func_type))
        parts.extend(sorted(self.declarations))
        parts.append('!0 = !{!"branch_weights", i32 1, i32 2000}\n')
        parts.append(TBAA_METADATA)
        return "\n".join(parts)


def canonical_type_ids(func_types: list[FuncType], types: list[FuncType]) -> dict[FuncType, int]:
    """Number the distinct function types of a module from 1, in first-use order.

    The numbers depend only on the module, so AOT code and the runtime's
    table mirror agree on them.
    """
    ids: dict[FuncType, int] = {}
    for func_type in list(types) + list(func_types):
        ids.setdefault(func_type, len(ids) + 1)
    return ids


def return_lines(func_type: FuncType, values: list[tuple[str, str]]) -> list[str]:
    results = func_type.results
    if not results:
        return ["  ret void"]
    if len(results) == 1:
        return [f"  ret {values[0][0]} {values[0][1]}"]
    struct_type = ret_type(func_type)
    lines = []
    aggregate = "undef"
    for index, (llvm_type, value) in enumerate(values):
        lines.append(f"  %agg{index} = insertvalue {struct_type} {aggregate}, {llvm_type} {value}, {index}")
        aggregate = f"%agg{index}"
    lines.append(f"  ret {struct_type} {aggregate}")
    return lines
