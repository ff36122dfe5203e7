"""The WAST script runner: runs spec-style scripts against wasmtee and counts results.

Every assertion, and every bare action, counts as passed, failed or skipped.
A module that should load but does not counts as one failure, and the
assertions that use it fail with a pointer to it. A module that raises
`UnsupportedFeature` is skipped together with the assertions that use it.
Results are compared bit for bit on raw values, NaN payloads included.

Error messages must start with the script's expected text, except for
`assert_malformed` on text and quote modules: there any WatSyntaxError or
DecodeError passes, because text-format messages differ between tools.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from wasmtee.errors import (
    DecodeError,
    LinkError,
    Trap,
    TrapCode,
    UnsupportedFeature,
    ValidationError,
    WasmteeError,
    WatSyntaxError,
)
from wasmtee.model import Module, SegmentMode, ValType
from wasmtee.script.backend import Backend
from wasmtee.script.results import (
    describe_expected,
    describe_raw,
    matches,
    raw_argument,
)
from wasmtee.text.wast import Action, Command, ScriptModule, parse_script

log = logging.getLogger(__name__)


@dataclass
class Failure:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Summary:
    """Counts over one or more scripts, with the failures and grouped skip reasons."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, other: Summary) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.failures.extend(other.failures)
        self.skip_reasons.update(other.skip_reasons)
        self.seconds += other.seconds

    def line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


class _Outcome(Exception):
    """Ends one command early with a failure or a skip."""

    def __init__(self, reason: str, skip: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.skip = skip


@dataclass
class _Slot:
    """A module defined by the script: an instance, or why there is none."""

    instance: object | None = None
    skip_reason: str | None = None
    failed_line: int | None = None


# Seconds one command may run before the watchdog interrupts it.
DEFAULT_COMMAND_TIMEOUT = 60.0


class _Watchdog:
    """A thread that interrupts the store when one command runs longer than `timeout`."""

    def __init__(self, backend: Backend, timeout: float) -> None:
        self.backend = backend
        self.timeout = timeout
        self.started: float | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(
            target=self.watch, name="wast-watchdog", daemon=True
        )
        self.thread.start()

    def watch(self) -> None:
        interval = min(1.0, self.timeout / 4)
        while not self.stopped.wait(interval):
            started = self.started
            if started is not None and time.monotonic() - started > self.timeout:
                log.warning(
                    "interrupting a command that ran longer than %.0fs", self.timeout
                )
                self.backend.interrupt()
                self.started = None

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


class ScriptRunner:
    """Runs the commands of one script in a fresh store."""

    def __init__(
        self, file: str, backend: Backend, timeout: float = DEFAULT_COMMAND_TIMEOUT
    ) -> None:
        self.file = file
        self.backend = backend
        self.timeout = timeout
        self.summary = Summary()
        self.current: _Slot | None = None
        self.named: dict[str, _Slot] = {}
        # Module definitions by $name, None for the latest one: the loaded
        # module, or the reason why it was skipped.
        self.definitions: dict[str | None, tuple[Module, object] | str] = {}
        self.registered: dict[str, _Slot] = {"spectest": _Slot(backend.spectest())}

    # Counting -------------------------------------------------------------------

    def passed(self) -> None:
        self.summary.passed += 1

    def fail(self, line: int, reason: str) -> None:
        self.summary.failed += 1
        self.summary.failures.append(Failure(self.file, line, reason))

    def skip(self, reason: str) -> None:
        self.summary.skipped += 1
        self.summary.skip_reasons[reason] += 1

    # Commands -------------------------------------------------------------------

    def run(self, commands: list[Command]) -> Summary:
        start = time.perf_counter()
        watchdog = _Watchdog(self.backend, self.timeout)
        try:
            for command in commands:
                watchdog.started = time.monotonic()
                self.run_one(command)
                watchdog.started = None
                self.backend.clear_interrupt()
        finally:
            watchdog.stop()
        self.summary.seconds = time.perf_counter() - start
        return self.summary

    def run_one(self, command: Command) -> None:
        """Run one command and count its outcome."""
        try:
            self.run_command(command)
        except _Outcome as outcome:
            if outcome.skip:
                self.skip(outcome.reason)
            else:
                self.fail(command.line, f"{command.kind}: {outcome.reason}")
        except RecursionError:
            self.fail(command.line, f"{command.kind}: Python RecursionError escaped")
        except Exception as exc:  # a bug in another layer must not stop the script
            log.debug("internal error at %s:%d", self.file, command.line, exc_info=True)
            self.fail(
                command.line,
                f"{command.kind}: internal error: {type(exc).__name__}: {exc}",
            )

    def run_command(self, command: Command) -> None:
        kind = command.kind
        if kind == "module":
            assert command.module is not None
            if command.module.definition:
                self.define_definition(command.module)
            else:
                self.define_module(command)
        elif kind == "module_instance":
            self.instantiate_definition(command)
        elif kind == "register":
            slot = self.find_slot(command.register_module)
            self.registered[command.register_as] = slot
        elif kind == "action":
            assert command.action is not None
            self.perform(command.action)
            self.passed()
        elif kind == "assert_return":
            self.assert_return(command)
            self.passed()
        elif kind in ("assert_trap", "assert_exhaustion"):
            self.assert_trap(command)
            self.passed()
        elif kind == "assert_malformed":
            self.assert_malformed(command)
            self.passed()
        elif kind == "assert_invalid":
            self.assert_invalid(command)
            self.passed()
        elif kind in ("assert_unlinkable", "assert_uninstantiable"):
            self.assert_instantiation_fails(command)
            self.passed()
        elif kind == "skip":
            raise _Outcome(command.reason, skip=True)
        else:
            raise _Outcome(f"unknown command kind {kind}")

    def define_definition(self, script_module: ScriptModule) -> None:
        """Decode and validate a `module definition` without instantiating it."""
        names = [None] if script_module.name is None else [None, script_module.name]
        try:
            loaded = self.load(script_module, may_modify=False)
        except UnsupportedFeature as exc:
            reason = f"unsupported feature: {exc.feature}"
            self.definitions.update(dict.fromkeys(names, reason))
            raise _Outcome(reason, skip=True) from None
        except WasmteeError as exc:
            for name in names:
                self.definitions.pop(name, None)
            raise _Outcome(
                f"module definition failed to load: {type(exc).__name__}: {exc}"
            ) from None
        self.definitions.update(dict.fromkeys(names, loaded))

    def instantiate_definition(self, command: Command) -> None:
        loaded = self.definitions.get(command.definition_name)
        if loaded is None or isinstance(loaded, str):
            slot = _Slot(skip_reason=loaded)
            self.current = slot
            if command.instance_name is not None:
                self.named[command.instance_name] = slot
            if loaded is not None:
                raise _Outcome(loaded, skip=True)
            slot.failed_line = command.line
            raise _Outcome(f"unknown module definition {command.definition_name or '(latest)'}")
        self.define_module(command, loaded)

    def define_module(self, command: Command,
                      loaded: tuple[Module, object] | None = None) -> None:
        """Instantiate a script module, or the given definition for `module instance`."""
        script_module = command.module
        name = script_module.name if script_module is not None else command.instance_name
        slot = _Slot()
        self.current = slot
        if name is not None:
            self.named[name] = slot
        try:
            if loaded is None:
                assert script_module is not None
                loaded = self.load(script_module)
            slot.instance = self.instantiate(loaded)
        except UnsupportedFeature as exc:
            slot.skip_reason = f"unsupported feature: {exc.feature}"
            raise _Outcome(slot.skip_reason, skip=True) from None
        except _Outcome as outcome:
            if outcome.skip:
                slot.skip_reason = outcome.reason
            else:
                slot.failed_line = command.line
            raise
        except WasmteeError as exc:
            slot.failed_line = command.line
            raise _Outcome(
                f"module failed to load: {type(exc).__name__}: {exc}"
            ) from None

    def load(
        self, script_module: ScriptModule, may_modify: bool = True
    ) -> tuple[Module, object]:
        """Parse or decode, then validate a script module that is to be instantiated.

        `may_modify` is False when its instantiation cannot write to imports,
        as for an unlinkable module, which fails before it writes anything.
        """
        if script_module.kind == "binary":
            module = self.backend.decode(script_module.data)
        else:
            try:
                module = script_module.parse_text()
            except UnsupportedFeature as exc:
                imports, may_write = script_module.text_effects()
                if may_modify and may_write:
                    self.skip_registered(imports, f"unsupported feature: {exc.feature}")
                raise
        try:
            return module, self.backend.validate(module)
        except UnsupportedFeature as exc:
            if may_modify:
                self.skip_modified_imports(
                    module, f"unsupported feature: {exc.feature}"
                )
            raise

    def skip_modified_imports(self, module: Module, reason: str) -> None:
        """Skip later uses of registered modules that a skipped instantiation could modify.

        A start function or an active segment could have written to the
        imported instances' memories, tables or globals, so what later
        assertions observe there is unknown.
        """
        has_segments = any(
            seg.mode is SegmentMode.ACTIVE for seg in module.elems
        ) or any(seg.mode is SegmentMode.ACTIVE for seg in module.datas)
        if module.start is None and not has_segments:
            return
        self.skip_registered({imp.module for imp in module.imports}, reason)

    def skip_registered(self, names: set[str], reason: str) -> None:
        for name in names:
            slot = self.registered.get(name)
            if slot is not None and name != "spectest" and slot.skip_reason is None:
                slot.skip_reason = reason

    def instantiate(self, loaded: tuple[Module, object]) -> object:
        module, info = loaded
        externs = []
        for imp in module.imports:
            slot = self.registered.get(imp.module)
            if slot is None:
                raise LinkError(
                    f'unknown import: module "{imp.module}" is not registered '
                    f"[{imp.module}.{imp.name}]"
                )
            if slot.skip_reason is not None:
                raise _Outcome(slot.skip_reason, skip=True)
            if slot.instance is None:
                raise LinkError(f'unknown import: module "{imp.module}" failed to load')
            extern = self.backend.export(slot.instance, imp.name)
            if extern is None:
                raise LinkError(f"unknown import [{imp.module}.{imp.name}]")
            externs.append(extern)
        return self.backend.instantiate(module, info, externs)

    def find_slot(self, name: str | None) -> _Slot:
        slot = self.current if name is None else self.named.get(name)
        if slot is None:
            raise _Outcome(f"unknown module {name or '(no module defined yet)'}")
        return slot

    def instance_for(self, name: str | None) -> object:
        slot = self.find_slot(name)
        if slot.skip_reason is not None:
            raise _Outcome(slot.skip_reason, skip=True)
        if slot.instance is None:
            raise _Outcome(f"the module at line {slot.failed_line} failed to load")
        return slot.instance

    # Actions and assertions -----------------------------------------------------

    def perform(self, action: Action) -> tuple[list[object], list[ValType]]:
        """Run an action; return its raw results and their value types."""
        instance = self.instance_for(action.module)
        extern = self.backend.export(instance, action.name)
        if extern is None:
            raise _Outcome(f'unknown export "{action.name}"')
        if action.kind == "get":
            return [self.backend.global_value(extern)], [
                self.backend.global_type(extern)
            ]
        args = [raw_argument(value) for value in action.args]
        return self.backend.call(extern, args)

    def assert_return(self, command: Command) -> None:
        assert command.action is not None
        try:
            results, types = self.perform(command.action)
        except Trap as exc:
            raise _Outcome(f"unexpected trap: {exc}") from None
        expected = command.expected
        if len(results) != len(expected):
            raise _Outcome(f"expected {len(expected)} results, got {len(results)}")
        for index, (want, raw, val_type) in enumerate(zip(expected, results, types)):
            if not matches(want, val_type, raw):
                raise _Outcome(
                    f"result {index}: expected {describe_expected(want)}, "
                    f"got {describe_raw(val_type, raw)}"
                )

    def assert_trap(self, command: Command) -> None:
        if command.module is not None:
            self.assert_instantiation_fails(command)
            return
        assert command.action is not None
        try:
            results, types = self.perform(command.action)
        except Trap as exc:
            self.check_message(command, str(exc))
            if (
                command.kind == "assert_exhaustion"
                and exc.code is not TrapCode.STACK_EXHAUSTED
            ):
                raise _Outcome(f'expected stack exhaustion, got trap "{exc}"') from None
            return
        described = ", ".join(describe_raw(t, r) for r, t in zip(results, types))
        raise _Outcome(f'expected trap "{command.message}", got results [{described}]')

    def check_message(self, command: Command, actual: str) -> None:
        if not actual.startswith(command.message):
            raise _Outcome(f'expected error "{command.message}", got "{actual}"')

    def assert_malformed(self, command: Command) -> None:
        script_module = command.module
        assert script_module is not None
        try:
            module = self.load_unvalidated(script_module)
        except UnsupportedFeature as exc:
            raise _Outcome(f"unsupported feature: {exc.feature}", skip=True) from None
        except (WatSyntaxError, DecodeError) as exc:
            if script_module.kind == "binary":
                self.check_message(command, exc.message)
            return
        try:
            self.backend.validate(module)
        except UnsupportedFeature as exc:
            raise _Outcome(f"unsupported feature: {exc.feature}", skip=True) from None
        except ValidationError as exc:
            raise _Outcome(
                f'expected malformed "{command.message}", got invalid "{exc}"'
            ) from None
        raise _Outcome(f'expected malformed "{command.message}", module loaded')

    def load_unvalidated(self, script_module: ScriptModule) -> Module:
        if script_module.kind == "binary":
            return self.backend.decode(script_module.data)
        return script_module.parse_text()

    def assert_invalid(self, command: Command) -> None:
        script_module = command.module
        assert script_module is not None
        try:
            module = self.load_unvalidated(script_module)
            self.backend.validate(module)
        except UnsupportedFeature as exc:
            raise _Outcome(f"unsupported feature: {exc.feature}", skip=True) from None
        except ValidationError as exc:
            self.check_message(command, exc.message)
            return
        except (WatSyntaxError, DecodeError) as exc:
            raise _Outcome(
                f'expected invalid "{command.message}", got malformed "{exc}"'
            ) from None
        raise _Outcome(f'expected invalid "{command.message}", module validated')

    def assert_instantiation_fails(self, command: Command) -> None:
        """Check assert_unlinkable, assert_uninstantiable and assert_trap on a module."""
        script_module = command.module
        assert script_module is not None
        try:
            loaded = self.load(
                script_module, may_modify=command.kind != "assert_unlinkable"
            )
        except UnsupportedFeature as exc:
            raise _Outcome(f"unsupported feature: {exc.feature}", skip=True) from None
        except WasmteeError as exc:
            raise _Outcome(
                f"module failed to load: {type(exc).__name__}: {exc}"
            ) from None
        expected_error = LinkError if command.kind == "assert_unlinkable" else Trap
        try:
            self.instantiate(loaded)
        except expected_error as exc:
            self.check_message(command, str(exc))
            return
        except WasmteeError as exc:
            raise _Outcome(
                f'expected {expected_error.__name__} "{command.message}", '
                f'got {type(exc).__name__} "{exc}"'
            ) from None
        raise _Outcome(
            f'expected {expected_error.__name__} "{command.message}", '
            "module instantiated"
        )


def run_script_text(
    text: str, file: str, backend: Backend, timeout: float = DEFAULT_COMMAND_TIMEOUT
) -> Summary:
    """Run the script in `text`; a malformed script counts as one failure."""
    try:
        commands = parse_script(text)
    except WatSyntaxError as exc:
        summary = Summary()
        summary.failed = 1
        summary.failures.append(
            Failure(file, exc.line or 0, f"malformed script: {exc}")
        )
        return summary
    return ScriptRunner(file, backend, timeout).run(commands)


def run_script_file(
    path: str | Path, tier: str = "python", timeout: float = DEFAULT_COMMAND_TIMEOUT
) -> Summary:
    """Run one .wast file on `tier` ("python" or "llvm") in a fresh store.

    A command that runs longer than `timeout` seconds is interrupted and fails.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        summary = Summary(failed=1)
        summary.failures.append(
            Failure(str(path), 0, f"malformed UTF-8 encoding: {exc}")
        )
        return summary
    except OSError as exc:
        summary = Summary(failed=1)
        summary.failures.append(
            Failure(str(path), 0, f"cannot read the script: {exc.strerror}")
        )
        return summary
    start = time.perf_counter()
    backend = Backend(tier)
    try:
        summary = run_script_text(text, str(path), backend, timeout)
    finally:
        backend.close()
    # Count parsing and store set-up too, not only the commands.
    summary.seconds = time.perf_counter() - start
    log.info("%s: %s in %.2fs", path, summary.line(), summary.seconds)
    return summary
