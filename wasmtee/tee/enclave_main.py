"""Entry point of the enclave process: `python -m wasmtee.tee.enclave_main READ_FD WRITE_FD`.

The host starts this module with two inherited pipe descriptors and drives
it with ECALLs (see wasmtee.tee.protocol). The process exits when the host
sends 'destroy', closes the pipe, or sends a frame above the size cap.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import cbor2

from wasmtee.tee.enclave_service import EnclaveService
from wasmtee.tee.errors import EnclaveError, ProtocolError
from wasmtee.tee.protocol import PROTOCOL_VERSION, Channel, decode_message

log = logging.getLogger("wasmtee.tee.enclave")


class OcallClient:
    """Send OCALLs to the host over `channel` and check each reply."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._seq = 0

    def __call__(self, op: str, args: dict[str, Any]) -> Any:
        self._seq += 1
        seq = self._seq
        self._channel.send({"v": PROTOCOL_VERSION, "seq": seq, "type": "ocall",
                            "op": op, "args": args})
        message = decode_message(self._channel.receive_payload())
        if message["type"] != "ocall-result" or message["seq"] != seq:
            raise ProtocolError(
                f"expected the result of OCALL {seq} ({op!r}), got a {message['type']!r} "
                f"message with sequence number {message['seq']}"
            )
        if not message["ok"]:
            raise EnclaveError(f"OCALL {op!r} failed on the host: {message['error']['message']}")
        return message.get("value")


def serve(channel: Channel) -> int:
    """Handle ECALLs until 'destroy' or a broken channel; return the exit status."""
    service = EnclaveService(OcallClient(channel))
    while not service.destroyed:
        try:
            payload = channel.receive_payload()
        except ProtocolError as exc:
            # The oversized payload is still in the pipe, so framing is lost.
            log.error("closing the channel: %s", exc)
            channel.send({"v": PROTOCOL_VERSION, "seq": 1, "type": "result", "ok": False,
                          "error": {"kind": "ProtocolError", "message": str(exc)}})
            return 2
        except EnclaveError:
            log.info("host closed the channel")
            return 0
        result = service.handle_payload(payload)
        try:
            channel.send(result)
        except BrokenPipeError:
            return 0
        except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
            # A result value CBOR cannot encode (for example a reference
            # returned by a wasm function) must not end the enclave.
            log.error("cannot encode the result of ECALL %d: %s", result["seq"], exc)
            channel.send({"v": PROTOCOL_VERSION, "seq": result["seq"], "type": "result",
                          "ok": False, "error": {"kind": "EnclaveError",
                                                 "message": "the result cannot be encoded"}})
        channel.max_message_size = service.max_message_size
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(item.isdigit() for item in argv):
        print("usage: python -m wasmtee.tee.enclave_main READ_FD WRITE_FD", file=sys.stderr)
        return 2
    level_name = os.environ.get("WASMTEE_ENCLAVE_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(
        level=getattr(logging, level_name, logging.WARNING),
        format="wasmtee enclave: %(levelname)s: %(name)s: %(message)s",
    )
    read_fd, write_fd = int(argv[0]), int(argv[1])
    if write_fd == 1:
        # Standard output carries the protocol, so stray prints go to stderr.
        sys.stdout = sys.stderr
    channel = Channel(read_fd, write_fd)
    try:
        return serve(channel)
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
