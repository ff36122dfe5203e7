"""Run a callback in a helper thread when the process receives a signal.

CPython runs a Python signal handler only in the main thread, between two
bytecodes, so no handler runs while the main thread is in native code (the
llvm tier's compiled functions, for example). CPython's C-level handler
still writes the signal number to the descriptor set with
`signal.set_wakeup_fd`. `SignalWatcher` reads that descriptor in a helper
thread and calls its callback at once, which can then interrupt a store.

The Python-level handlers stay as they are: SIGINT still raises
KeyboardInterrupt once the main thread runs Python code again.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType

log = logging.getLogger(__name__)


class SignalWatcher:
    """A context manager that calls `callback(signum)` from a helper thread for `signals`.

    Only the main thread can set the wakeup descriptor, so in any other
    thread the watcher does nothing. A signal whose Python-level handler is
    SIG_DFL or SIG_IGN never reaches the descriptor, so it never reaches
    the callback either.
    """

    def __init__(self, callback: Callable[[int], None],
                 signals: Iterable[int] = (signal.SIGINT,)) -> None:
        self._callback = callback
        self._signals = frozenset(signals)
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._previous_fd = -1

    def __enter__(self) -> SignalWatcher:
        if threading.current_thread() is not threading.main_thread():
            return self
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        try:
            self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:
            reader.close()
            writer.close()
            return self
        self._reader, self._writer = reader, writer
        self._thread = threading.Thread(target=self._watch, name="wasmtee-signal-watch",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._writer is None or self._reader is None or self._thread is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        # End of stream on the reader ends the helper thread.
        self._writer.shutdown(socket.SHUT_WR)
        self._thread.join()
        self._writer.close()
        self._reader.close()
        self._writer = self._reader = self._thread = None

    def _watch(self) -> None:
        assert self._reader is not None
        while True:
            try:
                data = self._reader.recv(64)
            except OSError as exc:
                log.warning("signal watcher stopped: %s", exc)
                return
            if not data:
                return
            for signum in data:
                if signum in self._signals:
                    try:
                        self._callback(signum)
                    except Exception:  # noqa: BLE001 - a failing callback must not end the watcher
                        log.exception("signal %d callback failed", signum)
