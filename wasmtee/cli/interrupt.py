"""Ctrl-C (SIGINT) handling of `wasmtee run` while guest code runs.

The python tier stops on KeyboardInterrupt like any Python code. Code of
the llvm tier never returns to the interpreter while it loops, so a
`SignalWatcher` thread interrupts the store instead. The guest then traps
with INTERRUPTED at its next function entry or loop back-edge, and the
command reports "interrupted" with exit status 130, as for the python tier.
A second SIGINT, or the first one for native code that has no interruption
checks (an AOT artifact compiled without --interruptible), ends the process
at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Callable

from wasmtee.errors import Trap, TrapCode
from wasmtee.signal_watch import SignalWatcher

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as wasmtee.cli.EXIT_INTERRUPTED


def exit_now(command: str) -> None:
    """Report the interrupt and end the process without cleanup; safe from any thread."""
    os.write(2, f"{command}: interrupted\n".encode())
    os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def interrupt_on_sigint(interrupt: Callable[[], None] | None, native: bool,
                        command: str = "wasmtee run") -> Iterator[None]:
    """Call `interrupt()` on the first SIGINT while the body runs; end the process on the second.

    `interrupt` is None when the guest cannot be interrupted. Then the first
    SIGINT ends the process at once when `native` is true, and otherwise it
    is left to KeyboardInterrupt. An INTERRUPTED trap that follows a SIGINT
    is raised as KeyboardInterrupt, so the caller reports "interrupted".
    """
    received: list[int] = []

    def on_sigint(signum: int) -> None:
        received.append(signum)
        if len(received) == 1 and interrupt is not None:
            interrupt()
        elif len(received) > 1 or native:
            exit_now(command)

    try:
        with SignalWatcher(on_sigint):
            yield
    except Trap as trap:
        if received and trap.code == TrapCode.INTERRUPTED:
            raise KeyboardInterrupt from None
        raise


def store_interrupter(store: Any) -> Callable[[], None] | None:
    """Return `store.interrupt` when the store's engine enables interruption, else None."""
    return store.interrupt if store.config.epoch_interruption else None
