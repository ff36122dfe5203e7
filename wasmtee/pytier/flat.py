"""Flat translation of functions whose structured form CPython cannot compile.

CPython rejects more than 20 statically nested loop and try blocks in one
function and 100 levels of indentation, so a function with deeply nested wasm
control flow cannot become nested Python loops and ifs. The flat form keeps
the structured translator's operand handling but turns the control flow into
a graph of sections, the basic blocks between jump targets:

    _pc = 0
    while True:
     if _pc < 8:           # a binary tree over section numbers
      if _pc == 0:         # a leaf: up to LEAF_SECTIONS sections in order
       ...                 # straight-line code of section 0
       _pc = 1             # section 0 falls through into section 1
      if _pc == 1:
       ...
       _pc = 5             # a branch: set the target section and dispatch
       continue
      ...

Sections start at the targets of branches: the start of a loop that a
branch targets, the end of a block that a branch targets, and the else arm
and end of every if. A br_table jumps through a tuple of section numbers,
and where a target needs values stored or a return, the tuple names an
out-of-line section after the body that does that work. A jump costs one `continue` and about log2(sections)
comparisons, and a fall-through into the next section of the same leaf
costs one comparison. The nesting of the generated code does not depend on
the nesting of the wasm code.

While translating, jumps name labels as `@<label>`. A label gets its section
number when it is placed, and `assemble` replaces the placeholders.
"""

from __future__ import annotations

import re

from wasmtee.model import Instr, ValType
from wasmtee import opcodes as op
from wasmtee.pytier.translate import CONTROL, Block, FunctionTranslator, Operand, default_literal

# Sections tested one after another in a leaf of the dispatch tree.
LEAF_SECTIONS = 4
_PLACEHOLDER = re.compile(r"@(\d+)")


class FlatTranslator(FunctionTranslator):
    """Translate one defined function to a `def` whose control flow is one dispatch loop."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.indent = 0
        self.label_count = 0
        self.label_sections: dict[int, int] = {}
        # Offset in self.lines where each section starts, and whether it falls
        # through into the next section.
        self.section_starts: list[int] = []
        self.falls_through: list[bool] = []
        # Out-of-line sections added after the body: (label, lines).
        self.deferred: list[tuple[int, list[str]]] = []
        # br_table lookup tuples, filled with section numbers by `assemble`.
        self.jump_tables: dict[str, list[int]] = {}

    def translate(self) -> tuple[str, dict[str, object]]:
        for index in range(len(self.type.params), len(self.local_types)):
            self.emit(f"l{index} = {default_literal(self.local_types[index])}")
        self.fuel_costs = self.count_fuel() if self.options.consume_fuel else {}
        self.emit_checks(-1)
        prologue_end = len(self.lines)
        self.section_starts.append(prologue_end)
        self.falls_through.append(False)
        self.blocks.append(Block("func", -1, (), self.type.results, 0, False))
        for index, instr in enumerate(self.func.body):
            self.translate_instr(index, instr)
        for label, lines in self.deferred:
            self.reachable = False
            self.place_label(label)
            self.lines.extend(lines)
        return self.wrap_body(self.assemble(prologue_end)), self.constants

    def emit(self, line: str) -> None:
        # Flat code nests at most a few levels, so no depth check is needed.
        self.lines.append(" " * self.indent + line)

    # -- sections and labels ---------------------------------------------------------

    def new_label(self) -> int:
        self.label_count += 1
        return self.label_count

    def place_label(self, label: int) -> None:
        """Start a new section at the current point and let `label` name it."""
        current = len(self.section_starts) - 1
        if self.section_starts[current] == len(self.lines):
            # The current section is still empty, so both labels name the same code.
            self.label_sections[label] = current
            return
        self.falls_through[current] = self.reachable
        self.section_starts.append(len(self.lines))
        self.falls_through.append(False)
        self.label_sections[label] = current + 1

    def jump(self, label: int) -> None:
        self.emit(f"_pc = @{label}")
        self.emit("continue")

    def assemble(self, prologue_end: int) -> list[str]:
        """Return the body lines: the prologue, then the dispatch loop over the sections."""
        sections = []
        ends = self.section_starts[1:] + [len(self.lines)]
        for start, end in zip(self.section_starts, ends):
            sections.append([self.resolve(line) for line in self.lines[start:end]])
        for name, labels in self.jump_tables.items():
            self.constants[name] = tuple(self.label_sections[label] for label in labels)
        body = [" " + line for line in self.lines[:prologue_end]]
        body += [" _pc = 0", " while True:"]
        self.assemble_range(sections, 0, len(sections), 2, body)
        return body

    def resolve(self, line: str) -> str:
        if "@" not in line:
            return line
        return _PLACEHOLDER.sub(lambda match: str(self.label_sections[int(match.group(1))]), line)

    def assemble_range(self, sections: list[list[str]], low: int, high: int, indent: int,
                       out: list[str]) -> None:
        """Append the dispatch for sections low..high-1, where low <= _pc < high holds."""
        pad = " " * indent
        if high - low > LEAF_SECTIONS:
            middle = (low + high) // 2
            out.append(f"{pad}if _pc < {middle}:")
            self.assemble_range(sections, low, middle, indent + 1, out)
            out.append(f"{pad}else:")
            self.assemble_range(sections, middle, high, indent + 1, out)
            return
        for number in range(low, high):
            # Reaching the last section of a leaf means _pc selects it, so it needs no test.
            last = number == high - 1
            inner = pad if last else pad + " "
            if not last:
                out.append(f"{pad}if _pc == {number}:")
            lines = sections[number]
            out.extend(inner + line for line in lines)
            if self.falls_through[number]:
                out.append(f"{inner}_pc = {number + 1}")
                if last:
                    out.append(f"{inner}continue")
            elif not lines:
                out.append(f"{inner}pass")

    # -- blocks --------------------------------------------------------------------

    def open_flat_block(self, index: int, kind: str, params: tuple[ValType, ...],
                        results: tuple[ValType, ...]) -> Block:
        block = Block(kind, index, params, results, len(self.stack) - len(params), False)
        block.result_vars = [f"r{index}_{n}" for n in range(len(results))]
        if index in self.targets or kind == "if":
            block.label = self.new_label()
        return block

    def on_block(self, index: int, instr: Instr) -> None:
        params, results = self.block_signature(instr.imm)
        self.materialize_stack()
        self.blocks.append(self.open_flat_block(index, "block", params, results))

    def on_loop(self, index: int, instr: Instr) -> None:
        params, results = self.block_signature(instr.imm)
        self.materialize_stack()
        block = self.open_flat_block(index, "loop", params, results)
        block.param_vars = [f"p{index}_{n}" for n in range(len(params))]
        for var, operand in zip(block.param_vars, self.pops(len(params))):
            self.emit(f"{var} = {operand.expr}")
        self.blocks.append(block)
        if block.label is not None:
            self.place_label(block.label)
            self.emit_checks(index)
        for var in block.param_vars:
            self.stack.append(Operand(var))

    def on_if(self, index: int, instr: Instr) -> None:
        condition = self.pop()
        params, results = self.block_signature(instr.imm)
        self.materialize_stack()
        block = self.open_flat_block(index, "if", params, results)
        block.else_label = self.new_label()
        block.param_operands = list(self.stack[block.height:])
        self.blocks.append(block)
        test = condition.condition or condition.expr
        self.emit(f"if not ({test}):")
        self.indent += 1
        self.jump(block.else_label)
        self.indent -= 1

    def on_else(self, index: int, instr: Instr) -> None:
        block = self.blocks[-1]
        if self.reachable:
            self.store_results(block, self.stack[len(self.stack) - len(block.results):])
            self.jump(block.label)  # type: ignore[arg-type]
        del self.stack[block.height:]
        self.stack.extend(block.param_operands)
        block.else_seen = True
        self.reachable = False
        self.place_label(block.else_label)  # type: ignore[arg-type]
        self.reachable = True

    def on_end(self, index: int, instr: Instr) -> None:
        block = self.blocks.pop()
        if block.kind == "func":
            if self.reachable:
                self.emit_return(self.stack[len(self.stack) - len(block.results):])
            return
        if self.reachable:
            self.store_results(block, self.stack[len(self.stack) - len(block.results):])
        if block.kind == "if" and not block.else_seen:
            if block.results and self.reachable:
                self.jump(block.label)  # type: ignore[arg-type]
                self.reachable = False
            # The implicit else passes the parameters through as results.
            self.place_label(block.else_label)  # type: ignore[arg-type]
            self.reachable = True
            self.store_results(block, block.param_operands)
        if block.label is not None and block.kind != "loop":
            self.place_label(block.label)
            self.reachable = True
        del self.stack[block.height:]
        for var in block.result_vars:
            self.stack.append(Operand(var))
        if not self.reachable:
            self.skip_depth = 0

    # -- branches ---------------------------------------------------------------------

    def emit_branch(self, depth: int) -> bool:
        target = self.blocks[len(self.blocks) - 1 - depth]
        arity = target.label_arity
        values = self.stack[len(self.stack) - arity:] if arity else []
        self.emit_jump_to(target, values)
        return False

    def emit_jump_to(self, target: Block, values: list[Operand]) -> None:
        if target.kind == "func":
            self.emit_return(values)
            return
        self.store_label_values(target, values)
        self.jump(target.label)  # type: ignore[arg-type]

    def on_br_table(self, index: int, instr: Instr) -> None:
        """Jump through a tuple of section numbers indexed by the selector.

        Targets that need more than a jump (values to store, or a return) get
        an out-of-line section that does that work and is listed instead.
        """
        labels, default = instr.imm
        selector = self.pop()
        self.materialize_stack()
        if not _is_name_or_number(selector.expr):
            selector = self.assign(selector.expr)
        arity = self.blocks[len(self.blocks) - 1 - default].label_arity
        values = [self.assign(v.expr) for v in self.stack[len(self.stack) - arity:]] if arity else []
        entry_labels: dict[int, int] = {}
        for depth in (*labels, default):
            if depth in entry_labels:
                continue
            target = self.blocks[len(self.blocks) - 1 - depth]
            if target.kind != "func" and not values:
                entry_labels[depth] = target.label  # type: ignore[assignment]
                continue
            entry_labels[depth] = self.defer_jump(target, values)
        table = [entry_labels[depth] for depth in labels]
        default_label = entry_labels[default]
        if table:
            name = self.constant(None, "br_table")
            self.jump_tables[name] = table
            self.emit(f"_pc = {name}[{selector.expr}] if {selector.expr} < {len(table)} else @{default_label}")
            self.emit("continue")
        else:
            self.jump(default_label)
        self.set_unreachable()

    def defer_jump(self, target: Block, values: list[Operand]) -> int:
        """Return the label of a new out-of-line section that carries `values` to `target`."""
        label = self.new_label()
        saved_lines, saved_indent = self.lines, self.indent
        self.lines, self.indent = [], 0
        self.emit_jump_to(target, values)
        self.deferred.append((label, self.lines))
        self.lines, self.indent = saved_lines, saved_indent
        return label


def _is_name_or_number(expr: str) -> bool:
    return expr.isidentifier() or expr.isdigit()


FlatTranslator.control = {
    **CONTROL,
    op.BLOCK: FlatTranslator.on_block,
    op.LOOP: FlatTranslator.on_loop,
    op.IF: FlatTranslator.on_if,
    op.ELSE: FlatTranslator.on_else,
    op.END: FlatTranslator.on_end,
    op.BR_TABLE: FlatTranslator.on_br_table,
}
