"""Read the module file of `run`, `inspect` and `compile`, and tell what it contains.

A file is a binary module when it starts with the magic bytes 00 61 73 6d,
and a wasmtee AOT artifact when it starts with "WTEECWSM". It is WAT text
when it is UTF-8 without control characters other than tab, LF and CR, and
its first token after whitespace and comments is "(". Anything else,
including an empty file, raises DecodeError with a message that says what
the file is not and shows its first bytes.
"""

from __future__ import annotations

import enum
import os
import re
import stat

from wasmtee.errors import DecodeError, UsageError

WASM_MAGIC = b"\0asm"
# The first bytes of an AOT artifact (wasmtee.llvm.aot.MAGIC), repeated here
# so that plain modules never import the llvm tier.
ARTIFACT_MAGIC = b"WTEECWSM"

# The largest module file that `run`, `inspect` and `compile` read: 1 GiB.
MAX_MODULE_FILE_SIZE = 1 << 30

# Well-known file signatures, to name what a non-module file probably is.
_SIGNATURES = [
    (b"\x7fELF", "an ELF executable or library"),
    (b"MZ", "a Windows executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF document"),
]


# C0 control characters except tab (09), line feed (0a) and carriage return (0d).
_CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


class ModuleKind(enum.Enum):
    BINARY = "binary module"
    TEXT = "WAT text"
    ARTIFACT = "wasmtee AOT artifact"


def read_module_file(path: str) -> bytes:
    """Return the contents of `path`.

    Raises UsageError when it cannot be read, is not a regular file (a
    device such as /dev/zero could be read forever) or is larger than
    MAX_MODULE_FILE_SIZE.
    """
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"cannot read module {path!r}: it is not a regular file")
            # Read one byte more than the cap, so a file that grows after fstat is caught too.
            data = handle.read(MAX_MODULE_FILE_SIZE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read module {path!r}: {exc.strerror}") from None
    if len(data) > MAX_MODULE_FILE_SIZE:
        raise UsageError(f"cannot read module {path!r}: it is larger than "
                         f"{MAX_MODULE_FILE_SIZE} bytes, the limit for module files")
    return data


def classify(path: str, data: bytes) -> ModuleKind:
    """Return what `data`, the contents of `path`, is.

    Raises DecodeError for an empty file, for text that is not WAT, and for
    other bytes, naming the file and showing its first bytes.
    """
    if not data:
        raise DecodeError(f"{path} is empty, so it is not a WebAssembly module")
    if data.startswith(WASM_MAGIC):
        return ModuleKind.BINARY
    if data.startswith(ARTIFACT_MAGIC):
        return ModuleKind.ARTIFACT
    if WASM_MAGIC.startswith(data):
        raise DecodeError(f"{path} is not a WebAssembly module: it contains only the first "
                          f"{len(data)} of the 4 magic bytes {_hex(WASM_MAGIC)}")
    text = _as_text(data)
    if text is None:
        raise DecodeError(_not_a_module(path, data))
    rest = skip_wat_trivia(text)
    if rest.startswith("("):
        return ModuleKind.TEXT
    if not rest:
        raise DecodeError(f"{path} contains only whitespace and WAT comments, so it is not "
                          "a WebAssembly module")
    snippet = rest.splitlines()[0][:40]
    raise DecodeError(f"{path} is not a WebAssembly module: it is text that starts with "
                      f"{snippet!r}, but WAT text starts with '('")


def _as_text(data: bytes) -> str | None:
    """Return `data` as text, or None when it is not UTF-8 or contains control characters.

    Control characters other than tab, line feed and carriage return mean a
    binary file (an ELF header decodes as UTF-8, for example).
    """
    if any(data.startswith(magic) for magic, _name in _SIGNATURES):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _CONTROL_CHARACTER.search(text):
        return None
    return text


def _hex(data: bytes) -> str:
    return " ".join(f"{byte:02x}" for byte in data)


def _not_a_module(path: str, data: bytes) -> str:
    kind = next((f" ({name})" for magic, name in _SIGNATURES if data.startswith(magic)), "")
    return (f"{path} is not a WebAssembly module: it starts with {_hex(data[:8])}{kind}, "
            f"not with the magic bytes {_hex(WASM_MAGIC)} of a binary module, and it is "
            "not WAT text")


def skip_wat_trivia(text: str) -> str:
    """Return `text` without its leading whitespace, line comments and (nested) block comments."""
    position = 0
    while position < len(text):
        if text[position] in " \t\n\r":
            position += 1
        elif text.startswith(";;", position):
            end = text.find("\n", position)
            position = len(text) if end < 0 else end + 1
        elif text.startswith("(;", position):
            start = position
            depth = 0
            while position < len(text):
                if text.startswith("(;", position):
                    depth += 1
                    position += 2
                elif text.startswith(";)", position):
                    depth -= 1
                    position += 2
                    if depth == 0:
                        break
                else:
                    position += 1
            if depth:
                # An unterminated block comment: leave it to the WAT parser to report.
                return text[start:]
        else:
            break
    return text[position:]
