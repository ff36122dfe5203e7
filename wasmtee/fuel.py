"""The fuel rule that both execution tiers share, and the branch targets it depends on.

One unit of fuel is one instruction of a function body, `end` included. Each
instruction is charged where its region starts: the function entry, or the
header of the innermost loop that some branch re-enters, once per iteration.
Both tiers charge by `fuel_costs`, so the same run leaves the same fuel.
"""

from __future__ import annotations

from wasmtee import opcodes as op
from wasmtee.model import Instr


def branch_targets(body: list[Instr]) -> set[int]:
    """Return the indices of the block, loop and if instructions that some branch targets."""
    targets: set[int] = set()
    open_blocks: list[int] = []
    for index, instr in enumerate(body):
        code = instr.op
        if code in op.BLOCK_STARTS:
            open_blocks.append(index)
        elif code == op.END:
            if open_blocks:
                open_blocks.pop()
        elif code in (op.BR, op.BR_IF, op.BR_TABLE):
            depths = (*instr.imm[0], instr.imm[1]) if code == op.BR_TABLE else (instr.imm,)
            for depth in depths:
                if depth < len(open_blocks):
                    targets.add(open_blocks[-1 - depth])
    return targets


def fuel_costs(body: list[Instr], targets: set[int] | None = None) -> dict[int, int]:
    """Return the fuel charged at the function entry (key -1) and at each re-entered loop header.

    `targets` is `branch_targets(body)`, computed here when not given.
    """
    if targets is None:
        targets = branch_targets(body)
    costs: dict[int, int] = {-1: 0}
    regions = [-1]
    opened: list[bool] = []
    for index, instr in enumerate(body):
        costs[regions[-1]] += 1
        if instr.op in op.BLOCK_STARTS:
            is_region = instr.op == op.LOOP and index in targets
            opened.append(is_region)
            if is_region:
                regions.append(index)
                costs[index] = 0
        elif instr.op == op.END and opened:
            if opened.pop():
                regions.pop()
    return costs
