"""Entry point of the enclave process: `python -m wasmtee.tee.enclave_main READ_FD WRITE_FD`.

The host starts this module with two inherited pipe descriptors and drives
it with ECALLs (see wasmtee.tee.protocol). The process exits when the host
sends 'destroy', closes the pipe, or sends a frame above the size cap.

SIGINT from the host makes the guest code of the running ECALL trap with
INTERRUPTED (`wasmtee run --enclave` forwards Ctrl-C that way). A watchdog
thread ends the process when the host goes away while an ECALL runs: the
host's end of the channel closes (the kernel closes it when the host dies,
even by SIGKILL), or the process gets a new parent.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import cbor2

from wasmtee.tee.enclave_service import EnclaveService
from wasmtee.tee.errors import EnclaveError, ProtocolError
from wasmtee.signal_watch import SignalWatcher
from wasmtee.tee.protocol import PROTOCOL_VERSION, Channel, decode_message

log = logging.getLogger("wasmtee.tee.enclave")

# Seconds between two checks of the parent process id, and seconds that the
# main thread gets to finish on its own after the host went away.
WATCHDOG_INTERVAL = 0.5
WATCHDOG_GRACE = 2.0
EXIT_HOST_GONE = 3


class OcallClient:
    """Send OCALLs to the host over `channel` and check each reply."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._seq = 0
        # One OCALL at a time, because guest output is also sent from a flusher thread.
        self._lock = threading.Lock()

    def __call__(self, op: str, args: dict[str, Any]) -> Any:
        with self._lock:
            return self._call_locked(op, args)

    def _call_locked(self, op: str, args: dict[str, Any]) -> Any:
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


def watch_host(read_fd: int, parent_pid: int, on_host_gone: Callable[[str], None]) -> None:
    """Call `on_host_gone(reason)` once the host's end of `read_fd` closes or the parent changes.

    Polls only for hang-up, so it never reads a message that the main thread expects.
    """
    poller = select.poll()
    poller.register(read_fd, 0)  # POLLHUP and POLLERR are always reported
    while True:
        events = poller.poll(WATCHDOG_INTERVAL * 1000)
        if any(flags & (select.POLLHUP | select.POLLERR | select.POLLNVAL)
               for _fd, flags in events):
            reason = "the host closed the channel"
            break
        if os.getppid() != parent_pid:
            reason = f"the host process {parent_pid} exited"
            break
    on_host_gone(reason)


def _start_watchdog(read_fd: int, service: EnclaveService) -> None:
    parent_pid = os.getppid()
    main_thread = threading.main_thread()

    def on_host_gone(reason: str) -> None:
        # An idle main thread sees the end of the channel and exits by itself.
        # Guest code that runs has nobody to report to, so stop it.
        service.interrupt()
        main_thread.join(WATCHDOG_GRACE)
        if not main_thread.is_alive():
            return
        log.warning("%s; ending the enclave process", reason)
        os._exit(EXIT_HOST_GONE)

    threading.Thread(target=watch_host, args=(read_fd, parent_pid, on_host_gone),
                     name="wasmtee-enclave-watchdog", daemon=True).start()


def _forward_sigint(service: EnclaveService) -> SignalWatcher:
    # SIGINT must not raise KeyboardInterrupt in here: the ECALL's result would
    # be lost. The watcher thread interrupts the guest instead, also while the
    # main thread is in native code.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    return SignalWatcher(lambda signum: service.interrupt())


def serve(channel: Channel, service: EnclaveService | None = None) -> int:
    """Handle ECALLs until 'destroy' or a broken channel; return the exit status."""
    if service is None:
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
    service = EnclaveService(OcallClient(channel))
    _start_watchdog(read_fd, service)
    try:
        with _forward_sigint(service):
            return serve(channel, service)
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
