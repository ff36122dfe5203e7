"""The ECALL/OCALL wire protocol between the host and the enclave process.

Each message is a frame: a 4-byte big-endian length, then that many bytes of
CBOR encoding one map. Frames above the receiver's size cap are rejected
before any payload is read. Every map has "v" (PROTOCOL_VERSION), "seq" and
"type":

    ecall         host -> enclave   "op", "args"
    result        enclave -> host   "ok", then "value" or "error"
    ocall         enclave -> host   "op", "args"
    ocall-result  host -> enclave   "ok", then "value" or "error"

Host ECALLs are numbered 1, 2, 3, ... and a result echoes the ECALL's seq.
The enclave numbers its OCALLs the same way, independently, and an
ocall-result echoes the OCALL's seq. A receiver rejects any other seq, so a
replayed or reordered message is never acted on. "error" is a map with
"kind" (an exception class name from ERROR_KINDS) and "message".
"""

from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Callable
from typing import Any

import cbor2

from wasmtee.tee.errors import EnclaveError, ProtocolError
from wasmtee.tee.strict_cbor import StrictCborError, loads_strict

PROTOCOL_VERSION = 1
LENGTH = struct.Struct(">I")
DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024
MAX_DEPTH = 12

MESSAGE_TYPES = {"ecall", "result", "ocall", "ocall-result"}
ERROR_KINDS = {
    "ProtocolError", "EnclaveError", "SealingError", "RollbackError", "TeeError",
    "VerificationError", "Trap", "WasiExit", "LinkError", "DecodeError",
    "ValidationError", "UnsupportedFeature", "ResourceLimitExceeded", "CompileError",
    "UsageError", "InternalError",
}


def encode_message(message: dict[str, Any]) -> bytes:
    """Encode a message map as one frame."""
    payload = cbor2.dumps(message, canonical=True)
    return LENGTH.pack(len(payload)) + payload


def decode_message(payload: bytes) -> dict[str, Any]:
    """Decode and check the envelope of one message payload.

    Raises ProtocolError if the payload is not a CBOR map with a supported
    "v", an integer "seq" >= 1 and a known "type", or carries unknown keys.
    """
    try:
        message = loads_strict(payload, max_depth=MAX_DEPTH)
    except StrictCborError as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"message must be a CBOR map, not {type(message).__name__}")
    version = message.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {version!r}, expected "
                            f"{PROTOCOL_VERSION}")
    seq = message.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2**63:
        raise ProtocolError(f"invalid sequence number {seq!r}")
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {kind!r}")
    if kind in ("ecall", "ocall"):
        allowed = {"v", "seq", "type", "op", "args"}
        if not isinstance(message.get("op"), str):
            raise ProtocolError(f"{kind} message has no operation name")
        if not isinstance(message.get("args"), dict):
            raise ProtocolError(f"{kind} {message['op']!r} arguments must be a map")
    else:
        allowed = {"v", "seq", "type", "ok", "value", "error"}
        if not isinstance(message.get("ok"), bool):
            raise ProtocolError(f"{kind} message has no boolean 'ok'")
        if not message["ok"]:
            _check_error(message.get("error"))
    unknown = set(message) - allowed
    if unknown:
        raise ProtocolError(f"unknown keys in {kind} message: {sorted(map(str, unknown))}")
    return message


def _check_error(error: Any) -> None:
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        raise ProtocolError("failed result has no error map with a message")
    if error.get("kind") not in ERROR_KINDS:
        raise ProtocolError(f"unknown error kind {error.get('kind')!r}")


class Channel:
    """Frames over a pair of pipe file descriptors, with a receive size cap."""

    def __init__(self, read_fd: int, write_fd: int,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 on_close: Callable[[], None] | None = None) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.max_message_size = max_message_size
        # Called by close() in place of closing the descriptors, for
        # descriptors that belong to file objects.
        self._on_close = on_close

    def send(self, message: dict[str, Any]) -> None:
        self.send_frame(encode_message(message))

    def send_frame(self, frame: bytes) -> None:
        """Write one frame from `encode_message`."""
        view = memoryview(frame)
        while view:
            written = os.write(self.write_fd, view)
            view = view[written:]

    def receive_payload(self, timeout: float | None = None) -> bytes:
        """Read one frame's payload.

        Raises EnclaveError when the peer closed the pipe, ProtocolError for
        a frame above the cap (its payload is not read, so the stream is
        unusable afterwards), and TimeoutError when `timeout` seconds pass.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        header = self._read_exact(LENGTH.size, deadline)
        (length,) = LENGTH.unpack(header)
        if length > self.max_message_size:
            raise ProtocolError(
                f"message of {length} bytes exceeds the {self.max_message_size}-byte cap"
            )
        return self._read_exact(length, deadline)

    def _read_exact(self, size: int, deadline: float | None) -> bytes:
        chunks = []
        remaining = size
        while remaining:
            if deadline is not None:
                wait = deadline - time.monotonic()
                ready, _, _ = select.select([self.read_fd], [], [], max(wait, 0))
                if not ready:
                    raise TimeoutError("timed out waiting for a message from the peer")
            chunk = os.read(self.read_fd, min(remaining, 1 << 20))
            if not chunk:
                raise EnclaveError("the peer closed the channel")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            return
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
