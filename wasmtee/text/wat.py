"""WAT module parser: an S-expression tree to a `wasmtee.model.Module` (spec 6.6).

Parsing runs in two passes over the module fields. The first pass collects the
identifiers of every index space, the explicit type definitions, and checks
that imports come before definitions. The second pass builds the module and
resolves type uses. As the spec's abbreviation rules require, every inline
signature that matches no existing type appends an implicit type definition
at the end of the type section.
"""

from __future__ import annotations

from collections.abc import Sequence

from wasmtee import opcodes
from wasmtee.errors import UnsupportedFeature, WatSyntaxError
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
from wasmtee.text.instructions import FunctionContext, InstructionParser, is_index_atom
from wasmtee.text.numbers import is_well_formed_literal, parse_uint
from wasmtee.text.sexpr import (
    ID,
    KEYWORD,
    STRING,
    Atom,
    Node,
    SList,
    Source,
    decode_name,
    without_gc,
)

_VALTYPES = {
    "i32": ValType.I32,
    "i64": ValType.I64,
    "f32": ValType.F32,
    "f64": ValType.F64,
    "funcref": ValType.FUNCREF,
    "externref": ValType.EXTERNREF,
}
_HEAP_TYPES = {"func": ValType.FUNCREF, "extern": ValType.EXTERNREF}
_GC_HEAP_TYPES = {
    "any",
    "eq",
    "i31",
    "struct",
    "array",
    "none",
    "nofunc",
    "noextern",
    "exn",
    "noexn",
}
_GC_REFTYPES = {
    "anyref",
    "eqref",
    "i31ref",
    "structref",
    "arrayref",
    "nullref",
    "nullfuncref",
    "nullexternref",
    "exnref",
    "nullexnref",
}
_KIND_KEYWORDS = {
    "func": ExternKind.FUNC,
    "table": ExternKind.TABLE,
    "memory": ExternKind.MEMORY,
    "global": ExternKind.GLOBAL,
}
_FIELD_HEADS = {
    "type",
    "import",
    "func",
    "table",
    "memory",
    "global",
    "export",
    "start",
    "elem",
    "data",
}
_LATER_FIELDS = {"rec": "gc", "tag": "exceptions"}
PAGE_SIZE = 65536


class IndexSpace:
    """One index space: the number of entries so far and the identifiers bound to them."""

    __slots__ = ("count", "ids", "kind")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ids: dict[bytes, int] = {}
        self.count = 0

    def define(self, name: Atom | None, mp: ModuleParser) -> int:
        index = self.count
        self.count += 1
        if name is not None:
            key = name.value
            assert key is not None
            if key in self.ids:
                raise mp.error(f"duplicate {self.kind} {name.text}", name)
            self.ids[key] = index
        return index

    def resolve(self, atom: Node, mp: ModuleParser) -> int:
        if isinstance(atom, Atom) and atom.kind == ID:
            index = self.ids.get(atom.value)  # type: ignore[arg-type]
            if index is None:
                raise mp.error(f"unknown {self.kind} {atom.text}", atom)
            return index
        return mp.read_u32(atom)


class ModuleParser:
    """Builds one `Module` from its fields."""

    def __init__(self, source: Source, fields: list[Node]) -> None:
        self.source = source
        self.fields = fields
        self.module = Module()
        self.types = IndexSpace("type")
        self.funcs = IndexSpace("func")
        self.tables = IndexSpace("table")
        self.mems = IndexSpace("memory")
        self.globals = IndexSpace("global")
        self.elems = IndexSpace("elem segment")
        self.datas = IndexSpace("data segment")
        self.type_lookup: dict[FuncType, int] = {}
        self.instrs = InstructionParser(self)
        # Index spaces filled in the second pass, by kind.
        self.next_index = {kind: 0 for kind in ExternKind}

    # Errors and small readers -----------------------------------------------------

    def error(self, message: str, node: Node | None) -> WatSyntaxError:
        offset = node.offset if node is not None else len(self.source.text)
        return self.source.error(message, offset)

    def expect_atom(self, items: Sequence[Node], pos: int, after: Node) -> Atom:
        if pos >= len(items):
            raise self.error(f'unexpected end of list after "{describe(after)}"', after)
        node = items[pos]
        if not isinstance(node, Atom):
            raise self.error(f'unexpected token after "{describe(after)}"', node)
        return node

    def read_u32(self, atom: Node) -> int:
        if not isinstance(atom, Atom) or atom.kind != KEYWORD:
            raise self.error(
                f'unexpected token "{describe(atom)}": expected an index', atom
            )
        value = parse_uint(atom.text)
        if value is None:
            raise self.error(f'unexpected token "{atom.text}": expected an index', atom)
        if value >= 1 << 32:
            raise self.error(f'constant out of range "{atom.text}"', atom)
        return value

    def number_error(self, atom: Atom, type_name: str) -> WatSyntaxError:
        text = atom.text
        if is_well_formed_literal(text, is_float=type_name[0] == "f"):
            return self.error(f'constant out of range: {type_name} "{text}"', atom)
        return self.error(
            f'unknown operator "{text}": expected an {type_name} literal', atom
        )

    def read_name(self, items: Sequence[Node], pos: int, after: Node) -> str:
        atom = self.expect_atom(items, pos, after)
        if atom.kind != STRING:
            raise self.error(f'unexpected token "{atom.text}": expected a string', atom)
        name = decode_name(atom.value)  # type: ignore[arg-type]
        if name is None:
            raise self.error(f"malformed UTF-8 encoding in name {atom.text}", atom)
        return name

    def read_optional_index(
        self, items: Sequence[Node], pos: int, space: IndexSpace
    ) -> tuple[int, int]:
        if pos < len(items) and is_index_atom(items[pos]):
            return space.resolve(items[pos], self), pos + 1
        return 0, pos

    def optional_id(self, items: Sequence[Node], pos: int) -> tuple[Atom | None, int]:
        if pos < len(items):
            node = items[pos]
            if isinstance(node, Atom) and node.kind == ID:
                return node, pos + 1
        return None, pos

    # Types ------------------------------------------------------------------------------

    def valtype(self, node: Node) -> ValType:
        if isinstance(node, Atom):
            if node.kind == KEYWORD:
                found = _VALTYPES.get(node.text)
                if found is not None:
                    return found
                if node.text == "v128":
                    raise UnsupportedFeature("simd", "value type v128")
                if node.text in _GC_REFTYPES:
                    raise UnsupportedFeature("gc", f"reference type {node.text}")
            raise self.error(
                f'unexpected token "{node.text}": expected a value type', node
            )
        if node.head() == "ref":
            items = node.items
            if (
                len(items) == 3
                and isinstance(items[1], Atom)
                and items[1].text == "null"
            ):
                return self.heap_type(items[2])
            raise UnsupportedFeature(
                "function-references", "non-nullable reference type"
            )
        raise self.error("unexpected token: expected a value type", node)

    def heap_type(self, node: Node) -> ValType:
        if isinstance(node, Atom) and node.kind == KEYWORD:
            found = _HEAP_TYPES.get(node.text)
            if found is not None:
                return found
            if node.text in _GC_HEAP_TYPES:
                raise UnsupportedFeature("gc", f"heap type {node.text}")
        if isinstance(node, Atom) and node.kind == ID or is_index_atom(node):
            raise UnsupportedFeature("function-references", "typed reference")
        raise self.error(
            f'unexpected token "{describe(node)}": expected a heap type', node
        )

    def read_params(
        self, items: Sequence[Node], pos: int, allow_names: bool
    ) -> tuple[list[ValType], list[Atom | None], int]:
        types: list[ValType] = []
        names: list[Atom | None] = []
        while pos < len(items):
            node = items[pos]
            if not isinstance(node, SList) or node.head() != "param":
                break
            name, start = self.optional_id(node.items, 1)
            if name is not None:
                if not allow_names:
                    raise self.error("unexpected token: named parameter here", name)
                if len(node.items) != 3:
                    raise self.error(
                        "unexpected token: a named param has one type", node
                    )
            for type_node in node.items[start:]:
                types.append(self.valtype(type_node))
                names.append(name)
            pos += 1
        return types, names, pos

    def read_results(
        self, items: Sequence[Node], pos: int
    ) -> tuple[list[ValType], int]:
        types: list[ValType] = []
        while pos < len(items):
            node = items[pos]
            if not isinstance(node, SList) or node.head() != "result":
                break
            types.extend(self.valtype(t) for t in node.items[1:])
            pos += 1
        return types, pos

    def read_func_signature(
        self, items: Sequence[Node], pos: int, allow_names: bool
    ) -> tuple[FuncType, list[Atom | None], int]:
        params, names, pos = self.read_params(items, pos, allow_names)
        results, pos = self.read_results(items, pos)
        if pos < len(items):
            node = items[pos]
            if isinstance(node, SList) and node.head() == "param":
                raise self.error("unexpected token: param after result", node)
        return FuncType(tuple(params), tuple(results)), names, pos

    def intern_type(self, func_type: FuncType) -> int:
        index = self.type_lookup.get(func_type)
        if index is None:
            index = len(self.module.types)
            self.module.types.append(func_type)
            self.type_lookup[func_type] = index
        return index

    def read_explicit_type(
        self, items: Sequence[Node], pos: int
    ) -> tuple[int | None, int]:
        if pos < len(items):
            node = items[pos]
            if isinstance(node, SList) and node.head() == "type":
                if len(node.items) != 2:
                    raise self.error("unexpected token in type use", node)
                return self.types.resolve(node.items[1], self), pos + 1
        return None, pos

    def read_type_use(
        self, items: Sequence[Node], pos: int, allow_names: bool = True
    ) -> tuple[int, list[Atom | None], int]:
        """Read `(type x)? (param ...)* (result ...)*` and return the type index and param ids."""
        explicit, pos = self.read_explicit_type(items, pos)
        start = pos
        inline, names, pos = self.read_func_signature(items, pos, allow_names)
        if explicit is None:
            return self.intern_type(inline), names, pos
        if explicit >= len(self.module.types):
            if inline.params or inline.results:
                raise self.error(f"unknown type {explicit}", items[start - 1])
            # Left for the validator to reject as "unknown type".
            return explicit, names, pos
        declared = self.module.types[explicit]
        if inline.params or inline.results:
            if inline != declared:
                raise self.error(
                    "inline function type does not match the type use", items[start]
                )
        else:
            names = [None] * len(declared.params)
        return explicit, names, pos

    def read_block_type(self, items: Sequence[Node], pos: int) -> tuple[object, int]:
        explicit, pos = self.read_explicit_type(items, pos)
        start = pos
        inline, _, pos = self.read_func_signature(items, pos, allow_names=False)
        if explicit is not None:
            if explicit >= len(self.module.types):
                return explicit, pos
            if (inline.params or inline.results) and inline != self.module.types[
                explicit
            ]:
                raise self.error(
                    "inline function type does not match the type use", items[start]
                )
            return explicit, pos
        if not inline.params:
            if not inline.results:
                return None, pos
            if len(inline.results) == 1:
                return inline.results[0], pos
        return self.intern_type(inline), pos

    def read_limits(
        self, items: Sequence[Node], pos: int, after: Node, bits: int
    ) -> tuple[Limits, int]:
        atom = self.expect_atom(items, pos, after)
        minimum = self.read_limit(atom, bits)
        pos += 1
        maximum = None
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].text[:1].isdigit()
        ):
            maximum = self.read_limit(items[pos], bits)  # type: ignore[arg-type]
            pos += 1
        return Limits(minimum, maximum), pos

    def read_limit(self, atom: Atom, bits: int) -> int:
        value = parse_uint(atom.text) if atom.kind == KEYWORD else None
        if value is None:
            raise self.error(f'unexpected token "{atom.text}": expected a limit', atom)
        if value >= 1 << bits:
            raise self.error(f'constant out of range "{atom.text}"', atom)
        return value

    def read_table_type(
        self, items: Sequence[Node], pos: int, after: Node
    ) -> tuple[TableType, int]:
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].text == "i64"
        ):
            raise UnsupportedFeature("memory64", "64-bit table")
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].text == "i32"
        ):
            pos += 1
        limits, pos = self.read_limits(items, pos, after, 64)
        if pos >= len(items):
            raise self.error(
                "unexpected end of table type: missing reference type", after
            )
        elem_type = self.valtype(items[pos])
        if not elem_type.is_ref:
            raise self.error(
                "unexpected token: table element type must be a reference", items[pos]
            )
        return TableType(elem_type, limits), pos + 1

    def read_memory_type(
        self, items: Sequence[Node], pos: int, after: Node
    ) -> tuple[MemoryType, int]:
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].text == "i64"
        ):
            raise UnsupportedFeature("memory64", "64-bit memory")
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].text == "i32"
        ):
            pos += 1
        limits, pos = self.read_limits(items, pos, after, 64)
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].text == "shared"
        ):
            raise UnsupportedFeature("threads", "shared memory")
        if (
            pos < len(items)
            and isinstance(items[pos], SList)
            and items[pos].head() == "pagesize"
        ):
            raise UnsupportedFeature("custom-page-sizes", "memory page size")
        return MemoryType(limits), pos

    def read_global_type(
        self, items: Sequence[Node], pos: int, after: Node
    ) -> tuple[GlobalType, int]:
        if pos >= len(items):
            raise self.error("unexpected end of global type", after)
        node = items[pos]
        if isinstance(node, SList) and node.head() == "mut":
            if len(node.items) != 2:
                raise self.error("unexpected token in mutable global type", node)
            return GlobalType(self.valtype(node.items[1]), True), pos + 1
        return GlobalType(self.valtype(node), False), pos + 1

    # Pass 1: identifiers, explicit types, import order -------------------------------

    def collect(self) -> None:
        definition_seen: str | None = None
        for field in self.fields:
            if not isinstance(field, SList):
                raise self.error(f'unexpected token "{describe(field)}"', field)
            head = field.head()
            if head not in _FIELD_HEADS:
                if head in _LATER_FIELDS:
                    raise UnsupportedFeature(
                        _LATER_FIELDS[head], f"module field {head}"
                    )
                raise self.error(f'unknown operator "{describe_head(field)}"', field)
            items = field.items
            if head == "type":
                self.collect_type(field)
            elif head == "import":
                if definition_seen is not None:
                    raise self.error(f"import after {definition_seen}", field)
                if len(items) < 4 or not isinstance(items[3], SList):
                    raise self.error("unexpected token: malformed import", field)
                desc = items[3]
                kind_name = desc.head()
                if kind_name not in _KIND_KEYWORDS:
                    if kind_name == "tag":
                        raise UnsupportedFeature("exceptions", "tag import")
                    raise self.error(f'unexpected token "{describe_head(desc)}"', desc)
                name, _ = self.optional_id(desc.items, 1)
                self.space(kind_name).define(name, self)
            elif head in ("func", "table", "memory", "global"):
                name, pos = self.optional_id(items, 1)
                while (
                    pos < len(items)
                    and isinstance(items[pos], SList)
                    and items[pos].head() == "export"
                ):
                    pos += 1
                is_import = (
                    pos < len(items)
                    and isinstance(items[pos], SList)
                    and items[pos].head() == "import"
                )
                if is_import:
                    if definition_seen is not None:
                        raise self.error(f"import after {definition_seen}", field)
                else:
                    definition_seen = {"func": "function"}.get(head, head)
                self.space(head).define(name, self)
                if (
                    head == "table"
                    and not is_import
                    and self.has_inline_segment(items, pos, "elem")
                ):
                    self.elems.define(None, self)
                if (
                    head == "memory"
                    and not is_import
                    and self.has_inline_segment(items, pos, "data")
                ):
                    self.datas.define(None, self)
            elif head == "elem":
                self.elems.define(self.optional_id(items, 1)[0], self)
            elif head == "data":
                self.datas.define(self.optional_id(items, 1)[0], self)

    def has_inline_segment(self, items: Sequence[Node], pos: int, head: str) -> bool:
        return any(
            isinstance(node, SList) and node.head() == head for node in items[pos:]
        )

    def space(self, kind: str) -> IndexSpace:
        return {
            "func": self.funcs,
            "table": self.tables,
            "memory": self.mems,
            "global": self.globals,
        }[kind]

    def collect_type(self, field: SList) -> None:
        items = field.items
        name, pos = self.optional_id(items, 1)
        if (
            pos >= len(items)
            or not isinstance(items[pos], SList)
            or pos + 1 != len(items)
        ):
            raise self.error("unexpected token: malformed type definition", field)
        body = items[pos]
        head = body.head()
        if head in ("struct", "array", "sub"):
            raise UnsupportedFeature("gc", f"{head} type")
        if head != "func":
            raise self.error(f'unexpected token "{describe_head(body)}"', body)
        _, start = self.optional_id(body.items, 1)
        func_type, _, end = self.read_func_signature(
            body.items, start, allow_names=True
        )
        if end != len(body.items):
            raise self.error("unexpected token in function type", body.items[end])
        self.types.define(name, self)
        self.module.types.append(func_type)
        self.type_lookup.setdefault(func_type, len(self.module.types) - 1)

    # Pass 2: build the module ----------------------------------------------------------

    def parse(self) -> Module:
        self.collect()
        handlers = {
            "import": self.parse_import,
            "func": self.parse_func,
            "table": self.parse_table,
            "memory": self.parse_memory,
            "global": self.parse_global,
            "export": self.parse_export,
            "start": self.parse_start,
            "elem": self.parse_elem,
            "data": self.parse_data,
        }
        for field in self.fields:
            assert isinstance(field, SList)
            handler = handlers.get(field.head())  # type: ignore[arg-type]
            if handler is not None:
                handler(field)
        # The binary format needs a data count section before code that uses
        # memory.init or data.drop; the text format implies one.
        bulk_ops = (
            opcodes.BY_NAME["memory.init"].code,
            opcodes.BY_NAME["data.drop"].code,
        )
        if any(
            instr.op in bulk_ops for func in self.module.funcs for instr in func.body
        ):
            self.module.data_count = len(self.module.datas)
        return self.module

    def take_index(self, kind: ExternKind) -> int:
        index = self.next_index[kind]
        self.next_index[kind] = index + 1
        return index

    def read_inline_exports(
        self, items: Sequence[Node], pos: int, kind: ExternKind, index: int
    ) -> int:
        while (
            pos < len(items)
            and isinstance(items[pos], SList)
            and items[pos].head() == "export"
        ):
            node = items[pos]
            if len(node.items) != 2:
                raise self.error("unexpected token in inline export", node)
            name = self.read_name(node.items, 1, node.items[0])
            self.module.exports.append(Export(name, kind, index))
            pos += 1
        return pos

    def read_inline_import(
        self, items: Sequence[Node], pos: int
    ) -> tuple[tuple[str, str] | None, int]:
        if (
            pos < len(items)
            and isinstance(items[pos], SList)
            and items[pos].head() == "import"
        ):
            node = items[pos]
            if len(node.items) != 3:
                raise self.error("unexpected token in inline import", node)
            module = self.read_name(node.items, 1, node.items[0])
            name = self.read_name(node.items, 2, node.items[0])
            return (module, name), pos + 1
        return None, pos

    def expect_end(self, items: Sequence[Node], pos: int) -> None:
        if pos < len(items):
            raise self.error(f'unexpected token "{describe(items[pos])}"', items[pos])

    def parse_import(self, field: SList) -> None:
        items = field.items
        module = self.read_name(items, 1, items[0])
        name = self.read_name(items, 2, items[0])
        desc = items[3]
        assert isinstance(desc, SList)
        kind = _KIND_KEYWORDS[desc.head()]  # type: ignore[index]
        func_id, pos = self.optional_id(desc.items, 1)
        index = self.add_import(module, name, kind, desc, pos)
        if kind is ExternKind.FUNC and func_id is not None:
            self.module.names.func_names[index] = func_id.value.decode("utf-8")  # type: ignore[union-attr]
        self.expect_end(items, 4)

    def add_import(
        self, module: str, name: str, kind: ExternKind, field: SList, pos: int
    ) -> int:
        items = field.items
        index = self.take_index(kind)
        if kind is ExternKind.FUNC:
            type_index, _, pos = self.read_type_use(items, pos)
            desc: object = type_index
        elif kind is ExternKind.TABLE:
            desc, pos = self.read_table_type(items, pos, field)
        elif kind is ExternKind.MEMORY:
            desc, pos = self.read_memory_type(items, pos, field)
        else:
            desc, pos = self.read_global_type(items, pos, field)
        self.expect_end(items, pos)
        self.module.imports.append(Import(module, name, kind, desc))  # type: ignore[arg-type]
        return index

    def parse_func(self, field: SList) -> None:
        items = field.items
        name, pos = self.optional_id(items, 1)
        index = self.next_index[ExternKind.FUNC]
        pos = self.read_inline_exports(items, pos, ExternKind.FUNC, index)
        if name is not None:
            self.module.names.func_names[index] = name.value.decode("utf-8")  # type: ignore[union-attr]
        imported, pos = self.read_inline_import(items, pos)
        if imported is not None:
            self.add_import(imported[0], imported[1], ExternKind.FUNC, field, pos)
            return
        self.take_index(ExternKind.FUNC)
        type_index, param_names, pos = self.read_type_use(items, pos)
        local_ids: dict[bytes, int] = {}
        for number, param in enumerate(param_names):
            if param is not None:
                self.bind_local(local_ids, param, number)
        if type_index < len(self.module.types):
            local_count = len(self.module.types[type_index].params)
        else:
            local_count = len(param_names)
        locals_: list[ValType] = []
        while (
            pos < len(items)
            and isinstance(items[pos], SList)
            and items[pos].head() == "local"
        ):
            node = items[pos]
            local_name, start = self.optional_id(node.items, 1)
            if local_name is not None:
                if len(node.items) != 3:
                    raise self.error(
                        "unexpected token: a named local has one type", node
                    )
                self.bind_local(local_ids, local_name, local_count)
            for type_node in node.items[start:]:
                locals_.append(self.valtype(type_node))
                local_count += 1
            pos += 1
        body: list[Instr] = []
        self.instrs.parse_body(items, pos, FunctionContext(local_ids), body)
        self.module.funcs.append(Function(type_index, locals_, body))

    def bind_local(self, local_ids: dict[bytes, int], name: Atom, index: int) -> None:
        key = name.value
        assert key is not None
        if key in local_ids:
            raise self.error(f"duplicate local {name.text}", name)
        local_ids[key] = index

    def parse_const_expr(self, items: Sequence[Node], pos: int) -> list[Instr]:
        out: list[Instr] = []
        self.instrs.parse_body(items, pos, FunctionContext({}), out)
        return out

    def parse_table(self, field: SList) -> None:
        items = field.items
        _, pos = self.optional_id(items, 1)
        index = self.next_index[ExternKind.TABLE]
        pos = self.read_inline_exports(items, pos, ExternKind.TABLE, index)
        imported, pos = self.read_inline_import(items, pos)
        if imported is not None:
            self.add_import(imported[0], imported[1], ExternKind.TABLE, field, pos)
            return
        self.take_index(ExternKind.TABLE)
        node = items[pos] if pos < len(items) else field
        is_reftype = (
            isinstance(node, Atom) and node.text in ("funcref", "externref")
        ) or (isinstance(node, SList) and node.head() == "ref")
        if is_reftype:
            elem_type = self.valtype(node)
            if (
                pos + 1 >= len(items)
                or not isinstance(items[pos + 1], SList)
                or items[pos + 1].head() != "elem"
            ):
                raise self.error(
                    "unexpected token: expected an inline (elem ...)", node
                )
            segment = items[pos + 1]
            self.expect_end(items, pos + 2)
            inits = self.read_elem_list(segment.items, 1, elem_type, bare_funcs=True)
            size = len(inits)
            self.module.tables.append(Table(TableType(elem_type, Limits(size, size))))
            offset = [Instr(opcodes.I32_CONST, 0), Instr(opcodes.END)]
            self.module.elems.append(
                ElemSegment(elem_type, inits, SegmentMode.ACTIVE, index, offset)
            )
            return
        table_type, pos = self.read_table_type(items, pos, field)
        if pos < len(items):
            raise UnsupportedFeature(
                "function-references", "table initializer expression"
            )
        self.module.tables.append(Table(table_type))

    def parse_memory(self, field: SList) -> None:
        items = field.items
        _, pos = self.optional_id(items, 1)
        index = self.next_index[ExternKind.MEMORY]
        pos = self.read_inline_exports(items, pos, ExternKind.MEMORY, index)
        imported, pos = self.read_inline_import(items, pos)
        if imported is not None:
            self.add_import(imported[0], imported[1], ExternKind.MEMORY, field, pos)
            return
        self.take_index(ExternKind.MEMORY)
        if (
            pos < len(items)
            and isinstance(items[pos], SList)
            and items[pos].head() == "data"
        ):
            segment = items[pos]
            self.expect_end(items, pos + 1)
            data = self.read_data_strings(segment.items, 1)
            pages = -(-len(data) // PAGE_SIZE)
            self.module.mems.append(Memory(MemoryType(Limits(pages, pages))))
            offset = [Instr(opcodes.I32_CONST, 0), Instr(opcodes.END)]
            self.module.datas.append(
                DataSegment(data, SegmentMode.ACTIVE, index, offset)
            )
            return
        memory_type, pos = self.read_memory_type(items, pos, field)
        self.expect_end(items, pos)
        self.module.mems.append(Memory(memory_type))

    def parse_global(self, field: SList) -> None:
        items = field.items
        _, pos = self.optional_id(items, 1)
        index = self.next_index[ExternKind.GLOBAL]
        pos = self.read_inline_exports(items, pos, ExternKind.GLOBAL, index)
        imported, pos = self.read_inline_import(items, pos)
        if imported is not None:
            self.add_import(imported[0], imported[1], ExternKind.GLOBAL, field, pos)
            return
        self.take_index(ExternKind.GLOBAL)
        global_type, pos = self.read_global_type(items, pos, field)
        self.module.globals.append(
            Global(global_type, self.parse_const_expr(items, pos))
        )

    def parse_export(self, field: SList) -> None:
        items = field.items
        name = self.read_name(items, 1, items[0])
        if len(items) != 3 or not isinstance(items[2], SList):
            raise self.error("unexpected token: malformed export", field)
        desc = items[2]
        kind = _KIND_KEYWORDS.get(desc.head())  # type: ignore[arg-type]
        if kind is None or len(desc.items) != 2:
            raise self.error(f'unexpected token "{describe_head(desc)}"', desc)
        index = self.space(desc.head()).resolve(desc.items[1], self)  # type: ignore[arg-type]
        self.module.exports.append(Export(name, kind, index))

    def parse_start(self, field: SList) -> None:
        if self.module.start is not None:
            raise self.error("multiple start sections", field)
        if len(field.items) != 2:
            raise self.error("unexpected token in start", field)
        self.module.start = self.funcs.resolve(field.items[1], self)

    def read_offset(self, items: Sequence[Node], pos: int) -> list[Instr]:
        node = items[pos]
        assert isinstance(node, SList)
        if node.head() == "offset":
            return self.parse_const_expr(node.items, 1)
        return self.parse_const_expr([node], 0)

    def is_offset(self, node: Node) -> bool:
        return isinstance(node, SList) and node.head() not in (
            "item",
            "table",
            "memory",
            "ref",
        )

    def parse_elem(self, field: SList) -> None:
        items = field.items
        _, pos = self.optional_id(items, 1)
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].text == "declare"
        ):
            inits, elem_type = self.read_elem_payload(items, pos + 1, bare_funcs=False)
            self.module.elems.append(
                ElemSegment(elem_type, inits, SegmentMode.DECLARATIVE)
            )
            return
        table = None
        if (
            pos < len(items)
            and isinstance(items[pos], SList)
            and items[pos].head() == "table"
        ):
            node = items[pos]
            if len(node.items) != 2:
                raise self.error("unexpected token in table use", node)
            table = self.tables.resolve(node.items[1], self)
            pos += 1
        elif (
            pos + 1 < len(items)
            and is_index_atom(items[pos])
            and self.is_offset(items[pos + 1])
        ):
            table = self.tables.resolve(items[pos], self)
            pos += 1
        if pos < len(items) and self.is_offset(items[pos]):
            offset = self.read_offset(items, pos)
            inits, elem_type = self.read_elem_payload(
                items, pos + 1, bare_funcs=table is None
            )
            self.module.elems.append(
                ElemSegment(elem_type, inits, SegmentMode.ACTIVE, table or 0, offset)
            )
            return
        if table is not None:
            raise self.error(
                "unexpected token: missing offset in active element segment",
                items[pos] if pos < len(items) else field,
            )
        inits, elem_type = self.read_elem_payload(items, pos, bare_funcs=False)
        self.module.elems.append(ElemSegment(elem_type, inits, SegmentMode.PASSIVE))

    def read_elem_payload(
        self, items: Sequence[Node], pos: int, bare_funcs: bool
    ) -> tuple[list[list[Instr]], ValType]:
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].text == "func"
        ):
            return self.read_func_indices(items, pos + 1), ValType.FUNCREF
        if (
            pos < len(items)
            and not is_index_atom(items[pos])
            and (isinstance(items[pos], Atom) or items[pos].head() == "ref")
        ):
            elem_type = self.valtype(items[pos])
            return self.read_elem_list(
                items, pos + 1, elem_type, bare_funcs=False
            ), elem_type
        if not bare_funcs and pos < len(items):
            raise self.error(
                'unexpected token: expected "func" or a reference type', items[pos]
            )
        return self.read_func_indices(items, pos), ValType.FUNCREF

    def read_func_indices(self, items: Sequence[Node], pos: int) -> list[list[Instr]]:
        inits = []
        for node in items[pos:]:
            index = self.funcs.resolve(node, self)
            inits.append([Instr(opcodes.REF_FUNC, index), Instr(opcodes.END)])
        return inits

    def read_elem_list(
        self, items: Sequence[Node], pos: int, elem_type: ValType, bare_funcs: bool
    ) -> list[list[Instr]]:
        """Read element expressions `(item ...)` or single folded instructions."""
        if bare_funcs and (pos >= len(items) or is_index_atom(items[pos])):
            return self.read_func_indices(items, pos)
        inits = []
        for node in items[pos:]:
            if not isinstance(node, SList):
                raise self.error(f'unexpected token "{describe(node)}"', node)
            if node.head() == "item":
                inits.append(self.parse_const_expr(node.items, 1))
            else:
                inits.append(self.parse_const_expr([node], 0))
        return inits

    def parse_data(self, field: SList) -> None:
        items = field.items
        _, pos = self.optional_id(items, 1)
        memory = None
        if (
            pos < len(items)
            and isinstance(items[pos], SList)
            and items[pos].head() == "memory"
        ):
            node = items[pos]
            if len(node.items) != 2:
                raise self.error("unexpected token in memory use", node)
            memory = self.mems.resolve(node.items[1], self)
            pos += 1
        elif pos + 1 < len(items) and is_index_atom(items[pos]):
            memory = self.mems.resolve(items[pos], self)
            pos += 1
        if pos < len(items) and self.is_offset(items[pos]):
            offset = self.read_offset(items, pos)
            data = self.read_data_strings(items, pos + 1)
            self.module.datas.append(
                DataSegment(data, SegmentMode.ACTIVE, memory or 0, offset)
            )
            return
        if memory is not None:
            raise self.error(
                "unexpected token: missing offset in active data segment",
                items[pos] if pos < len(items) else field,
            )
        self.module.datas.append(
            DataSegment(self.read_data_strings(items, pos), SegmentMode.PASSIVE)
        )

    def read_data_strings(self, items: Sequence[Node], pos: int) -> bytes:
        parts = []
        for node in items[pos:]:
            if not isinstance(node, Atom) or node.kind != STRING:
                raise self.error(
                    f'unexpected token "{describe(node)}": expected a string', node
                )
            parts.append(node.value)
        return b"".join(parts)  # type: ignore[arg-type]


def describe(node: Node) -> str:
    if isinstance(node, Atom):
        return node.text
    return f"({describe_head(node)} ...)"


def describe_head(node: Node) -> str:
    if node.items and isinstance(node.items[0], Atom):
        return node.items[0].text
    return "("


@without_gc
def parse_module_fields(source: Source, fields: list[Node]) -> Module:
    """Build a module from its fields (the contents of `(module ...)` after the id)."""
    return ModuleParser(source, fields).parse()
