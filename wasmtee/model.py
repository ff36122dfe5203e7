"""The module model: types and the structure of a decoded or parsed module.

The binary decoder and the text parser both produce a `Module`; the validator
and both execution tiers read it. Field names follow the WebAssembly 2.0 spec,
section 2 ("Structure").

Conventions:
- Instructions form one flat list per function body or constant expression,
  ending with the `end` instruction, exactly in binary order. `block`, `loop`
  and `if` are closed by their own `end`, and `else` is its own instruction.
- An instruction's `op` is its opcode: one byte (0x00-0xFF), or for prefixed
  opcodes `prefix << 8 | subopcode` (0xFC00 + n for the 0xFC family).
  `wasmtee.opcodes` holds the table with names and immediate kinds.
- Float constants are stored as raw bit patterns (int) so NaN payloads survive.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class ValType(enum.IntEnum):
    """A value type, numbered by its binary encoding."""

    I32 = 0x7F
    I64 = 0x7E
    F32 = 0x7D
    F64 = 0x7C
    V128 = 0x7B
    FUNCREF = 0x70
    EXTERNREF = 0x6F

    @property
    def is_ref(self) -> bool:
        return self in (ValType.FUNCREF, ValType.EXTERNREF)

    @property
    def is_num(self) -> bool:
        return self in (ValType.I32, ValType.I64, ValType.F32, ValType.F64)

    @property
    def text(self) -> str:
        """The text-format name, for example "i32" or "funcref"."""
        return _VALTYPE_TEXT[self]

    def __str__(self) -> str:
        return self.text


_VALTYPE_TEXT = {
    ValType.I32: "i32",
    ValType.I64: "i64",
    ValType.F32: "f32",
    ValType.F64: "f64",
    ValType.V128: "v128",
    ValType.FUNCREF: "funcref",
    ValType.EXTERNREF: "externref",
}


class ExternKind(enum.IntEnum):
    """The kind of an import or export, numbered by its binary encoding."""

    FUNC = 0
    TABLE = 1
    MEMORY = 2
    GLOBAL = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class FuncType:
    """A function signature. Equality is structural."""

    params: tuple[ValType, ...]
    results: tuple[ValType, ...]

    def __post_init__(self) -> None:
        # Accept lists, as wasmtime-py's FuncType does; a list would make the type unhashable.
        if type(self.params) is not tuple:
            object.__setattr__(self, "params", tuple(self.params))
        if type(self.results) is not tuple:
            object.__setattr__(self, "results", tuple(self.results))

    def __str__(self) -> str:
        params = " ".join(t.text for t in self.params)
        results = " ".join(t.text for t in self.results)
        return f"[{params}] -> [{results}]"


@dataclass(frozen=True)
class Limits:
    """Size limits in pages (memories) or elements (tables); `max` None means unbounded."""

    min: int
    max: int | None = None


@dataclass(frozen=True)
class TableType:
    elem_type: ValType
    limits: Limits


@dataclass(frozen=True)
class MemoryType:
    limits: Limits


@dataclass(frozen=True)
class GlobalType:
    val_type: ValType
    mutable: bool


# The description of an import: a type index for functions, otherwise the type.
ImportDesc = int | TableType | MemoryType | GlobalType


@dataclass
class Import:
    module: str
    name: str
    kind: ExternKind
    desc: ImportDesc


@dataclass
class Export:
    name: str
    kind: ExternKind
    index: int


class Instr(NamedTuple):
    """One instruction: opcode, immediate, and byte offset in the binary (-1 if none).

    Immediates by kind (see `wasmtee.opcodes.Imm`):
    - block type: None (empty), a ValType (one result) or an int type index
    - label, function, local, global, table, memory, data, elem: int index
    - br_table: tuple (labels: tuple[int, ...], default: int)
    - call_indirect: tuple (type_index, table_index)
    - memarg: tuple (align_exponent, offset)
    - i32.const / i64.const: the value as a signed Python int
    - f32.const / f64.const: the raw IEEE bit pattern as an unsigned int
    - ref.null: the ValType of the reference
    - typed select: tuple of ValType
    - memory.init: data index; memory.copy: (dst_mem, src_mem);
      table.init: (elem_index, table_index); table.copy: (dst_table, src_table)
    """

    op: int
    imm: Any = None
    offset: int = -1


ConstExpr = list[Instr]


@dataclass
class Function:
    """A function defined in the module (imported ones live in `Module.imports`)."""

    type_index: int
    locals: list[ValType]  # declared locals, expanded; parameters are not included
    body: list[Instr]
    offset: int = -1  # byte offset of the code entry, -1 when parsed from text


@dataclass
class Table:
    type: TableType
    init: ConstExpr | None = None  # function-references proposal initializer; unused in 2.0


@dataclass
class Memory:
    type: MemoryType


@dataclass
class Global:
    type: GlobalType
    init: ConstExpr


class SegmentMode(enum.Enum):
    PASSIVE = "passive"
    ACTIVE = "active"
    DECLARATIVE = "declarative"


@dataclass
class ElemSegment:
    """An element segment. `init` holds one constant expression per element."""

    elem_type: ValType
    init: list[ConstExpr]
    mode: SegmentMode
    table_index: int = 0
    offset: ConstExpr | None = None  # only for active segments


@dataclass
class DataSegment:
    init: bytes
    mode: SegmentMode
    memory_index: int = 0
    offset: ConstExpr | None = None  # only for active segments


@dataclass
class NameSection:
    """Decoded contents of the `name` custom section (all parts optional)."""

    module_name: str | None = None
    func_names: dict[int, str] = field(default_factory=dict)
    local_names: dict[int, dict[int, str]] = field(default_factory=dict)


@dataclass
class Module:
    """A decoded or parsed module, before validation."""

    types: list[FuncType] = field(default_factory=list)
    imports: list[Import] = field(default_factory=list)
    funcs: list[Function] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    mems: list[Memory] = field(default_factory=list)
    globals: list[Global] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    start: int | None = None
    elems: list[ElemSegment] = field(default_factory=list)
    datas: list[DataSegment] = field(default_factory=list)
    data_count: int | None = None
    customs: list[tuple[str, bytes]] = field(default_factory=list)
    names: NameSection = field(default_factory=NameSection)

    def imports_of(self, kind: ExternKind) -> list[Import]:
        return [imp for imp in self.imports if imp.kind == kind]

    def func_type(self, func_index: int) -> FuncType:
        """Return the type of a function in the module's function index space."""
        func_imports = self.imports_of(ExternKind.FUNC)
        if func_index < len(func_imports):
            type_index = func_imports[func_index].desc
            assert isinstance(type_index, int)
        else:
            type_index = self.funcs[func_index - len(func_imports)].type_index
        return self.types[type_index]

    def func_name(self, func_index: int) -> str | None:
        return self.names.func_names.get(func_index)
