"""An attested job channel served by the enclave over RA-TLS.

The enclave process itself listens on a TCP address (loopback by default),
so TLS ends inside the enclave and the host relays no TLS bytes. A client
verifies the enclave's RA-TLS certificate (wasmtee.tee.ratls) and then sends
one request over the channel. Both directions use frames of a 4-byte
big-endian length and canonical CBOR:

    request:  {"module": bytes, "input": bytes, "args": [str, ...]}
    response: {"ok": true, "exit_code": int, "result": bytes or null,
               "stdout": bytes, "stderr": bytes}
           or {"ok": false, "error": str}

The module runs as a WASI command with `input` as its standard input and a
protected-file directory at RESULT_DIR. If it writes RESULT_FILE there, the
enclave sends that file's contents back as "result". The host only ever
stores the file as ciphertext, and it learns the outcome of a request but
not its contents (see `serve_one`).
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import cbor2

from wasmtee.errors import WasmteeError
from wasmtee.tee.attester import Attester
from wasmtee.tee.errors import EnclaveError
from wasmtee.tee.ratls import RatlsIdentity, create_certificate, server_context

log = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct(">I")
MAX_REQUEST_SIZE = 64 * 1024 * 1024
MAX_REQUEST_ARGS = 4096
RESULT_DIR = "/data"
# The path of the result file inside the protected store (RESULT_DIR/result for the guest).
RESULT_FILE = "/result"
MAX_TIMEOUT = 3600.0

# Runs one validated request and returns the response map.
RequestHandler = Callable[[bytes, bytes, list[str]], dict[str, Any]]


class ChannelError(EnclaveError):
    """A client broke the job protocol: bad framing, oversized or malformed request."""


class AttestedServer:
    """A loopback RA-TLS listener inside the enclave with a fresh key per server."""

    def __init__(self, attester: Attester, host: str, port: int) -> None:
        self.identity: RatlsIdentity = create_certificate(attester, common_name="wasmtee enclave")
        self._context = server_context(self.identity, require_client_attestation=False)
        # TODO: this listener has run only on the sim backend, never under gramine-sgx.
        try:
            self._listener = socket.create_server((host, port))
        except OSError as exc:
            raise EnclaveError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.host = host
        self.port = self._listener.getsockname()[1]
        log.info("RA-TLS server listening on %s:%d", host, self.port)

    def close(self) -> None:
        self._listener.close()

    def serve_one(self, timeout: float, handler: RequestHandler) -> dict[str, Any]:
        """Accept one client, run its request with `handler` and send the response.

        Returns an outcome for the host that names the failed step, never the
        request, its result or a guest error message. Raises EnclaveError
        when no client connects within `timeout` seconds.
        """
        self._listener.settimeout(timeout)
        try:
            raw, address = self._listener.accept()
        except TimeoutError:
            raise EnclaveError(f"no client connected within {timeout} s") from None
        peer = f"{address[0]}:{address[1]}"
        raw.settimeout(timeout)
        try:
            connection = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            log.warning("TLS handshake with %s failed: %s", peer, exc)
            return {"peer": peer, "served": False, "step": "handshake"}
        with connection:
            try:
                module, stdin, args = _parse_request(_receive_frame(connection))
            except (ChannelError, ssl.SSLError, OSError) as exc:
                log.warning("no valid request from %s: %s", peer, exc)
                return {"peer": peer, "served": False, "step": "request"}
            response = _run_request(handler, module, stdin, args)
            try:
                _send_frame(connection, response)
            except (ssl.SSLError, OSError) as exc:
                log.warning("sending the response to %s failed: %s", peer, exc)
                return {"peer": peer, "served": False, "step": "response"}
        return {"peer": peer, "served": True, "ok": response["ok"]}


def check_timeout(value: Any) -> float:
    """Return `value` as seconds, or raise EnclaveError unless 0 < value <= MAX_TIMEOUT."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EnclaveError(f"timeout must be a number of seconds, not {value!r}")
    if not 0 < value <= MAX_TIMEOUT:
        raise EnclaveError(f"timeout {value} s is out of range (0, {MAX_TIMEOUT}]")
    return float(value)


def _run_request(handler: RequestHandler, module: bytes, stdin: bytes,
                 args: list[str]) -> dict[str, Any]:
    try:
        return handler(module, stdin, args)
    except (WasmteeError, TypeError, ValueError, OverflowError) as exc:
        # The message goes to the attested client only, because it may
        # describe the client's confidential module or input.
        log.info("request failed inside the enclave: %s", type(exc).__name__)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _receive_exact(connection: ssl.SSLSocket, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = connection.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ChannelError(f"connection closed with {remaining} of {size} bytes missing")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _receive_frame(connection: ssl.SSLSocket) -> Any:
    (size,) = FRAME_HEADER.unpack(_receive_exact(connection, FRAME_HEADER.size))
    if size > MAX_REQUEST_SIZE:
        raise ChannelError(f"frame of {size} bytes exceeds the max of {MAX_REQUEST_SIZE}")
    payload = _receive_exact(connection, size)
    try:
        return cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise ChannelError(f"frame is not valid CBOR: {exc}") from None


def _send_frame(connection: ssl.SSLSocket, value: dict[str, Any]) -> None:
    payload = cbor2.dumps(value, canonical=True)
    connection.sendall(FRAME_HEADER.pack(len(payload)) + payload)


def _parse_request(request: Any) -> tuple[bytes, bytes, list[str]]:
    if not isinstance(request, dict):
        raise ChannelError(f"request must be a CBOR map, not {type(request).__name__}")
    unknown = set(request) - {"module", "input", "args"}
    if unknown:
        raise ChannelError(f"unknown request fields {sorted(map(str, unknown))}")
    module = request.get("module")
    stdin = request.get("input", b"")
    args = request.get("args", [])
    if not isinstance(module, bytes):
        raise ChannelError("request field 'module' must be bytes")
    if not isinstance(stdin, bytes):
        raise ChannelError("request field 'input' must be bytes")
    if not isinstance(args, list) or not all(isinstance(item, str) for item in args):
        raise ChannelError("request field 'args' must be a list of strings")
    if len(args) > MAX_REQUEST_ARGS:
        raise ChannelError(f"request has {len(args)} arguments, max {MAX_REQUEST_ARGS}")
    return module, stdin, args


def send_request(connection: ssl.SSLSocket, module: bytes, stdin: bytes = b"",
                 args: list[str] | None = None) -> dict[str, Any]:
    """Send one job over a verified RA-TLS connection and return the enclave's response.

    The client side of the protocol. Raises ChannelError when the enclave
    closes the connection early or sends a malformed response.
    """
    _send_frame(connection, {"module": bytes(module), "input": bytes(stdin),
                             "args": list(args or [])})
    response = _receive_frame(connection)
    if not isinstance(response, dict) or not isinstance(response.get("ok"), bool):
        raise ChannelError(f"malformed response from the enclave: {response!r:.200}")
    return response
