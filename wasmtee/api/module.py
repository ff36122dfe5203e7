"""Modules: decode or parse, validate, and compile once per engine."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Self

from wasmtee.errors import UsageError, WatSyntaxError
from wasmtee.model import ExternKind, FuncType, GlobalType, MemoryType, TableType
from wasmtee.model import Module as ModelModule
from wasmtee.runtime.config import Engine

logger = logging.getLogger(__name__)

ExternType = FuncType | TableType | MemoryType | GlobalType


@dataclass(frozen=True)
class ImportType:
    """One import of a module: where it comes from and its type."""

    module: str
    name: str
    type: ExternType


@dataclass(frozen=True)
class ExportType:
    """One export of a module: its name and type."""

    name: str
    type: ExternType


def _parse(data: Any) -> ModelModule:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if data[:4] == b"\0asm":
            from wasmtee.binary import decode_module

            return decode_module(data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WatSyntaxError(f"malformed UTF-8 encoding (byte {exc.start})") from None
    elif isinstance(data, str):
        text = data
    else:
        raise UsageError(f"expected wasm bytes or WAT text, got {type(data).__name__}")
    from wasmtee.text import parse_wat

    return parse_wat(text)


def _validate(model: ModelModule) -> Any:
    from wasmtee.valid import validate_module

    return validate_module(model)


def check_store_compatible(module: Module, store: Any) -> None:
    """Raise UsageError unless code compiled for `module` can run in `store`.

    The tier may differ (both tiers share the runtime objects), but fuel
    metering and interruption checks are compiled in, so those must match.
    """
    compiled_for = module.engine.config
    config = store.config
    if (compiled_for.consume_fuel, compiled_for.epoch_interruption) != (
        config.consume_fuel, config.epoch_interruption
    ):
        raise UsageError(
            "the module and the store belong to engines with different consume_fuel or "
            "epoch_interruption settings; compile the module with the store's engine"
        )


class Module:
    """A validated, compiled module, ready to instantiate in any store of its engine.

    `Module(engine, data)` decodes bytes that start with b"\\0asm" and parses
    any other str or bytes as WAT. Raises DecodeError, WatSyntaxError,
    ValidationError (UnsupportedFeature for later proposals) or CompileError.
    """

    def __init__(self, engine: Engine, wasm: bytes | bytearray | str) -> None:
        model = _parse(wasm)
        if isinstance(wasm, (bytes, bytearray)) and wasm[:4] == b"\0asm":
            # The llvm tier keys its JIT cache by the binary; handing it the
            # source saves re-encoding the model. It takes the attribute off,
            # so a later edit of the model cannot reuse a stale key.
            setattr(model, "source_binary", bytes(wasm))
        self._init(engine, model)
        size = len(wasm) if isinstance(wasm, (bytes, bytearray, str)) else 0
        logger.info(
            "loaded module %s: %d functions, %d bytes, %s tier",
            model.names.module_name or "(unnamed)", len(model.funcs), size, self._tier_name,
        )

    def _init(self, engine: Engine, model: ModelModule) -> None:
        if not isinstance(engine, Engine):
            raise UsageError(f"expected an Engine, got {engine!r}")
        self.engine = engine
        self._model = model
        tier = engine.tier
        # The llvm tier returns the info of a module whose native code comes
        # from a MAC-checked artifact or cache entry, made after validating
        # these exact bytes. Other modules are validated here.
        trusted_info = getattr(tier, "trusted_info", None)
        info = trusted_info(model, engine.config) if trusted_info is not None else None
        self._info = info if info is not None else _validate(model)
        self._tier_name: str = tier.name
        self._compiled = tier.compile(model, self._info, engine.config)

    @classmethod
    def from_model(cls, engine: Engine, model: ModelModule) -> Module:
        """Validate and compile an already decoded or parsed `wasmtee.model.Module`.

        Raises ValidationError or CompileError.
        """
        self = cls.__new__(cls)
        self._init(engine, model)
        return self

    @classmethod
    def from_file(cls, engine: Engine, path: str | os.PathLike[str]) -> Module:
        """Load a .wasm or .wat file. Raises UsageError when it cannot be read."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise UsageError(f"cannot read module {os.fspath(path)!r}: {exc.strerror}") from None
        return cls(engine, data)

    @staticmethod
    def validate(engine: Engine, data: bytes | bytearray | str) -> None:
        """Check that `data` is a valid module without compiling it.

        Raises DecodeError, WatSyntaxError or ValidationError.
        """
        if not isinstance(engine, Engine):
            raise UsageError(f"expected an Engine, got {engine!r}")
        _validate(_parse(data))

    def close(self) -> None:
        """Drop the compiled code; instances made earlier keep working.

        Later instantiation raises UsageError.
        """
        self._compiled = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def compiled(self) -> Any:
        """The tier's CompiledModule. Raises UsageError after close()."""
        if self._compiled is None:
            raise UsageError("the module is closed")
        return self._compiled

    @property
    def model(self) -> ModelModule:
        """The module structure (wasmtee.model.Module)."""
        return self._model

    @property
    def name(self) -> str | None:
        return self._model.names.module_name

    @property
    def imports(self) -> list[ImportType]:
        model = self._model
        out = []
        for imp in model.imports:
            ty = model.types[imp.desc] if imp.kind is ExternKind.FUNC else imp.desc  # type: ignore[index]
            out.append(ImportType(imp.module, imp.name, ty))  # type: ignore[arg-type]
        return out

    @property
    def exports(self) -> list[ExportType]:
        model = self._model
        spaces: dict[ExternKind, list[Any]] = {
            ExternKind.FUNC: [model.types[i.desc] for i in model.imports_of(ExternKind.FUNC)]  # type: ignore[index]
            + [model.types[f.type_index] for f in model.funcs],
            ExternKind.TABLE: [i.desc for i in model.imports_of(ExternKind.TABLE)]
            + [t.type for t in model.tables],
            ExternKind.MEMORY: [i.desc for i in model.imports_of(ExternKind.MEMORY)]
            + [m.type for m in model.mems],
            ExternKind.GLOBAL: [i.desc for i in model.imports_of(ExternKind.GLOBAL)]
            + [g.type for g in model.globals],
        }
        return [ExportType(e.name, spaces[e.kind][e.index]) for e in model.exports]

    def __repr__(self) -> str:
        return f"<Module {self.name or ''} {len(self._model.funcs)} functions>"
