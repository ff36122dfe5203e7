"""Lexer for the WebAssembly text format: source text to an S-expression tree.

The tree has two node kinds. `Atom` is one token (keyword, identifier, number,
string or reserved token) and `SList` is a parenthesized list. Comments and
annotations `(@id ...)` are dropped here, so the parsers above never see them.
Positions are character offsets into the source; `Source.position` turns an
offset into the 1-based line and column that `WatSyntaxError` reports.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable
from typing import Any, TypeVar

from wasmtee.errors import WatSyntaxError

_F = TypeVar("_F", bound=Callable[..., Any])


def without_gc(function: _F) -> _F:
    """Pause the cyclic garbage collector while `function` runs.

    Parsing allocates many small objects and no reference cycles, so
    collections find nothing to free. On a module of 20,000 functions they
    made lexing several times slower (measured on a 2-core machine).
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper  # type: ignore[return-value]


# Token kinds.
KEYWORD = "keyword"
ID = "id"
STRING = "string"
RESERVED = "reserved"

_IDCHARS = r"0-9A-Za-z!#$%&'*+\-./:<=>?@\\^_`|~"
_STRING = (
    r'"(?:[^"\\\x00-\x1f\x7f]|\\(?:[0-9a-fA-F]{2}|[tnr"\'\\]|u\{[0-9a-fA-F]+\}))*"'
)
# Leading whitespace is consumed with each token. `plain` is a run of idchars
# that no string or reserved character continues. Its quantifier is possessive
# so that it never backtracks into a shorter run. `atom` covers strings and
# reserved tokens.
_TOKEN_RE = re.compile(
    r"[ \t\n\r]*(?:"
    r"(?P<line_comment>;;[^\n\r]*)"
    r"|(?P<block_comment>\(;)"
    r"|(?P<annotation>\(@)"
    r"|(?P<lparen>\()"
    r"|(?P<rparen>\))"
    rf"|(?P<plain>[{_IDCHARS}]++)(?![\",\[\]{{}}]|;(?!;))"
    rf"|(?P<atom>(?:[{_IDCHARS}]+|{_STRING}|[,\[\]{{}}]+|;(?!;))+)"
    r")"
)
_SPACE_RE = re.compile(r"[ \t\n\r]*")
_STRING_RE = re.compile(_STRING)
_PLAIN_ATOM_RE = re.compile(rf"[{_IDCHARS}]+")
_ESCAPE_RE = re.compile(r"\\(?:([0-9a-fA-F]{2})|([tnr\"'\\])|u\{([0-9a-fA-F]+)\})")
_SIMPLE_ESCAPES = {
    "t": b"\t",
    "n": b"\n",
    "r": b"\r",
    '"': b'"',
    "'": b"'",
    "\\": b"\\",
}


class Source:
    """The text being parsed, for turning offsets into line and column numbers."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def position(self, offset: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return line, column

    def error(self, message: str, offset: int) -> WatSyntaxError:
        line, column = self.position(offset)
        return WatSyntaxError(message, line, column)


class Atom:
    """One token. `value` is the decoded bytes for strings and string identifiers.

    `items` and `head()` mirror `SList`, so code can test any node's shape
    without first checking its class.
    """

    __slots__ = ("kind", "offset", "text", "value")

    items: tuple[()] = ()

    def __init__(self, kind: str, text: str, offset: int, value: bytes | None = None):
        self.kind = kind
        self.text = text
        self.offset = offset
        self.value = value

    def head(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"Atom({self.kind}, {self.text!r})"


class SList:
    """A parenthesized list of atoms and lists; `offset` is that of its "(".

    `end` is the offset of the closing ")".
    """

    __slots__ = ("end", "items", "offset")

    # Mirrors of the token attributes, so that every node has them.
    kind = "list"
    text = "("
    value: bytes | None = None

    def __init__(self, items: list[Atom | SList], offset: int, end: int = -1) -> None:
        self.items = items
        self.offset = offset
        self.end = end

    def head(self) -> str | None:
        """Return the keyword that starts the list, or None."""
        if self.items:
            first = self.items[0]
            if isinstance(first, Atom) and first.kind == KEYWORD:
                return first.text
        return None

    def __repr__(self) -> str:
        return f"SList({self.items!r})"


Node = Atom | SList


def decode_string(body: str) -> bytes:
    """Decode the text between the quotes of a well-formed string literal to bytes."""
    if "\\" not in body:
        return body.encode("utf-8")
    out = bytearray()
    pos = 0
    for match in _ESCAPE_RE.finditer(body):
        out += body[pos : match.start()].encode("utf-8")
        hex_byte, simple, code_point = match.groups()
        if hex_byte is not None:
            out.append(int(hex_byte, 16))
        elif simple is not None:
            out += _SIMPLE_ESCAPES[simple]
        else:
            value = int(code_point, 16)
            if value >= 0x110000 or 0xD800 <= value < 0xE000:
                raise ValueError(f"invalid Unicode scalar value U+{value:X}")
            out += chr(value).encode("utf-8")
        pos = match.end()
    out += body[pos:].encode("utf-8")
    return bytes(out)


def decode_name(raw: bytes) -> str | None:
    """Return the string for a UTF-8 name, or None when it is malformed."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Lexer:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.text = source.text
        self.pos = 0

    def fail(self, message: str, offset: int | None = None) -> WatSyntaxError:
        return self.source.error(message, self.pos if offset is None else offset)

    def skip_block_comment(self, start: int) -> None:
        depth = 1
        pos = start + 2
        text = self.text
        while depth:
            open_at = text.find("(;", pos)
            close_at = text.find(";)", pos)
            if close_at < 0:
                raise self.fail("unclosed comment", start)
            if 0 <= open_at < close_at:
                depth += 1
                pos = open_at + 2
            else:
                depth -= 1
                pos = close_at + 2
        self.pos = pos

    def explain_bad_char(self) -> WatSyntaxError:
        """Build the error for a character that starts no token."""
        char = self.text[self.pos]
        if char == '"':
            end = self.pos + 1
            text = self.text
            while end < len(text) and text[end] != '"':
                if text[end] == "\\":
                    end += 1
                end += 1
            if end >= len(text):
                return self.fail("unclosed string")
            body = text[self.pos + 1 : end]
            for index, ch in enumerate(body):
                if ord(ch) < 0x20 or ord(ch) == 0x7F:
                    return self.fail(
                        f"illegal character in string [U+{ord(ch):04X}]",
                        self.pos + 1 + index,
                    )
            return self.fail("illegal escape in string")
        return self.fail(f"illegal character [U+{ord(char):04X}]")

    def make_atom(self, text: str, offset: int) -> Atom:
        if _PLAIN_ATOM_RE.fullmatch(text):
            if text[0] == "$":
                if len(text) == 1:
                    # A lone "$" is a reserved token; parsers reject it as an empty identifier.
                    return Atom(RESERVED, text, offset)
                return Atom(ID, text, offset, text[1:].encode("utf-8"))
            return Atom(KEYWORD, text, offset)
        if text[0] == '"' and _STRING_RE.fullmatch(text):
            return Atom(STRING, text, offset, self.string_value(text[1:-1], offset))
        if text[0] == "$" and _STRING_RE.fullmatch(text, 1):
            raw = self.string_value(text[2:-1], offset)
            if not raw or decode_name(raw) is None:
                # Empty or malformed UTF-8: reserved, so only annotations may hold it.
                return Atom(RESERVED, text, offset, raw)
            return Atom(ID, text, offset, raw)
        return Atom(RESERVED, text, offset)

    def string_value(self, body: str, offset: int) -> bytes:
        try:
            return decode_string(body)
        except ValueError as exc:
            raise self.fail(f"malformed escape in string ({exc})", offset) from None

    def parse(self) -> list[Node]:
        """Read the whole text into a list of top-level nodes."""
        stack: list[tuple[list[Node], int, bool]] = []
        items: list[Node] = []
        text = self.text
        length = len(text)
        match_token = _TOKEN_RE.match
        pos = 0
        while True:
            match = match_token(text, pos)
            if match is None:
                pos = _SPACE_RE.match(text, pos).end()  # type: ignore[union-attr]
                if pos >= length:
                    break
                self.pos = pos
                raise self.explain_bad_char()
            kind = match.lastgroup
            start = match.start(kind)  # type: ignore[arg-type]
            pos = match.end()
            if kind == "plain":
                token = match.group(kind)  # type: ignore[arg-type]
                if token[0] != "$":
                    items.append(Atom(KEYWORD, token, start))
                elif len(token) > 1:
                    items.append(Atom(ID, token, start, token[1:].encode("utf-8")))
                else:
                    # A lone "$" is reserved; parsers reject it as an empty identifier.
                    items.append(Atom(RESERVED, token, start))
            elif kind == "lparen":
                stack.append((items, start, False))
                items = []
            elif kind == "rparen":
                if not stack:
                    raise self.fail('unexpected token ")"', start)
                parent, open_at, is_annotation = stack.pop()
                if not is_annotation:
                    parent.append(SList(items, open_at, start))
                items = parent
            elif kind == "line_comment":
                continue
            elif kind == "atom":
                self.pos = pos
                items.append(self.make_atom(match.group(kind), start))  # type: ignore[arg-type]
            elif kind == "annotation":
                # Inside an annotation, "(@" is an ordinary parenthesis and needs no id.
                if not any(annotated for _, _, annotated in stack):
                    self.check_annotation_id(start)
                stack.append((items, start, True))
                items = []
            else:
                self.skip_block_comment(start)
                pos = self.pos
        self.pos = pos
        if stack:
            _, open_at, is_annotation = stack[-1]
            if any(annotated for _, _, annotated in stack):
                raise self.fail("unclosed annotation", open_at)
            raise self.fail("unclosed parenthesis: unexpected end of input", open_at)
        return items

    def check_annotation_id(self, start: int) -> None:
        match = _TOKEN_RE.match(self.text, start + 2)
        kind = match.lastgroup if match is not None else None
        if kind not in ("plain", "atom") or match.start(kind) != start + 2:  # type: ignore[union-attr]
            raise self.fail("empty annotation id", start)
        token = match.group(kind)  # type: ignore[union-attr]
        if token[0] == '"':
            if not _STRING_RE.fullmatch(token):
                raise self.fail("empty annotation id", start)
            raw = self.string_value(token[1:-1], start)
            if not raw:
                raise self.fail("empty annotation id", start)
            if decode_name(raw) is None:
                raise self.fail("malformed UTF-8 encoding in annotation id", start)


@without_gc
def read_sexprs(text: str) -> tuple[Source, list[Node]]:
    """Split source text into top-level S-expressions.

    Raises WatSyntaxError for illegal characters, bad strings, unbalanced
    parentheses, unclosed comments and malformed annotations.
    """
    source = Source(text)
    return source, _Lexer(source).parse()
