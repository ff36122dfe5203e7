"""WAST script parser: the spec test suite's script format.

`parse_script(text)` returns a list of commands. Text modules are kept as
unparsed S-expressions so that the runner parses them itself and can tell a
malformed module from a malformed script. Commands of later proposals
(`thread`, `v128` values, and so on) become `Skip`
commands with a reason instead of failing the whole script.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmtee.errors import WatSyntaxError
from wasmtee.model import Module, ValType
from wasmtee.text.numbers import F32, F64, int_literal_bits, parse_float_bits
from wasmtee.text.sexpr import (
    ID,
    KEYWORD,
    STRING,
    Atom,
    Node,
    SList,
    Source,
    read_sexprs,
)
from wasmtee.text.wat import parse_module_fields


@dataclass
class ScriptModule:
    """A module in a script: text (`fields`), `binary` bytes, or `quote` text bytes."""

    line: int
    name: str | None
    kind: str  # "text", "binary" or "quote"
    source: Source | None = None
    fields: list[Node] = field(default_factory=list)
    data: bytes = b""
    # True for `(module definition ...)`: validated, instantiated only by `module instance`.
    definition: bool = False

    def parse_text(self) -> Module:
        """Parse a text or quote module to the module model.

        Raises WatSyntaxError for malformed text.
        """
        if self.kind == "text":
            assert self.source is not None
            return parse_module_fields(self.source, self.fields)
        from wasmtee.text import parse_wat_bytes

        return parse_wat_bytes(self.data)

    def text_effects(self) -> tuple[set[str], bool]:
        """Scan an unparsed text or quote module for what its instantiation could touch.

        Returns the names of the modules it imports from, and whether it has a
        start function or segments that could write to imported state. Used
        when the module itself cannot be parsed (for example a later proposal).
        """
        fields = self.fields
        if self.kind == "quote":
            try:
                _, fields = read_sexprs(self.data.decode("utf-8"))
            except (UnicodeDecodeError, WatSyntaxError):
                return set(), False
            if (
                len(fields) == 1
                and isinstance(fields[0], SList)
                and fields[0].head() == "module"
            ):
                fields = fields[0].items[1:]
        imports: set[str] = set()
        may_write = False
        for node in fields:
            if not isinstance(node, SList):
                continue
            head = node.head()
            may_write = may_write or head in ("start", "elem", "data")
            parts = [node] + [item for item in node.items if isinstance(item, SList)]
            for part in parts:
                sub_head = part.head()
                if sub_head == "import" and len(part.items) > 1:
                    name = part.items[1]
                    if (
                        isinstance(name, Atom)
                        and name.kind == STRING
                        and name.value is not None
                    ):
                        imports.add(name.value.decode("utf-8", errors="replace"))
                may_write = may_write or (
                    part is not node and sub_head in ("elem", "data")
                )
        return imports, may_write


@dataclass
class Value:
    """A constant in an action's arguments: a value type and its raw bits or reference.

    `type` is None only for an untyped `(ref.null)`.
    """

    type: ValType | None
    bits: object  # int bits for numbers; None (null) or an int for ref.extern


@dataclass
class Expected:
    """An expected result of assert_return.

    `kind` is one of: "value" (exact bits), "nan:canonical", "nan:arithmetic",
    "ref.null", "ref.extern" (bits None matches any non-null externref),
    "ref.func" (any non-null funcref), "either" (`alternatives`).
    """

    kind: str
    type: ValType | None = None
    bits: object = None
    alternatives: list[Expected] = field(default_factory=list)


@dataclass
class Action:
    line: int
    kind: str  # "invoke" or "get"
    module: str | None
    name: str
    args: list[Value] = field(default_factory=list)


@dataclass
class Command:
    """One script command.

    `kind` is "module", "module_instance", "register", "action", "assert_return", "assert_trap",
    "assert_exhaustion", "assert_malformed", "assert_invalid",
    "assert_unlinkable", "assert_uninstantiable" or "skip".
    """

    kind: str
    line: int
    module: ScriptModule | None = None
    action: Action | None = None
    expected: list[Expected] = field(default_factory=list)
    message: str = ""
    register_as: str = ""
    register_module: str | None = None
    # For `module_instance`: the new instance's $name and the definition's
    # $name (None for the latest definition).
    instance_name: str | None = None
    definition_name: str | None = None
    reason: str = ""


class ScriptSkip(Exception):
    """A construct of a later proposal; the command is skipped with this reason."""


class _ScriptParser:
    def __init__(self, source: Source) -> None:
        self.source = source

    def error(self, message: str, node: Node) -> WatSyntaxError:
        return self.source.error(message, node.offset)

    def line(self, node: Node) -> int:
        return self.source.position(node.offset)[0]

    def command(self, node: Node) -> Command:
        if not isinstance(node, SList) or node.head() is None:
            raise self.error("unexpected token: expected a script command", node)
        head = node.head()
        line = self.line(node)
        try:
            return self.dispatch(head, node, line)  # type: ignore[arg-type]
        except ScriptSkip as skip:
            return Command("skip", line, reason=str(skip))

    def dispatch(self, head: str, node: SList, line: int) -> Command:
        items = node.items
        if head == "module":
            items = node.items
            if len(items) > 1 and isinstance(items[1], Atom) and items[1].text == "instance":
                instance_name = self.optional_name(items, 2)
                definition_name = self.optional_name(items, 3)
                if len(items) > 4:
                    raise self.error("unexpected token in module instance", items[4])
                return Command("module_instance", line, instance_name=instance_name,
                               definition_name=definition_name)
            return Command("module", line, module=self.module(node))

        if head == "register":
            name = self.string(items, 1, node)
            module_name = self.optional_name(items, 2)
            return Command(
                "register", line, register_as=name, register_module=module_name
            )

        if head in ("invoke", "get"):
            return Command("action", line, action=self.action(node))

        if head == "assert_return":
            action = self.action(self.nth_list(items, 1, node))
            expected = [self.expected(item) for item in items[2:]]
            return Command(head, line, action=action, expected=expected)

        if head in ("assert_trap", "assert_exhaustion"):
            target = self.nth_list(items, 1, node)
            message = self.string(items, 2, node)
            if target.head() == "module":
                if head == "assert_exhaustion":
                    raise self.error(
                        "unexpected token: assert_exhaustion takes an action", target
                    )
                return Command(head, line, module=self.module(target), message=message)
            return Command(head, line, action=self.action(target), message=message)

        if head in (
            "assert_malformed",
            "assert_invalid",
            "assert_unlinkable",
            "assert_uninstantiable",
        ):
            target = self.nth_list(items, 1, node)
            if target.head() != "module":
                raise self.error(f"unexpected token: {head} takes a module", target)
            message = self.string(items, 2, node)
            return Command(head, line, module=self.module(target), message=message)

        if head in ("assert_exception", "assert_suspension"):
            raise ScriptSkip(f"unsupported feature: {head}")
        if head in ("thread", "wait", "either"):
            raise ScriptSkip("unsupported feature: threads")
        if head in ("assert_malformed_custom", "assert_invalid_custom"):
            raise ScriptSkip("unsupported feature: custom annotations")
        if head in ("script", "input", "output", "meta"):
            raise ScriptSkip(f"unsupported script command: {head}")
        raise self.error(f'unknown operator "{head}": expected a script command', node)

    def nth_list(self, items: list[Node], index: int, parent: Node) -> SList:
        if index >= len(items) or not isinstance(items[index], SList):
            raise self.error("unexpected token: expected a parenthesized form", parent)
        return items[index]  # type: ignore[return-value]

    def string(self, items: list[Node], index: int, parent: Node) -> str:
        if index >= len(items):
            raise self.error("unexpected end of command: expected a string", parent)
        atom = items[index]
        if not isinstance(atom, Atom) or atom.kind != STRING:
            raise self.error("unexpected token: expected a string", atom)
        assert atom.value is not None
        return atom.value.decode("utf-8", errors="replace")

    def optional_name(self, items: list[Node], index: int) -> str | None:
        if index < len(items):
            atom = items[index]
            if isinstance(atom, Atom) and atom.kind == ID:
                return atom.text
            raise self.error("unexpected token: expected a module name", atom)
        return None

    def module(self, node: SList) -> ScriptModule:
        items = node.items
        line = self.line(node)
        pos = 1
        definition = (
            pos < len(items) and isinstance(items[pos], Atom) and items[pos].text == "definition"
        )
        if definition:
            pos += 1
        name = None
        if pos < len(items) and isinstance(items[pos], Atom) and items[pos].kind == ID:
            name = items[pos].text
            pos += 1
        if (
            pos < len(items)
            and isinstance(items[pos], Atom)
            and items[pos].kind == KEYWORD
            and items[pos].text in ("binary", "quote")
        ):
            kind = items[pos].text
            parts: list[bytes] = []
            for atom in items[pos + 1 :]:
                if not isinstance(atom, Atom) or atom.kind != STRING:
                    raise self.error(f"unexpected token in {kind} module", atom)
                parts.append(atom.value or b"")
            joiner = b" " if kind == "quote" else b""
            return ScriptModule(line, name, kind, data=joiner.join(parts), definition=definition)
        return ScriptModule(line, name, "text", self.source, items[pos:], definition=definition)

    def action(self, node: SList) -> Action:
        head = node.head()
        items = node.items
        if head not in ("invoke", "get"):
            raise self.error(f'unexpected token "{head}": expected invoke or get', node)
        pos = 1
        module = None
        if pos < len(items) and isinstance(items[pos], Atom) and items[pos].kind == ID:
            module = items[pos].text
            pos += 1
        name = self.string(items, pos, node)
        args = [self.value(item) for item in items[pos + 1 :]]
        if head == "get" and args:
            raise self.error("unexpected token: get takes no arguments", node)
        return Action(self.line(node), head, module, name, args)  # type: ignore[arg-type]

    def value(self, node: Node) -> Value:
        if not isinstance(node, SList) or not node.items:
            raise self.error("unexpected token: expected a constant", node)
        head = node.head()
        items = node.items
        if head in ("i32.const", "i64.const", "f32.const", "f64.const"):
            if len(items) != 2 or not isinstance(items[1], Atom):
                raise self.error(f"unexpected token in {head}", node)
            return Value(_CONST_TYPES[head], self.number(head, items[1]))
        if head == "ref.null":
            return Value(self.ref_type(items, node), None)
        if head == "ref.extern":
            return Value(ValType.EXTERNREF, self.ref_payload(items, node))
        if head in ("v128.const",):
            raise ScriptSkip("unsupported feature: simd")
        if head in (
            "ref.host",
            "ref.i31",
            "ref.struct",
            "ref.array",
            "ref.eq",
            "ref.any",
            "ref.i31_shared",
            "ref.exn",
        ):
            raise ScriptSkip("unsupported feature: gc")
        raise self.error(f'unknown operator "{head}": expected a constant', node)

    def number(self, head: str, atom: Atom) -> int:
        type_name = head.split(".")[0]
        if type_name in ("i32", "i64"):
            bits = int_literal_bits(atom.text, 32 if type_name == "i32" else 64)
        else:
            bits = parse_float_bits(atom.text, F32 if type_name == "f32" else F64)
        if bits is None:
            raise self.error(
                f"constant out of range or malformed: {head} {atom.text}", atom
            )
        return bits

    def ref_type(self, items: list[Node], node: Node) -> ValType | None:
        if len(items) == 1:
            return None
        atom = items[1]
        text = atom.text if isinstance(atom, Atom) else ""
        if text == "func":
            return ValType.FUNCREF
        if text == "extern":
            return ValType.EXTERNREF
        if text in (
            "any",
            "none",
            "nofunc",
            "noextern",
            "eq",
            "i31",
            "struct",
            "array",
            "exn",
            "noexn",
        ):
            raise ScriptSkip("unsupported feature: gc")
        raise self.error("unexpected token: expected a heap type", atom)

    def ref_payload(self, items: list[Node], node: Node) -> int | None:
        if len(items) == 1:
            return None
        atom = items[1]
        if not isinstance(atom, Atom) or len(items) != 2:
            raise self.error("unexpected token in ref.extern", node)
        value = int_literal_bits(atom.text, 64)
        if value is None:
            raise self.error(f'unexpected token "{atom.text}" in ref.extern', atom)
        return value

    def expected(self, node: Node) -> Expected:
        if not isinstance(node, SList) or not node.items:
            raise self.error("unexpected token: expected a result", node)
        head = node.head()
        items = node.items
        if (
            head in ("f32.const", "f64.const")
            and len(items) == 2
            and isinstance(items[1], Atom)
            and items[1].text in ("nan:canonical", "nan:arithmetic")
        ):
            return Expected(items[1].text, _CONST_TYPES[head])
        if head == "either":
            return Expected(
                "either", alternatives=[self.expected(n) for n in items[1:]]
            )
        if head == "ref.func":
            return Expected("ref.func", ValType.FUNCREF)
        if head == "ref.extern":
            return Expected(
                "ref.extern", ValType.EXTERNREF, self.ref_payload(items, node)
            )
        if head == "ref.null":
            return Expected("ref.null", self.ref_type(items, node))
        value = self.value(node)
        return Expected("value", value.type, value.bits)


_CONST_TYPES = {
    "i32.const": ValType.I32,
    "i64.const": ValType.I64,
    "f32.const": ValType.F32,
    "f64.const": ValType.F64,
}


def parse_script(text: str) -> list[Command]:
    """Parse a WAST script into commands.

    Raises WatSyntaxError when the script itself is malformed (unbalanced
    parentheses, a bad string, an unknown command).
    """
    source, nodes = read_sexprs(text)
    parser = _ScriptParser(source)
    # A file of bare module fields is one implicit module.
    if nodes and all(
        isinstance(n, SList) and n.head() in _MODULE_FIELDS for n in nodes
    ):
        return [
            Command("module", 1, module=ScriptModule(1, None, "text", source, nodes))
        ]
    try:
        return [parser.command(node) for node in nodes]
    except RecursionError:
        # Only nested result forms such as (either (either ...)) recurse.
        raise WatSyntaxError("unexpected token: results nested too deeply") from None


_MODULE_FIELDS = {
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
