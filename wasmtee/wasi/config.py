"""WasiConfig: what a WASI program may see (arguments, environment, preopens, streams)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from wasmtee.errors import UsageError


@dataclass
class Preopen:
    """A directory the guest sees at `guest_path`, served by a fs.py backend."""

    guest_path: str
    backend: Any


@dataclass
class WasiConfig:
    """The capabilities handed to one WASI instance; nothing else is visible.

    `argv` includes the program name. `env` is passed through exactly, and the
    host environment is never inherited implicitly. A stream is None (stdin
    reads as empty, output is discarded), "inherit" (the host's fd 0, 1 or 2),
    bytes (stdin only) or a binary file object. `sockets` are listening
    sockets preopened after the directories.
    """

    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    preopens: list[Preopen] = field(default_factory=list)
    stdin: Any = None
    stdout: Any = None
    stderr: Any = None
    sockets: list[socket.socket] = field(default_factory=list)

    def preopen_dir(self, host_path: str, guest_path: str, read_only: bool = False) -> None:
        """Expose the host directory `host_path` as `guest_path`.

        Raises UsageError when `host_path` is not a directory.
        """
        from wasmtee.wasi.fs import HostDirectory

        if not os.path.exists(host_path):
            raise UsageError(f"preopen directory not found: {host_path!r}")
        if not os.path.isdir(host_path):
            raise UsageError(f"preopen path {host_path!r} is not a directory; --dir and "
                             "preopen_dir take a directory")
        self.preopens.append(Preopen(guest_path, HostDirectory(host_path, read_only)))

    def preopen_backend(self, guest_path: str, backend: Any) -> None:
        """Expose any fs.py backend (in-memory, protected files) as `guest_path`."""
        self.preopens.append(Preopen(guest_path, backend))

    def inherit_stdio(self) -> None:
        self.stdin = self.stdout = self.stderr = "inherit"

    def inherit_env(self) -> None:
        """Copy the whole host environment; use only when the guest is trusted with it."""
        self.env = dict(os.environ)
