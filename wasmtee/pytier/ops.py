"""Python expressions for the numeric instructions, one table entry per opcode.

Each entry is a template over the operands `{a}` (first) and `{b}` (second).
Templates marked pure become inline expressions; the others call a helper
from `wasmtee.pytier.numeric` (bound in the namespace with a leading
underscore) and are assigned to a temporary, because they may trap.
Comparison templates also give a boolean form that `if`, `br_if` and
`select` use directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wasmtee import opcodes as op

if TYPE_CHECKING:
    from wasmtee.pytier.translate import FunctionTranslator

M32 = "0xFFFFFFFF"
M64 = "0xFFFFFFFFFFFFFFFF"
S32 = "0x80000000"
S64 = "0x8000000000000000"

# name -> (template, pure, boolean form or None)
TEMPLATES: dict[str, tuple[str, bool, str | None]] = {}


def _define(name: str, template: str, pure: bool = True, condition: str | None = None) -> None:
    TEMPLATES[name] = (template, pure, condition)


def _compare(name: str, condition: str) -> None:
    _define(name, f"(1 if {condition} else 0)", True, condition)


for _width, _mask, _sign in ((32, M32, S32), (64, M64, S64)):
    _p = f"i{_width}"
    _define(f"{_p}.eqz", "(1 if {a} == 0 else 0)", True, "{a} == 0")
    _compare(f"{_p}.eq", "{a} == {b}")
    _compare(f"{_p}.ne", "{a} != {b}")
    _compare(f"{_p}.lt_u", "{a} < {b}")
    _compare(f"{_p}.gt_u", "{a} > {b}")
    _compare(f"{_p}.le_u", "{a} <= {b}")
    _compare(f"{_p}.ge_u", "{a} >= {b}")
    _compare(f"{_p}.lt_s", f"({{a}} ^ {_sign}) < ({{b}} ^ {_sign})")
    _compare(f"{_p}.gt_s", f"({{a}} ^ {_sign}) > ({{b}} ^ {_sign})")
    _compare(f"{_p}.le_s", f"({{a}} ^ {_sign}) <= ({{b}} ^ {_sign})")
    _compare(f"{_p}.ge_s", f"({{a}} ^ {_sign}) >= ({{b}} ^ {_sign})")
    _define(f"{_p}.clz", f"({_width} - ({{a}}).bit_length())")
    _define(f"{_p}.ctz", f"((({{a}} & -{{a}}).bit_length() - 1) if {{a}} else {_width})")
    _define(f"{_p}.popcnt", "({a}).bit_count()")
    _define(f"{_p}.add", f"(({{a}} + {{b}}) & {_mask})")
    _define(f"{_p}.sub", f"(({{a}} - {{b}}) & {_mask})")
    _define(f"{_p}.mul", f"(({{a}} * {{b}}) & {_mask})")
    # ZeroDivisionError from // and % is turned into the trap at function level.
    _define(f"{_p}.div_u", "({a} // {b})", False)
    _define(f"{_p}.rem_u", "({a} % {b})", False)
    _define(f"{_p}.div_s", f"_div_s{_width}({{a}}, {{b}})", False)
    _define(f"{_p}.rem_s", f"_rem_s{_width}({{a}}, {{b}})", False)
    _define(f"{_p}.and", "({a} & {b})")
    _define(f"{_p}.or", "({a} | {b})")
    _define(f"{_p}.xor", "({a} ^ {b})")
    _define(f"{_p}.shl", f"(({{a}} << ({{b}} & {_width - 1})) & {_mask})")
    _define(f"{_p}.shr_u", f"({{a}} >> ({{b}} & {_width - 1}))")
    _define(f"{_p}.shr_s", f"(((({{a}} ^ {_sign}) - {_sign}) >> ({{b}} & {_width - 1})) & {_mask})")
    _define(f"{_p}.rotl", f"_rotl{_width}({{a}}, {{b}})")
    _define(f"{_p}.rotr", f"_rotr{_width}({{a}}, {{b}})")

for _p, _round in (("f32", "_f32r"), ("f64", "")):
    _compare(f"{_p}.eq", "{a} == {b}")
    _compare(f"{_p}.ne", "{a} != {b}")
    _compare(f"{_p}.lt", "{a} < {b}")
    _compare(f"{_p}.gt", "{a} > {b}")
    _compare(f"{_p}.le", "{a} <= {b}")
    _compare(f"{_p}.ge", "{a} >= {b}")
    _define(f"{_p}.abs", "abs({a})")
    _define(f"{_p}.neg", "(-{a})")
    _define(f"{_p}.copysign", "_copysign({a}, {b})")
    _define(f"{_p}.ceil", "_fceil({a})")
    _define(f"{_p}.floor", "_ffloor({a})")
    _define(f"{_p}.trunc", "_ftrunc({a})")
    _define(f"{_p}.nearest", "_fnearest({a})")
    _define(f"{_p}.min", "_fmin({a}, {b})")
    _define(f"{_p}.max", "_fmax({a}, {b})")
    if _round:
        _define(f"{_p}.sqrt", "_f32r(_fsqrt({a}))")
        _define(f"{_p}.add", "_f32r({a} + {b})")
        _define(f"{_p}.sub", "_f32r({a} - {b})")
        _define(f"{_p}.mul", "_f32r({a} * {b})")
        _define(f"{_p}.div", "_f32r({a} / {b} if {b} else _fdiv({a}, {b}))")
    else:
        _define(f"{_p}.sqrt", "_fsqrt({a})")
        _define(f"{_p}.add", "({a} + {b})")
        _define(f"{_p}.sub", "({a} - {b})")
        _define(f"{_p}.mul", "({a} * {b})")
        _define(f"{_p}.div", "({a} / {b} if {b} else _fdiv({a}, {b}))")

_CONVERSIONS = {
    "i32.wrap_i64": f"({{a}} & {M32})",
    "i64.extend_i32_s": f"((({{a}} ^ {S32}) - {S32}) & {M64})",
    "i64.extend_i32_u": "{a}",
    "i32.extend8_s": f"((({{a}} & 0xFF ^ 0x80) - 0x80) & {M32})",
    "i32.extend16_s": f"((({{a}} & 0xFFFF ^ 0x8000) - 0x8000) & {M32})",
    "i64.extend8_s": f"((({{a}} & 0xFF ^ 0x80) - 0x80) & {M64})",
    "i64.extend16_s": f"((({{a}} & 0xFFFF ^ 0x8000) - 0x8000) & {M64})",
    "i64.extend32_s": f"((({{a}} & {M32} ^ {S32}) - {S32}) & {M64})",
    "f32.convert_i32_s": "_convert_s32_f32({a})",
    "f32.convert_i32_u": "_round_f32(float({a}))",
    "f32.convert_i64_s": "_convert_s64_f32({a})",
    "f32.convert_i64_u": "_convert_u64_f32({a})",
    "f64.convert_i32_s": f"float(({{a}} ^ {S32}) - {S32})",
    "f64.convert_i32_u": "float({a})",
    "f64.convert_i64_s": f"float(({{a}} ^ {S64}) - {S64})",
    "f64.convert_i64_u": "float({a})",
    "f32.demote_f64": "_f32r({a})",
    "f64.promote_f32": "_fpromote({a})",
    "i32.reinterpret_f32": "_reinterpret_i32({a})",
    "i64.reinterpret_f64": "_reinterpret_i64({a})",
    "f32.reinterpret_i32": "_reinterpret_f32({a})",
    "f64.reinterpret_i64": "_reinterpret_f64({a})",
}
for _name, _template in _CONVERSIONS.items():
    _define(_name, _template)

for _bits in (32, 64):
    for _source in ("f32", "f64"):
        _define(f"i{_bits}.trunc_{_source}_s", f"_trunc_s({{a}}, {_bits})", False)
        _define(f"i{_bits}.trunc_{_source}_u", f"_trunc_u({{a}}, {_bits})", False)
        _define(f"i{_bits}.trunc_sat_{_source}_s", f"_trunc_sat_s({{a}}, {_bits})")
        _define(f"i{_bits}.trunc_sat_{_source}_u", f"_trunc_sat_u({{a}}, {_bits})")

_missing = [
    info.name for info in op.OPS.values()
    if info.family in (op.Family.TEST, op.Family.COMPARE, op.Family.UNARY,
                       op.Family.BINARY, op.Family.CONVERT)
    and info.name not in TEMPLATES
]
assert not _missing, _missing


def _is_simple(expr: str) -> bool:
    return expr.isidentifier() or expr.isdigit()


def translate_numeric(translator: FunctionTranslator, info: op.OpInfo) -> None:
    template, pure, condition = TEMPLATES[info.name]
    arity = len(info.params)  # type: ignore[arg-type]
    operands = translator.pops(arity)
    values = {"a": operands[0].expr}
    if arity == 2:
        values["b"] = operands[1].expr
    # Operands used more than once must be evaluated once: give them a name.
    for key, operand in zip("ab", operands):
        uses = template.count("{" + key + "}") + (condition or "").count("{" + key + "}")
        if uses > 1 and not _is_simple(operand.expr):
            named = translator.assign(operand.expr)
            values[key] = named.expr
            operands[operands.index(operand)] = named
    expr = template.format(**values)
    if pure:
        translator.push_pure(
            expr, *operands, condition=condition.format(**values) if condition else None
        )
    else:
        translator.push(translator.assign(expr))
