"""The exception hierarchy of wasmtee.

Every error that wasmtee raises on purpose derives from `WasmteeError`, so an
embedder can catch all of them with one clause. Messages start with the text
that the WebAssembly spec test suite expects (for example "out of bounds memory
access"), followed by context in brackets that names the offending value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class WasmteeError(Exception):
    """Base class of every error raised by wasmtee."""


class DecodeError(WasmteeError):
    """A malformed binary module.

    `offset` is the byte offset in the input where decoding failed, or None
    when the position is unknown.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.message = message
        self.offset = offset
        if offset is not None:
            message = f"{message} (at byte 0x{offset:x})"
        super().__init__(message)


class ValidationError(WasmteeError):
    """A module that is well formed but invalid.

    `func_index` is the index of the function whose body failed validation
    (None for module-level errors) and `offset` the byte offset of the
    offending instruction, when known.
    """

    def __init__(
        self,
        message: str,
        func_index: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.message = message
        self.func_index = func_index
        self.offset = offset
        context = []
        if func_index is not None:
            context.append(f"in function {func_index}")
        if offset is not None and offset >= 0:
            context.append(f"at byte 0x{offset:x}")
        if context:
            message = f"{message} ({', '.join(context)})"
        super().__init__(message)


class UnsupportedFeature(ValidationError):
    """A module that uses a WebAssembly proposal wasmtee does not implement.

    `feature` names the proposal, for example "simd" or "threads".
    """

    def __init__(self, feature: str, detail: str = "", offset: int | None = None):
        self.feature = feature
        message = f"unsupported feature: {feature}"
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message, offset=offset)


class WatSyntaxError(WasmteeError):
    """A malformed text-format module or script, with a 1-based line and column."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message = message
        self.line = line
        self.column = column
        if line is not None:
            message = f"{message} (at {line}:{column})"
        super().__init__(message)


class LinkError(WasmteeError):
    """An import that cannot be resolved or whose type does not match.

    Messages begin with "unknown import" or "incompatible import type", as the
    spec test suite expects.
    """


class ResourceLimitExceeded(WasmteeError):
    """A module that needs more memory, table space or instances than the store allows."""


class CompileError(WasmteeError):
    """A failure of the native (LLVM) tier to compile or load a module."""


class UsageError(WasmteeError):
    """Invalid arguments to the command line or to an API call."""


class InternalError(WasmteeError):
    """A state that valid input can never reach: a bug in wasmtee."""


class TrapCode(enum.Enum):
    """The reason for a trap. The value is the spec test suite's message."""

    UNREACHABLE = "unreachable"
    MEMORY_OUT_OF_BOUNDS = "out of bounds memory access"
    TABLE_OUT_OF_BOUNDS = "out of bounds table access"
    INTEGER_OVERFLOW = "integer overflow"
    INTEGER_DIVIDE_BY_ZERO = "integer divide by zero"
    BAD_CONVERSION_TO_INTEGER = "invalid conversion to integer"
    INDIRECT_CALL_TYPE_MISMATCH = "indirect call type mismatch"
    UNINITIALIZED_ELEMENT = "uninitialized element"
    UNDEFINED_ELEMENT = "undefined element"
    NULL_REFERENCE = "null reference"
    STACK_EXHAUSTED = "call stack exhausted"
    OUT_OF_FUEL = "all fuel consumed"
    INTERRUPTED = "interrupted"
    HOST_ERROR = "host function failed"

    @property
    def message(self) -> str:
        return self.value


@dataclass(frozen=True)
class Frame:
    """One wasm frame of a trap's backtrace."""

    func_index: int
    func_name: str | None
    module_name: str | None
    offset: int | None = None

    def __str__(self) -> str:
        name = self.func_name or f"<func {self.func_index}>"
        where = f"{self.module_name}!" if self.module_name else ""
        at = f" @ 0x{self.offset:x}" if self.offset is not None else ""
        return f"{where}{name}{at}"


class Trap(WasmteeError):
    """A WebAssembly trap: execution stopped at a fault.

    `code` is a `TrapCode`, `frames` the wasm backtrace (innermost first) when
    the tier recorded one. `callers_recorded` is False when `frames` holds only
    the trapping function, as on the llvm tier.
    """

    callers_recorded = True

    def __init__(
        self,
        code: TrapCode | str,
        detail: str | None = None,
        frames: list[Frame] | None = None,
    ) -> None:
        if isinstance(code, str):
            # Host code may raise Trap("message") as in wasmtime-py: a host error.
            code, detail = TrapCode.HOST_ERROR, code if detail is None else f"{code}: {detail}"
        self.code = code
        self.detail = detail
        self.frames: list[Frame] = frames or []
        message = code.message
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class WasiExit(WasmteeError):
    """A WASI program called `proc_exit`; `code` is its exit status."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"exited with status {code}")
