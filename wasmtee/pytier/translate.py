"""Translation of one wasm function into Python source.

Conventions:
- Parameters and locals become Python locals `l0`, `l1`, ... Temporaries are
  `t0`, `t1`, ...; block results `r<block>_<n>`; loop parameters likewise.
- The operand stack exists only at translation time, as a list of `Operand`s:
  Python expressions plus the locals they read. Pure operations (no trap, no
  side effect, no dependence on memory or globals) stay expressions, and
  everything else is assigned to a temporary at once, so evaluation order
  matches wasm's.
- Structured control maps to Python `while True:` loops. A loop, or a
  block or if that some branch targets, becomes a Python loop. A branch to
  the innermost Python loop is a plain `break` or `continue`. A branch that
  must leave several Python loops sets `_br` to the target's id and breaks,
  so every loop it crosses forwards it.
- CPython allows 20 nested loop and try blocks per function. Targeted blocks
  deeper than MAX_PYTHON_BLOCKS Python loops are therefore not loops: a
  branch to one sets `_br`, and the code after each statement that may have
  set it runs under `if not _br:` up to the target's end, which clears it.
- A branch to the function body is a `return`.
- A function nested deeper than that (more than MAX_PYTHON_LOOPS Python
  loops, or more than MAX_INDENT levels of indentation) raises
  NestingTooDeep, and wasmtee.pytier.flat translates it to one dispatch loop
  over basic blocks instead.
- Traps from Python itself are converted at the function level: a
  ZeroDivisionError from `//` and `%` is "integer divide by zero", a
  struct.error from a load or store past the memory's current view is "out of
  bounds memory access", and RecursionError is "call stack exhausted".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

from wasmtee import opcodes as op
from wasmtee.errors import CompileError
from wasmtee.fuel import branch_targets, fuel_costs
from wasmtee.model import FuncType, Instr, Module, ValType

I32, I64, F32, F64 = ValType.I32, ValType.I64, ValType.F32, ValType.F64
M32 = "0xFFFFFFFF"
M64 = "0xFFFFFFFFFFFFFFFF"
# Longest expression kept inline before it is assigned to a temporary.
MAX_EXPRESSION = 160


@dataclass
class Operand:
    expr: str
    reads: frozenset[int] = frozenset()  # locals the expression reads
    condition: str | None = None  # a Python boolean form, for comparisons


@dataclass
class Block:
    kind: str  # "func", "block", "loop", "if"
    index: int  # instruction index of the opener, -1 for the function
    params: tuple[ValType, ...]
    results: tuple[ValType, ...]
    height: int
    is_loop_in_python: bool
    result_vars: list[str] = field(default_factory=list)
    param_vars: list[str] = field(default_factory=list)
    indent: int = 0
    # Targets (block indices) of branches that leave through this Python loop.
    crossed: set[int] = field(default_factory=set)
    # Guard mode: the smallest target index of the soft branches (those that only
    # set `_br`) that leave this block, and whether a soft branch targets it.
    outermost_soft_exit: int | None = None
    soft_target: bool = False
    guarded: bool = False  # targeted, but exited through `_br` and `if not _br:` guards
    else_seen: bool = False
    param_operands: list[Operand] = field(default_factory=list)
    # Flat translation only: the label that branches to this block jump to
    # (None when no branch targets it), and the label of an if's else arm.
    label: int | None = None
    else_label: int | None = None

    @property
    def label_arity(self) -> int:
        return len(self.params) if self.kind == "loop" else len(self.results)


def default_literal(val_type: ValType) -> str:
    if val_type in (I32, I64):
        return "0"
    if val_type in (F32, F64):
        return "0.0"
    return "None"


class FunctionTranslator:
    """Translate one defined function to the source of a Python `def`."""

    # Handlers of control, call and variable instructions by opcode (CONTROL below).
    control: ClassVar[dict[int, Callable[..., None]]]

    def __init__(self, module: Module, func_types: list[FuncType], func_index: int,
                 options: TranslateOptions) -> None:
        self.module = module
        self.func_types = func_types
        self.func_index = func_index
        self.options = options
        first_defined = len(func_types) - len(module.funcs)
        self.func = module.funcs[func_index - first_defined]
        self.type = func_types[func_index]
        self.local_types = list(self.type.params) + list(self.func.locals)
        # Python frame slots to count in the store's slot cell, or None (see wrap_body).
        self.frame_slots: int | None = None
        self.lines: list[str] = []
        self.indent = 1
        self.stack: list[Operand] = []
        self.blocks: list[Block] = []
        # Positions in self.blocks of the blocks that are Python loops.
        self.loop_positions: list[int] = []
        self.counter = 0
        self.reachable = True
        self.skip_depth = 0
        self.targets = self.find_branch_targets()
        self.global_types = self.compute_global_types()
        self.uses_memory = any(
            op.OPS[instr.op].family in MEMORY_FAMILIES
            for instr in self.func.body if instr.op in op.OPS
        )
        self.constants: dict[str, object] = {}

    # -- analysis ------------------------------------------------------------------

    def find_branch_targets(self) -> set[int]:
        """Return the instruction indices of blocks that some branch targets."""
        return branch_targets(self.func.body)

    def compute_global_types(self) -> list[ValType]:
        imported = [imp.desc.val_type for imp in self.module.imports_of(op_global_kind())]  # type: ignore[union-attr]
        return imported + [g.type.val_type for g in self.module.globals]

    # -- emission helpers ------------------------------------------------------------

    def emit(self, line: str) -> None:
        if self.indent > MAX_INDENT:
            raise NestingTooDeep(f"indentation deeper than {MAX_INDENT} levels")
        # One space per level keeps deeply nested sources small, so compile() is quick.
        self.lines.append(" " * self.indent + line)

    def temp(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def assign(self, expr: str) -> Operand:
        name = self.temp()
        self.emit(f"{name} = {expr}")
        return Operand(name)

    def push(self, operand: Operand) -> None:
        if len(operand.expr) > MAX_EXPRESSION:
            operand = self.assign(operand.expr)
        self.stack.append(operand)

    def push_pure(self, expr: str, *sources: Operand, condition: str | None = None) -> None:
        reads: frozenset[int] = frozenset()
        for source in sources:
            reads = reads | source.reads
        self.push(Operand(expr, reads, condition))

    def pop(self) -> Operand:
        return self.stack.pop()

    def pops(self, count: int) -> list[Operand]:
        if count == 0:
            return []
        values = self.stack[-count:]
        del self.stack[-count:]
        return values

    def materialize_stack(self) -> None:
        """Assign every non-trivial operand to a temporary (before control flow)."""
        for position, operand in enumerate(self.stack):
            if operand.reads or not _is_simple(operand.expr):
                self.stack[position] = self.assign(operand.expr)

    def protect_local(self, index: int) -> None:
        """Copy operands that read local `index` before it is overwritten."""
        for position, operand in enumerate(self.stack):
            if index in operand.reads:
                self.stack[position] = self.assign(operand.expr)

    def constant(self, value: object, hint: str) -> str:
        name = f"K{self.func_index}_{hint}_{len(self.constants)}"
        self.constants[name] = value
        return name

    # -- translation -------------------------------------------------------------------

    def translate(self) -> tuple[str, dict[str, object]]:
        """Return the source of the function's `def` and the constants it reads.

        Raise NestingTooDeep when the structured form would pass CPython's
        nesting limits, and `runtime.compile_function` then uses the flat form.
        """
        for index in range(len(self.type.params), len(self.local_types)):
            self.emit(f"l{index} = {default_literal(self.local_types[index])}")
        if self.targets:
            self.emit("_br = 0")
        self.fuel_costs = self.count_fuel() if self.options.consume_fuel else {}
        self.emit_checks(-1)
        self.blocks.append(Block("func", -1, (), self.type.results, 0, False, indent=self.indent))
        for index, instr in enumerate(self.func.body):
            self.translate_instr(index, instr)
        return self.wrap_body(self.lines), self.constants

    def wrap_body(self, body: list[str]) -> str:
        """Return the `def` around `body`: call depth counting and the conversion of Python errors to traps."""
        params = ", ".join(f"l{i}" for i in range(len(self.type.params)))
        name = f"f{self.func_index}"
        header = [f"def {name}({params}):"]
        prologue = []
        if self.uses_memory:
            prologue.append(" mv = MV.view")
        entry: list[str] = []
        counters: list[str] = []
        if self.options.max_depth is not None:
            # Count wasm frames in the store's depth cell; the finally below undoes it.
            entry += [
                "  _d = _depth[0]",
                f"  if _d >= {self.options.max_depth}: raise _trap_stack()",
            ]
            counters.append("_depth")
        if self.frame_slots is not None:
            # Count the slots of a large frame, so that deep recursion of a function
            # with thousands of locals or temporaries traps before it exhausts RAM.
            entry += [
                f"  _s = _slots[0] + {self.frame_slots}",
                f"  if _s > {MAX_FRAME_SLOTS}: raise _trap_stack()",
            ]
            counters.append("_slots")
        # Both checks come before both increments, so a trap at entry leaves no count behind.
        if "_depth" in counters:
            entry.append("  _depth[0] = _d + 1")
        if "_slots" in counters:
            entry.append("  _slots[0] = _s")
        source_lines = header + entry + ["  try:"] + ["  " + line for line in prologue + body]
        source_lines += [
            # A Python error turned into a trap here gets this function as its innermost frame.
            "  except ZeroDivisionError:",
            "    exc = _trap_div()",
            f"    _add_frame(exc, {self.func_index})",
            "    raise exc from None",
            "  except _StructError as error:",
            "    exc = _trap_memory(error)",
            f"    _add_frame(exc, {self.func_index})",
            "    raise exc from None",
            "  except _Trap as exc:",
            f"    _add_frame(exc, {self.func_index})",
            "    raise",
            "  except RecursionError:",
            "    exc = _trap_stack()",
            f"    _add_frame(exc, {self.func_index})",
            "    raise exc from None",
        ]
        if counters:
            source_lines.append("  finally:")
        if "_depth" in counters:
            source_lines.append("    _depth[0] -= 1")
        if "_slots" in counters:
            source_lines.append(f"    _slots[0] -= {self.frame_slots}")
        return "\n".join(source_lines) + "\n"

    def count_fuel(self) -> dict[int, int]:
        """Return the fuel charged at the function entry (key -1) and at each loop header."""
        return fuel_costs(self.func.body, self.targets)

    def emit_checks(self, region: int) -> None:
        if self.options.consume_fuel:
            cost = max(self.fuel_costs.get(region, 1), 1)
            self.emit(f"_fuel[0] -= {cost}")
            self.emit("if _fuel[0] < 0: raise _trap_fuel()")
        if self.options.interruptible:
            self.emit("if _interrupt[0]: raise _trap_interrupt()")

    def translate_instr(self, index: int, instr: Instr) -> None:
        code = instr.op
        if not self.reachable:
            if code in op.BLOCK_STARTS:
                self.skip_depth += 1
            elif code == op.END:
                if self.skip_depth:
                    self.skip_depth -= 1
                else:
                    self.on_end(index, instr)
            elif code == op.ELSE and not self.skip_depth:
                self.on_else(index, instr)
            return
        handler = self.control.get(code)
        if handler is not None:
            handler(self, index, instr)
            return
        info = op.OPS.get(code)
        if info is None:
            raise CompileError(f"unsupported instruction {op.op_name(code)}")
        family = FAMILIES.get(info.family)
        if family is None:
            raise CompileError(f"unsupported instruction {info.name}")
        family(self, instr, info)

    # -- blocks ---------------------------------------------------------------------

    def block_signature(self, block_type: object) -> tuple[tuple[ValType, ...], tuple[ValType, ...]]:
        if block_type is None:
            return (), ()
        if isinstance(block_type, ValType):
            return (), (block_type,)
        func_type = self.module.types[block_type]  # type: ignore[index]
        return func_type.params, func_type.results

    def python_loops(self) -> int:
        return len(self.loop_positions)

    def push_block(self, block: Block) -> None:
        if block.is_loop_in_python:
            self.loop_positions.append(len(self.blocks))
        self.blocks.append(block)

    def open_block(self, index: int, kind: str, params: tuple[ValType, ...],
                   results: tuple[ValType, ...]) -> Block:
        is_target = index in self.targets
        as_loop = is_target and (kind == "loop" or self.python_loops() < MAX_PYTHON_BLOCKS)
        if as_loop and self.python_loops() >= MAX_PYTHON_LOOPS:
            raise NestingTooDeep(f"more than {MAX_PYTHON_LOOPS} nested Python loops")
        block = Block(kind, index, params, results, len(self.stack) - len(params),
                      as_loop, indent=self.indent)
        block.guarded = is_target and not as_loop
        block.result_vars = [f"r{index}_{n}" for n in range(len(results))]
        return block

    def on_block(self, index: int, instr: Instr) -> None:
        params, results = self.block_signature(instr.imm)
        self.materialize_stack()
        block = self.open_block(index, "block", params, results)
        self.push_block(block)
        if block.is_loop_in_python:
            self.emit("while True:")
            self.indent += 1

    def on_loop(self, index: int, instr: Instr) -> None:
        params, results = self.block_signature(instr.imm)
        self.materialize_stack()
        block = self.open_block(index, "loop", params, results)
        block.param_vars = [f"p{index}_{n}" for n in range(len(params))]
        incoming = self.pops(len(params))
        for var, operand in zip(block.param_vars, incoming):
            self.emit(f"{var} = {operand.expr}")
        self.push_block(block)
        if block.is_loop_in_python:
            self.emit("while True:")
            self.indent += 1
            self.emit_checks(index)
        for var in block.param_vars:
            self.stack.append(Operand(var))

    def on_if(self, index: int, instr: Instr) -> None:
        condition = self.pop()
        params, results = self.block_signature(instr.imm)
        self.materialize_stack()
        block = self.open_block(index, "if", params, results)
        block.param_operands = list(self.stack[block.height:])
        self.push_block(block)
        if block.is_loop_in_python:
            self.emit("while True:")
            self.indent += 1
        test = condition.condition or f"{condition.expr}"
        self.emit(f"if {test}:")
        self.indent += 1
        self.emit("pass")

    def on_else(self, index: int, instr: Instr) -> None:
        block = self.blocks[-1]
        if self.reachable:
            self.store_results(block, self.stack[len(self.stack) - len(block.results):])
        del self.stack[block.height:]
        self.stack.extend(block.param_operands)
        block.else_seen = True
        self.indent = block.indent + (1 if block.is_loop_in_python else 0)
        self.emit("else:")
        self.indent += 1
        self.emit("pass")
        self.reachable = True

    def store_results(self, block: Block, values: list[Operand]) -> None:
        for var, operand in zip(block.result_vars, values):
            self.emit(f"{var} = {operand.expr}")

    def on_end(self, index: int, instr: Instr) -> None:
        block = self.blocks.pop()
        if block.kind == "func":
            if self.reachable:
                self.emit_return(self.stack[len(self.stack) - len(block.results):])
            return
        if block.is_loop_in_python:
            self.loop_positions.pop()
        if self.reachable:
            self.store_results(block, self.stack[len(self.stack) - len(block.results):])
        if block.kind == "if" and not block.else_seen and block.results:
            # The implicit else passes the parameters through as results.
            self.indent = block.indent + (1 if block.is_loop_in_python else 0)
            self.emit("else:")
            self.indent += 1
            self.store_results(block, block.param_operands)
        if block.kind == "loop":
            reachable_after = self.reachable
        elif block.kind == "if":
            reachable_after = True
        else:
            reachable_after = self.reachable or block.is_loop_in_python or block.guarded
        self.indent = block.indent
        if block.is_loop_in_python:
            self.indent += 1
            self.emit("break")
            self.indent -= 1
            if block.crossed:
                self.forward_branch(block)
        else:
            if block.guarded and block.soft_target:
                self.emit(f"if _br == {block.index + 1}:")
                self.emit("    _br = 0")
            exit_to = block.outermost_soft_exit
            if exit_to is not None and exit_to < block.index:
                # A branch to a block outside this one still travels, so it leaves the parent too.
                self.open_guard()
                self.record_soft_exit(self.blocks[-1], exit_to)
        del self.stack[block.height:]
        for var in block.result_vars:
            self.stack.append(Operand(var))
        self.reachable = reachable_after
        if not self.reachable:
            self.skip_depth = 0

    def open_guard(self) -> None:
        """Skip the rest of the current sequence while a branch travels outward."""
        self.emit("if not _br:")
        self.indent += 1
        self.emit("pass")

    def forward_branch(self, block: Block) -> None:
        """After a crossed Python loop, pass on a branch that is still travelling outward.

        A target is the next Python loop out (`break` or `continue` it), lies
        beyond that loop (`break` again), or is a guard-mode block in between
        (skip the rest of each sequence up to it).
        """
        outer = self.innermost_python_loop()
        outer_index = self.blocks[outer].index if outer is not None else None
        between = set()
        beyond = False
        to_outer = False
        for target in block.crossed:
            if target == outer_index:
                to_outer = True
            elif outer_index is not None and target < outer_index:
                beyond = True
            else:
                between.add(target)
        self.emit("if _br:")
        self.indent += 1
        if to_outer:
            target = self.blocks[outer]  # type: ignore[index]
            verb = "continue" if target.kind == "loop" else "break"
            self.emit(f"if _br == {target.index + 1}:")
            self.emit("    _br = 0")
            self.emit(f"    {verb}")
        if beyond:
            if between:
                self.emit(f"if _br < {outer_index + 1}:")  # type: ignore[operator]
                self.emit("    break")
            else:
                self.emit("break")
        if not to_outer and not beyond:
            self.emit("pass")
        self.indent -= 1
        if outer is not None:
            self.blocks[outer].crossed |= {t for t in block.crossed if t < outer_index}  # type: ignore[operator]
        if between:
            open_blocks = {open_block.index: open_block for open_block in self.blocks}
            for target in between:
                self.mark_soft(open_blocks[target])
            self.open_guard()

    def mark_soft(self, target: Block) -> None:
        """Record a soft exit from the innermost block to `target`.

        Each block end passes the record to its parent (see on_end), so every
        block between the branch and `target` guards the code after it.
        """
        target.soft_target = True
        self.record_soft_exit(self.blocks[-1], target.index)

    @staticmethod
    def record_soft_exit(block: Block, target: int) -> None:
        if block.outermost_soft_exit is None or target < block.outermost_soft_exit:
            block.outermost_soft_exit = target

    def innermost_python_loop(self) -> int | None:
        """Return the control-stack position of the innermost open Python loop, or None."""
        return self.loop_positions[-1] if self.loop_positions else None

    # -- branches ---------------------------------------------------------------------

    def emit_return(self, values: list[Operand]) -> None:
        if not values:
            self.emit("return")
        elif len(values) == 1:
            self.emit(f"return {values[0].expr}")
        else:
            self.emit("return (" + ", ".join(v.expr for v in values) + ",)")

    def emit_branch(self, depth: int) -> bool:
        """Emit the assignments and jump for `br depth`, leaving the stack as it is.

        Return True for a soft jump: one that only set `_br`, so that the code
        after it must be skipped by guards.
        """
        position = len(self.blocks) - 1 - depth
        target = self.blocks[position]
        arity = target.label_arity
        values = self.stack[len(self.stack) - arity:] if arity else []
        if target.kind == "func":
            self.emit_return(values)
            return False
        self.store_label_values(target, values)
        innermost = self.innermost_python_loop()
        verb = "continue" if target.kind == "loop" else "break"
        if innermost == position:
            self.emit(verb)
            return False
        self.emit(f"_br = {target.index + 1}")
        if innermost is None or innermost < position:
            # No Python loop in between: a guard-mode target, reached by skipping forward.
            self.mark_soft(target)
            return True
        # Leave the innermost Python loop; its end passes the branch on.
        self.blocks[innermost].crossed.add(target.index)
        self.emit("break")
        return False

    def store_label_values(self, target: Block, values: list[Operand]) -> None:
        """Assign the values a branch carries to `target`'s loop parameters or block results."""
        variables = target.param_vars if target.kind == "loop" else target.result_vars
        if target.kind == "loop" and values:
            # Evaluate all values before assigning, since they may read the variables.
            temps = [self.assign(v.expr).expr for v in values]
            for var, value in zip(variables, temps):
                self.emit(f"{var} = {value}")
        else:
            for var, operand in zip(variables, values):
                self.emit(f"{var} = {operand.expr}")

    def on_br(self, index: int, instr: Instr) -> None:
        self.emit_branch(instr.imm)
        self.set_unreachable()

    def on_br_if(self, index: int, instr: Instr) -> None:
        condition = self.pop()
        self.materialize_stack()
        test = condition.condition or condition.expr
        self.emit(f"if {test}:")
        self.indent += 1
        soft = self.emit_branch(instr.imm)
        self.indent -= 1
        if soft:
            # The branch only set `_br`: the rest of this sequence runs in the else.
            self.emit("else:")
            self.indent += 1
            self.emit("pass")

    def on_br_table(self, index: int, instr: Instr) -> None:
        labels, default = instr.imm
        selector = self.pop()
        self.materialize_stack()
        if not _is_simple(selector.expr):
            selector = self.assign(selector.expr)
        # Group indices by target depth and test each group.
        groups: dict[int, list[int]] = {}
        for position, depth in enumerate(labels):
            if depth != default:
                groups.setdefault(depth, []).append(position)
        first = True
        for depth, positions in groups.items():
            if len(positions) == 1:
                test = f"{selector.expr} == {positions[0]}"
            elif positions == list(range(positions[0], positions[-1] + 1)):
                test = f"{positions[0]} <= {selector.expr} <= {positions[-1]}"
            else:
                test = f"{selector.expr} in {self.constant(frozenset(positions), 'cases')}"
            self.emit(f"{'if' if first else 'elif'} {test}:")
            first = False
            self.indent += 1
            self.emit_branch(depth)
            self.indent -= 1
        if first:
            self.emit_branch(default)
        else:
            self.emit("else:")
            self.indent += 1
            self.emit_branch(default)
            self.indent -= 1
        self.set_unreachable()

    def on_return(self, index: int, instr: Instr) -> None:
        self.emit_branch(len(self.blocks) - 1)
        self.set_unreachable()

    def set_unreachable(self) -> None:
        self.reachable = False
        self.skip_depth = 0

    def on_unreachable(self, index: int, instr: Instr) -> None:
        self.emit("raise _trap_unreachable()")
        self.set_unreachable()

    def on_nop(self, index: int, instr: Instr) -> None:
        pass

    # -- calls ----------------------------------------------------------------------

    def call_with(self, callee: str, func_type: FuncType, args: list[Operand]) -> None:
        text = f"{callee}({', '.join(a.expr for a in args)})"
        results = func_type.results
        if not results:
            self.emit(text)
        elif len(results) == 1:
            self.push(self.assign(text))
        else:
            names = [self.temp() for _ in results]
            self.emit(f"{', '.join(names)} = {text}")
            for name in names:
                self.stack.append(Operand(name))
        if self.uses_memory:
            self.emit("mv = MV.view")

    def on_call(self, index: int, instr: Instr) -> None:
        func_type = self.func_types[instr.imm]
        args = self.pops(len(func_type.params))
        self.materialize_stack()
        self.call_with(f"f{instr.imm}", func_type, args)

    def on_call_indirect(self, index: int, instr: Instr) -> None:
        type_index, table_index = instr.imm
        func_type = self.module.types[type_index]
        selector = self.pop()
        args = self.pops(len(func_type.params))
        self.materialize_stack()
        callee = f"_resolve(TB{table_index}.elements, {selector.expr}, TY{type_index})"
        self.call_with(callee, func_type, args)

    # -- parametric and variables -----------------------------------------------------

    def on_drop(self, index: int, instr: Instr) -> None:
        self.pop()

    def on_select(self, index: int, instr: Instr) -> None:
        condition = self.pop()
        second = self.pop()
        first = self.pop()
        test = condition.condition or condition.expr
        self.push_pure(f"({first.expr} if {test} else {second.expr})", first, second, condition)

    def on_local_get(self, index: int, instr: Instr) -> None:
        self.stack.append(Operand(f"l{instr.imm}", frozenset((instr.imm,))))

    def on_local_set(self, index: int, instr: Instr) -> None:
        value = self.pop()
        self.protect_local(instr.imm)
        self.emit(f"l{instr.imm} = {value.expr}")

    def on_local_tee(self, index: int, instr: Instr) -> None:
        value = self.pop()
        self.protect_local(instr.imm)
        self.emit(f"l{instr.imm} = {value.expr}")
        self.stack.append(Operand(f"l{instr.imm}", frozenset((instr.imm,))))

    def on_global_get(self, index: int, instr: Instr) -> None:
        self.push(self.assign(f"G{instr.imm}.value"))

    def on_global_set(self, index: int, instr: Instr) -> None:
        value = self.pop()
        self.emit(f"G{instr.imm}.value = {value.expr}")

    # -- memory ------------------------------------------------------------------------

    def address(self, base: Operand, offset: int) -> str:
        if offset == 0:
            return base.expr
        return f"{base.expr} + {offset}"

    def load(self, instr: Instr, info: op.OpInfo) -> None:
        _, offset = instr.imm
        base = self.pop()
        address = self.address(base, offset)
        name = info.name
        reader = LOADS[name]
        if name == "f32.load":
            self.push(self.assign(f"_f32_load(mv, {address})"))
            return
        expr = f"{reader}(mv, {address})[0]"
        if name in ("i32.load8_s", "i32.load16_s"):
            expr = f"{expr} & {M32}"
        elif name in ("i64.load8_s", "i64.load16_s", "i64.load32_s"):
            expr = f"{expr} & {M64}"
        self.push(self.assign(expr))

    def store(self, instr: Instr, info: op.OpInfo) -> None:
        _, offset = instr.imm
        value = self.pop()
        base = self.pop()
        address = self.address(base, offset)
        name = info.name
        if name == "f32.store":
            self.emit(f"_f32_store(mv, {address}, {value.expr})")
            return
        writer, mask = STORES[name]
        operand = f"{value.expr} & {mask}" if mask else value.expr
        self.emit(f"{writer}(mv, {address}, {operand})")

    def memory_op(self, instr: Instr, info: op.OpInfo) -> None:
        name = info.name
        if name == "memory.size":
            self.push(self.assign("MEM0.size >> 16"))
        elif name == "memory.grow":
            delta = self.pop()
            self.push(self.assign(f"MEM0.grow({delta.expr}) & {M32}"))
            self.emit("mv = MV.view")
        elif name == "memory.fill":
            length, value, dest = self.pop(), self.pop(), self.pop()
            self.emit(f"_memory_fill(MEM0, {dest.expr}, {value.expr}, {length.expr})")
        elif name == "memory.copy":
            length, source, dest = self.pop(), self.pop(), self.pop()
            self.emit(f"_memory_copy(MEM0, {dest.expr}, {source.expr}, {length.expr})")
        elif name == "memory.init":
            data_index = instr.imm if isinstance(instr.imm, int) else instr.imm[0]
            length, source, dest = self.pop(), self.pop(), self.pop()
            self.emit(
                f"_memory_init(MEM0, _instance.datas, {data_index}, "
                f"{dest.expr}, {source.expr}, {length.expr})"
            )
        elif name == "data.drop":
            self.emit(f"_instance.datas[{instr.imm}] = b''")
        else:
            raise CompileError(f"unsupported instruction {name}")

    # -- tables and references -------------------------------------------------------

    def table_op(self, instr: Instr, info: op.OpInfo) -> None:
        name = info.name
        if name == "table.get":
            index = self.pop()
            self.push(self.assign(f"TB{instr.imm}.get({index.expr})"))
        elif name == "table.set":
            value, index = self.pop(), self.pop()
            self.emit(f"TB{instr.imm}.set({index.expr}, {value.expr})")
        elif name == "table.size":
            self.push(self.assign(f"len(TB{instr.imm}.elements)"))
        elif name == "table.grow":
            delta, value = self.pop(), self.pop()
            self.push(self.assign(f"TB{instr.imm}.grow({delta.expr}, {value.expr}) & {M32}"))
        elif name == "table.fill":
            length, value, start = self.pop(), self.pop(), self.pop()
            self.emit(f"TB{instr.imm}.fill({start.expr}, {value.expr}, {length.expr})")
        elif name == "table.copy":
            dest_table, source_table = instr.imm
            length, source, dest = self.pop(), self.pop(), self.pop()
            self.emit(f"TB{dest_table}.copy({dest.expr}, TB{source_table}, {source.expr}, {length.expr})")
        elif name == "table.init":
            elem_index, table_index = instr.imm
            length, source, dest = self.pop(), self.pop(), self.pop()
            self.emit(
                f"TB{table_index}.init({dest.expr}, _instance.elems[{elem_index}], "
                f"{source.expr}, {length.expr})"
            )
        elif name == "elem.drop":
            self.emit(f"_instance.elems[{instr.imm}] = []")
        else:
            raise CompileError(f"unsupported instruction {name}")

    def reference_op(self, instr: Instr, info: op.OpInfo) -> None:
        if instr.op == op.REF_NULL:
            self.stack.append(Operand("None"))
        elif instr.op == op.REF_IS_NULL:
            value = self.pop()
            self.push_pure(f"(1 if {value.expr} is None else 0)", value,
                           condition=f"{value.expr} is None")
        else:
            self.push(self.assign(f"_instance.funcs[{instr.imm}]"))

    # -- numeric --------------------------------------------------------------------

    def const(self, instr: Instr, info: op.OpInfo) -> None:
        name = info.name
        if name == "i32.const":
            self.stack.append(Operand(str(instr.imm & 0xFFFFFFFF)))
        elif name == "i64.const":
            self.stack.append(Operand(str(instr.imm & 0xFFFFFFFFFFFFFFFF)))
        else:
            from wasmtee.values import f32_from_bits, f64_from_bits

            value = f32_from_bits(instr.imm) if name == "f32.const" else f64_from_bits(instr.imm)
            if value == value and value not in (float("inf"), float("-inf")) and (
                value != 0.0 or str(value)[0] != "-"
            ):
                self.stack.append(Operand(repr(value)))
            else:
                self.stack.append(Operand(self.constant(value, "float")))

    def numeric(self, instr: Instr, info: op.OpInfo) -> None:
        from wasmtee.pytier.ops import translate_numeric

        translate_numeric(self, info)


def _is_simple(expr: str) -> bool:
    return expr.isidentifier() or expr.lstrip("-").replace(".", "", 1).isdigit()


def op_global_kind():  # noqa: ANN201 - tiny indirection to avoid an import cycle in type hints
    from wasmtee.model import ExternKind

    return ExternKind.GLOBAL


@dataclass
class TranslateOptions:
    consume_fuel: bool = False
    interruptible: bool = False
    # A call depth bound counted by generated code, or None to rely on the
    # Python recursion limit (which the tier raises to the store's bound).
    max_depth: int | None = None


class NestingTooDeep(Exception):
    """The structured translation of a function would pass one of CPython's nesting limits."""


# A function whose Python frame has at least this many slots (locals plus
# value stack) counts them in the store's slot cell while it runs.
LARGE_FRAME_SLOTS = 256
# The max number of slots that large frames may hold at once in one store,
# about 32 MB of frame memory at 8 bytes per slot. A module that fits in
# wasmtime's default 512 KiB wasm stack should stay far below it (an estimate,
# because native and Python frames differ in size).
MAX_FRAME_SLOTS = 4_000_000

# CPython allows 20 nested loop and try blocks per function; the body's try takes one.
MAX_PYTHON_LOOPS = 18
# CPython's tokenizer rejects 100 levels of indentation. The `def` and its `try`
# take two, and this leaves a margin below the limit.
MAX_INDENT = 90
# Targeted blocks and ifs become Python loops only below this depth, so that
# wasm loops keep room; deeper ones are exited through `_br` guards.
MAX_PYTHON_BLOCKS = 12

MEMORY_FAMILIES = (op.Family.LOAD, op.Family.STORE, op.Family.MEMORY)

LOADS = {
    "i32.load": "_u32", "i64.load": "_u64", "f32.load": "_f32", "f64.load": "_f64",
    "i32.load8_s": "_s8", "i32.load8_u": "_u8", "i32.load16_s": "_s16", "i32.load16_u": "_u16",
    "i64.load8_s": "_s8", "i64.load8_u": "_u8", "i64.load16_s": "_s16", "i64.load16_u": "_u16",
    "i64.load32_s": "_s32", "i64.load32_u": "_u32",
}
STORES = {
    "i32.store": ("_p32", None), "i64.store": ("_p64", None), "f64.store": ("_pf64", None),
    "i32.store8": ("_p8", "0xFF"), "i32.store16": ("_p16", "0xFFFF"),
    "i64.store8": ("_p8", "0xFF"), "i64.store16": ("_p16", "0xFFFF"), "i64.store32": ("_p32", M32),
}

CONTROL = {
    op.UNREACHABLE: FunctionTranslator.on_unreachable,
    op.NOP: FunctionTranslator.on_nop,
    op.BLOCK: FunctionTranslator.on_block,
    op.LOOP: FunctionTranslator.on_loop,
    op.IF: FunctionTranslator.on_if,
    op.ELSE: FunctionTranslator.on_else,
    op.END: FunctionTranslator.on_end,
    op.BR: FunctionTranslator.on_br,
    op.BR_IF: FunctionTranslator.on_br_if,
    op.BR_TABLE: FunctionTranslator.on_br_table,
    op.RETURN: FunctionTranslator.on_return,
    op.CALL: FunctionTranslator.on_call,
    op.CALL_INDIRECT: FunctionTranslator.on_call_indirect,
    op.DROP: FunctionTranslator.on_drop,
    op.SELECT: FunctionTranslator.on_select,
    op.SELECT_T: FunctionTranslator.on_select,
    op.LOCAL_GET: FunctionTranslator.on_local_get,
    op.LOCAL_SET: FunctionTranslator.on_local_set,
    op.LOCAL_TEE: FunctionTranslator.on_local_tee,
    op.GLOBAL_GET: FunctionTranslator.on_global_get,
    op.GLOBAL_SET: FunctionTranslator.on_global_set,
}
FunctionTranslator.control = CONTROL

FAMILIES = {
    op.Family.LOAD: FunctionTranslator.load,
    op.Family.STORE: FunctionTranslator.store,
    op.Family.MEMORY: FunctionTranslator.memory_op,
    op.Family.TABLE: FunctionTranslator.table_op,
    op.Family.REFERENCE: FunctionTranslator.reference_op,
    op.Family.CONST: FunctionTranslator.const,
    op.Family.TEST: FunctionTranslator.numeric,
    op.Family.COMPARE: FunctionTranslator.numeric,
    op.Family.UNARY: FunctionTranslator.numeric,
    op.Family.BINARY: FunctionTranslator.numeric,
    op.Family.CONVERT: FunctionTranslator.numeric,
}
