"""The host side of the enclave boundary: start an enclave process and drive it.

`Enclave` starts `python -m wasmtee.tee.enclave_main` as a child process,
talks to it over two pipes with the ECALL protocol (wasmtee.tee.protocol),
and serves the OCALLs it sends back: the time, files in one host storage
directory, TCP sockets to allowed hosts, and the guest output of a
streamed `run_wasi`. Under the gramine backend the
same child runs inside `gramine-sgx`; see `wasmtee enclave manifest`.

Example:

    with Enclave(backend="sim", state_dir="/tmp/sim") as enclave:
        quote = enclave.get_quote(b"nonce")
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasmtee.errors import UsageError
from wasmtee.tee.errors import (
    EnclaveError,
    ProtocolError,
    RollbackError,
    SealingError,
    TeeError,
)
from wasmtee.tee.measure import EnclaveConfig
from wasmtee.tee.protocol import (
    LENGTH,
    PROTOCOL_VERSION,
    Channel,
    decode_message,
    encode_message,
)
from wasmtee.tee.wasm_host import MAX_OUTPUT_SIZE

log = logging.getLogger(__name__)

# The directory that contains the wasmtee package, put on the child's path.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
DEFAULT_TIMEOUT = 60.0
# The child command of the gramine backend. gramine-sgx loads the signed
# manifest named wasmtee-enclave (see `wasmtee enclave manifest`).
GRAMINE_COMMAND = ("gramine-sgx", "wasmtee-enclave")
MAX_OPEN_SOCKETS = 64
MAX_RECV_SIZE = 1024 * 1024
# The largest result the host accepts: a run_wasi result carries up to
# MAX_OUTPUT_SIZE bytes of both standard output and standard error.
HOST_MAX_MESSAGE_SIZE = 2 * MAX_OUTPUT_SIZE + 1024 * 1024

_ERROR_CLASSES: dict[str, type[TeeError]] = {
    "ProtocolError": ProtocolError,
    "SealingError": SealingError,
    "RollbackError": RollbackError,
}


class MessageTooLargeError(EnclaveError):
    """An ECALL whose message is above the enclave's size cap; it was not sent."""

    def __init__(self, op: str, size: int, limit: int) -> None:
        self.op = op
        self.size = size
        self.limit = limit
        super().__init__(f"the {op!r} ECALL message is {size} bytes, above the enclave's "
                         f"{limit}-byte cap (EnclaveConfig.max_message_size)")


class EnclaveCallError(EnclaveError):
    """An ECALL that failed inside the enclave; `kind` is the enclave-side error class."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"{kind}: {message}")


@dataclass(frozen=True)
class LoadedModule:
    """A module inside the enclave: its opaque handle and its SHA-256."""

    handle: bytes
    sha256: bytes


@dataclass(frozen=True)
class WasiResult:
    """The exit status and captured output of a WASI run.

    Captured output is at most 16 MiB per stream and empty when it was
    streamed. `stdout_dropped` and `stderr_dropped` count the bytes the
    guest wrote past that cap, which the enclave dropped.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_dropped: int = 0
    stderr_dropped: int = 0


@dataclass(frozen=True)
class RatlsEndpoint:
    """The address of an enclave's RA-TLS job server and its certificate (DER)."""

    host: str
    port: int
    certificate_der: bytes


class OcallHandler:
    """The host's untrusted services for one enclave.

    Files are confined to `storage_dir`, and sockets may connect only to
    `allowed_hosts`. The enclave must treat every OCALL result as untrusted.
    """

    def __init__(self, storage_dir: str | os.PathLike[str] | None,
                 allowed_hosts: tuple[str, ...]) -> None:
        self.storage_dir = Path(storage_dir).resolve() if storage_dir is not None else None
        self.allowed_hosts = allowed_hosts
        # Binary streams for guest output by fd (1, 2) and for guest input, set
        # during a streamed run_wasi.
        self.output_streams: dict[int, Any] = {}
        self.input_stream: Any = None
        # Set by Enclave.interrupt, so that a stdin_read waiting for input returns EINTR.
        self.interrupted = threading.Event()
        self._sockets: dict[int, socket.socket] = {}
        self._next_socket = 1

    def handle(self, op: str, args: dict[str, Any]) -> Any:
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise EnclaveError(f"unknown OCALL {op!r}")
        return handler(args)

    def close(self) -> None:
        for connection in self._sockets.values():
            connection.close()
        self._sockets.clear()

    def _op_time(self, args: dict[str, Any]) -> float:
        return time.time()

    def _op_stdin_read(self, args: dict[str, Any]) -> bytes | int:
        """Read up to `size` bytes of guest input; return them (b"" at the end) or an errno."""
        size = args.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_RECV_SIZE:
            raise EnclaveError(f"invalid stdin read size {size!r} (1..{MAX_RECV_SIZE})")
        stream = self.input_stream
        if stream is None:
            return b""
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        try:
            if fd is None:
                return stream.read(size) or b""
            # Wait in short steps, so that an interrupt ends a read that waits for a terminal.
            while not select.select([fd], [], [], 0.1)[0]:
                if self.interrupted.is_set():
                    return errno.EINTR
            return os.read(fd, size)
        except OSError as exc:
            log.info("cannot read guest input: %s", exc)
            return exc.errno or errno.EIO

    def _op_output_write(self, args: dict[str, Any]) -> int:
        """Write guest output to the stream for fd 1 or 2; return 0 or the errno of the failure."""
        fd, data = args.get("fd"), args.get("data")
        stream = self.output_streams.get(fd) if isinstance(fd, int) else None
        if stream is None:
            raise EnclaveError(f"no output stream for fd {fd!r}")
        if not isinstance(data, bytes):
            raise EnclaveError("output_write data must be bytes")
        try:
            stream.write(data)
            stream.flush()
        except OSError as exc:
            log.info("cannot write guest output to fd %d: %s", fd, exc)
            return exc.errno or errno.EIO
        return 0

    def _path(self, args: dict[str, Any]) -> Path:
        if self.storage_dir is None:
            raise EnclaveError("no host storage directory is configured for file OCALLs")
        name = args.get("path")
        if not isinstance(name, str) or not name or "\x00" in name:
            raise EnclaveError(f"invalid storage path {name!r}")
        path = (self.storage_dir / name).resolve()
        if self.storage_dir not in path.parents:
            raise EnclaveError(f"storage path {name!r} is outside the storage directory")
        return path

    def _op_file_read(self, args: dict[str, Any]) -> bytes:
        try:
            return self._path(args).read_bytes()
        except OSError as exc:
            raise EnclaveError(f"cannot read {args.get('path')!r}: {exc.strerror}") from None

    def _op_file_write(self, args: dict[str, Any]) -> None:
        data = args.get("data")
        if not isinstance(data, bytes):
            raise EnclaveError("file_write data must be bytes")
        path = self._path(args)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except OSError as exc:
            raise EnclaveError(f"cannot write {args.get('path')!r}: {exc.strerror}") from None

    def _op_file_delete(self, args: dict[str, Any]) -> None:
        try:
            self._path(args).unlink()
        except OSError as exc:
            raise EnclaveError(f"cannot delete {args.get('path')!r}: {exc.strerror}") from None

    def _op_socket_connect(self, args: dict[str, Any]) -> int:
        host, port = args.get("host"), args.get("port")
        if host not in self.allowed_hosts:
            raise EnclaveError(f"connections to {host!r} are not allowed")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise EnclaveError(f"invalid port {port!r}")
        if len(self._sockets) >= MAX_OPEN_SOCKETS:
            raise EnclaveError(f"too many open sockets (max {MAX_OPEN_SOCKETS})")
        try:
            connection = socket.create_connection((host, port), timeout=DEFAULT_TIMEOUT)
        except OSError as exc:
            raise EnclaveError(f"cannot connect to {host}:{port}: {exc}") from None
        handle = self._next_socket
        self._next_socket += 1
        self._sockets[handle] = connection
        return handle

    def _socket(self, args: dict[str, Any]) -> socket.socket:
        connection = self._sockets.get(args.get("handle"))  # type: ignore[arg-type]
        if connection is None:
            raise EnclaveError(f"unknown socket handle {args.get('handle')!r}")
        return connection

    def _op_socket_send(self, args: dict[str, Any]) -> int:
        data = args.get("data")
        if not isinstance(data, bytes):
            raise EnclaveError("socket_send data must be bytes")
        try:
            self._socket(args).sendall(data)
        except OSError as exc:
            raise EnclaveError(f"socket send failed: {exc}") from None
        return len(data)

    def _op_socket_recv(self, args: dict[str, Any]) -> bytes:
        size = args.get("size")
        if not isinstance(size, int) or not 0 < size <= MAX_RECV_SIZE:
            raise EnclaveError(f"invalid receive size {size!r} (1..{MAX_RECV_SIZE})")
        try:
            return self._socket(args).recv(size)
        except OSError as exc:
            raise EnclaveError(f"socket receive failed: {exc}") from None

    def _op_socket_close(self, args: dict[str, Any]) -> None:
        self._socket(args).close()
        del self._sockets[args["handle"]]


class Enclave:
    """An enclave process and the ECALLs it offers.

    Raises EnclaveError if the process cannot start or dies,
    EnclaveCallError (with the enclave-side `kind`) for failed operations,
    SealingError and RollbackError for failed unsealing, and ProtocolError
    if the enclave breaks the protocol.
    """

    def __init__(
        self,
        backend: str = "sim",
        state_dir: str | os.PathLike[str] | None = None,
        config: EnclaveConfig | None = None,
        storage_dir: str | os.PathLike[str] | None = None,
        allowed_hosts: tuple[str, ...] = ("127.0.0.1",),
        timeout: float = DEFAULT_TIMEOUT,
        attestation_dir: str | os.PathLike[str] | None = None,
        command: list[str] | None = None,
        stdio: bool | None = None,
    ) -> None:
        """Start an enclave process.

        `command` replaces the default child command. With `stdio` the
        protocol runs over the child's stdin and stdout and `command` is used
        as is; otherwise two pipe descriptors are appended to it. The gramine
        backend defaults to `gramine-sgx wasmtee-enclave` over stdio, so the
        enclave needs no descriptors beyond the standard ones.
        """
        # NOTE: the gramine command has run only against an emulated
        # /dev/attestation, never under gramine-sgx on SGX hardware.
        if backend == "gramine" and command is None:
            command = list(GRAMINE_COMMAND)
            stdio = True if stdio is None else stdio
        self.backend = backend
        self.timeout = timeout
        # One ECALL at a time: the protocol has no multiplexing.
        self._lock = threading.Lock()
        self._seq = 0
        self._closed = False
        self._ocalls = OcallHandler(storage_dir, allowed_hosts)
        config = config or EnclaveConfig()
        # The enclave rejects a larger ECALL message and then closes the channel.
        self.max_message_size = config.max_message_size
        self._process, self._channel = self._start(command, bool(stdio))
        create_args: dict[str, Any] = {
            "backend": backend,
            "config": config.to_dict(),
        }
        if state_dir is not None:
            create_args["state_dir"] = str(state_dir)
        if attestation_dir is not None:
            create_args["attestation_dir"] = str(attestation_dir)
        try:
            self.identity: dict[str, Any] = self._ecall("create", create_args)
        except BaseException:
            self._kill()
            raise
        log.info("enclave process %d created, MRENCLAVE %s", self._process.pid,
                 self.identity["mr_enclave"].hex())

    def _start(self, command: list[str] | None,
               stdio: bool) -> tuple[subprocess.Popen[bytes], Channel]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")])
        )
        default = [sys.executable, "-m", "wasmtee.tee.enclave_main"]
        if stdio:
            argv = command or default + ["0", "1"]
            process = self._spawn(argv, env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert process.stdin is not None and process.stdout is not None
            stdin, stdout = process.stdin, process.stdout

            def close_pipes() -> None:
                stdin.close()
                stdout.close()

            return process, Channel(stdout.fileno(), stdin.fileno(), on_close=close_pipes,
                                    max_message_size=HOST_MAX_MESSAGE_SIZE)
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        argv = (command or default) + [str(to_child_read), str(from_child_write)]
        try:
            process = self._spawn(argv, env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  pass_fds=(to_child_read, from_child_write))
        except EnclaveError:
            for fd in (to_child_write, from_child_read):
                os.close(fd)
            raise
        finally:
            os.close(to_child_read)
            os.close(from_child_write)
        return process, Channel(from_child_read, to_child_write,
                                max_message_size=HOST_MAX_MESSAGE_SIZE)

    @staticmethod
    def _spawn(argv: list[str], env: dict[str, str], **options: Any) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(argv, env=env, **options)
        except OSError as exc:
            raise EnclaveError(f"cannot start the enclave process {argv[0]!r}: {exc}") from None

    # -- ECALLs ----------------------------------------------------------------

    def load_module(self, module_bytes: bytes) -> LoadedModule:
        """Load and compile a module inside the enclave; it is measured into evidence."""
        result = self._ecall("load_module", {"module": bytes(module_bytes)})
        return LoadedModule(result["handle"], result["sha256"])

    def instantiate(self, module: LoadedModule) -> bytes:
        """Instantiate a loaded module; return the instance's opaque handle."""
        return self._ecall("instantiate", {"module": module.handle})["handle"]

    def call(self, instance: bytes, export: str, *args: int | float) -> list[Any]:
        """Call an exported function of an instance and return its results."""
        return self._ecall("call", {"instance": instance, "export": export, "args": list(args)},
                           timeout=None)

    def run_wasi(self, module: LoadedModule, args: list[str] | None = None,
                 env: dict[str, str] | None = None, stdin: Any = b"",
                 protected_dir: str | None = None,
                 protected_store: str = "default",
                 timeout: float | None = None,
                 stdout: Any = None, stderr: Any = None) -> WasiResult:
        """Run a WASI command module's `_start` inside the enclave.

        With `protected_dir` (a guest path such as "/data"), the guest gets a
        directory of protected files stored encrypted under the host storage
        directory, in the store named `protected_store`. With `timeout`
        (seconds, at most 3600), the guest traps when it runs longer.
        `stdin` is bytes, or a binary stream that the guest reads while it
        runs, through OCALLs and with no size limit.
        With `stdout` and `stderr` (binary streams, both or neither), the
        guest's output is written to them while it runs, in batches, with no
        size limit, and the result's stdout and stderr are empty.
        """
        if (stdout is None) != (stderr is None):
            raise UsageError("run_wasi needs both stdout and stderr streams, or neither")
        streamed_stdin = not isinstance(stdin, (bytes, bytearray, memoryview))
        request: dict[str, Any] = {"module": module.handle, "args": args or [],
                                   "env": env or {},
                                   "stdin": b"" if streamed_stdin else bytes(stdin)}
        if stdout is not None:
            request["stream_output"] = True
        if streamed_stdin:
            request["stream_stdin"] = True
        if timeout is not None:
            request["timeout"] = float(timeout)
        if protected_dir is not None:
            request["protected_dir"] = protected_dir
            request["protected_store"] = protected_store
        self._ocalls.output_streams = {} if stdout is None else {1: stdout, 2: stderr}
        self._ocalls.input_stream = stdin if streamed_stdin else None
        self._ocalls.interrupted.clear()
        try:
            result = self._ecall("run_wasi", request, timeout=None)
        finally:
            self._ocalls.output_streams = {}
            self._ocalls.input_stream = None
        return WasiResult(result["exit_code"], result["stdout"], result["stderr"],
                          result.get("stdout_dropped", 0), result.get("stderr_dropped", 0))

    def ratls_listen(self, host: str = "127.0.0.1", port: int = 0,
                     store: str = "ratls") -> RatlsEndpoint:
        """Make the enclave process listen for RA-TLS job clients on `host`:`port`.

        Port 0 picks a free port. The enclave generates a fresh TLS key and
        an RA-TLS certificate for it. TLS ends inside the enclave process,
        so the host can read only ciphertext on that socket. Job results live in
        the protected-file store named `store` under the storage directory.
        """
        result = self._ecall("ratls_listen", {"host": host, "port": port, "store": store})
        return RatlsEndpoint(result["host"], result["port"], result["certificate"])

    def ratls_serve(self, timeout: float = 30.0, job_timeout: float = 60.0) -> dict[str, Any]:
        """Serve one RA-TLS job client (see wasmtee.tee.ratls_service).

        Returns the outcome the host may see: the peer address, whether the
        job was served and, if not, the failed step ("handshake", "request"
        or "response"). Raises EnclaveCallError when no client connects
        within `timeout` seconds. The job traps after `job_timeout` seconds.
        """
        return self._ecall("ratls_serve", {"timeout": float(timeout),
                                           "job_timeout": float(job_timeout)}, timeout=None)

    def get_quote(self, report_data: bytes = b"") -> bytes:
        """Return a raw quote whose REPORTDATA is `report_data` (at most 64 bytes)."""
        return self._ecall("get_quote", {"report_data": bytes(report_data)})

    def get_evidence(self, report_data: bytes = b"", nonce: bytes | None = None) -> bytes:
        """Return CBOR `[quote, claims]` evidence binding the loaded modules' hashes."""
        args: dict[str, Any] = {"report_data": bytes(report_data)}
        if nonce is not None:
            args["nonce"] = bytes(nonce)
        return self._ecall("get_evidence", args)

    def seal(self, data: bytes, policy: str = "mrenclave", label: bytes = b"") -> bytes:
        """Seal `data` inside the enclave under the 'mrenclave' or 'mrsigner' policy."""
        return self._ecall("seal", {"data": bytes(data), "policy": policy, "label": bytes(label)})

    def unseal(self, blob: bytes, label: bytes = b"") -> bytes:
        """Unseal a blob inside the enclave and return its plaintext to the caller."""
        return self._ecall("unseal", {"blob": bytes(blob), "label": bytes(label)})

    def interrupt(self) -> None:
        """Make the guest code of the running ECALL trap with INTERRUPTED; safe from any thread.

        Sends SIGINT to the enclave process, which interrupts its running
        guest and ignores the signal otherwise. The ECALL then fails with an
        EnclaveCallError of kind "Trap".
        """
        # NOTE: under gramine-sgx the signal reaches the enclave only if Gramine
        # forwards it, which has not been tested; `kill` always works.
        self._ocalls.interrupted.set()
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)

    def kill(self) -> None:
        """Kill the enclave process at once; safe from any thread.

        An ECALL that runs then fails with EnclaveError.
        """
        if self._process.poll() is None:
            self._process.kill()

    def destroy(self) -> None:
        """Destroy the enclave and wait for its process to exit."""
        if self._closed:
            return
        try:
            self._ecall("destroy", {})
        except EnclaveError as exc:
            log.warning("destroying enclave process %d failed: %s", self._process.pid, exc)
        finally:
            self._shutdown()

    close = destroy

    def __enter__(self) -> Enclave:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    # -- protocol --------------------------------------------------------------

    def _ecall(self, op: str, args: dict[str, Any], timeout: float | None = -1.0) -> Any:
        with self._lock:
            return self._ecall_locked(op, args, timeout)

    def _ecall_locked(self, op: str, args: dict[str, Any], timeout: float | None) -> Any:
        if self._closed:
            raise EnclaveError("the enclave is destroyed")
        if timeout == -1.0:
            timeout = self.timeout
        frame = encode_message({"v": PROTOCOL_VERSION, "seq": self._seq + 1, "type": "ecall",
                                "op": op, "args": args})
        payload_size = len(frame) - LENGTH.size
        if payload_size > self.max_message_size:
            raise MessageTooLargeError(op, payload_size, self.max_message_size)
        self._seq += 1
        seq = self._seq
        try:
            self._channel.send_frame(frame)
            return self._await_result(op, seq, timeout)
        except TimeoutError:
            self._kill()
            raise EnclaveError(f"ECALL {op!r} timed out after {timeout} s; "
                               "the enclave process was killed") from None
        except (BrokenPipeError, EnclaveError) as exc:
            if isinstance(exc, (EnclaveCallError, ProtocolError)):
                raise
            # The pipe can report EOF just before the exit status is ready.
            try:
                status = self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                raise exc from None
            self._kill()
            raise EnclaveError(f"the enclave process exited with status {status} "
                               f"during ECALL {op!r}") from None

    def _await_result(self, op: str, seq: int, timeout: float | None) -> Any:
        while True:
            message = decode_message(self._channel.receive_payload(timeout))
            if message["type"] == "ocall":
                self._serve_ocall(message)
                continue
            if message["type"] != "result" or message["seq"] != seq:
                raise ProtocolError(f"expected the result of ECALL {seq} ({op!r}), got a "
                                    f"{message['type']!r} message with sequence number "
                                    f"{message['seq']}")
            if message["ok"]:
                return message.get("value")
            error = message["error"]
            error_class = _ERROR_CLASSES.get(error["kind"])
            if error_class is not None:
                raise error_class(error["message"])
            raise EnclaveCallError(error["kind"], error["message"])

    def _serve_ocall(self, message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"v": PROTOCOL_VERSION, "seq": message["seq"],
                                 "type": "ocall-result"}
        try:
            reply["value"] = self._ocalls.handle(message["op"], message["args"])
            reply["ok"] = True
        except EnclaveError as exc:
            log.info("OCALL %r from enclave process %d failed: %s", message["op"],
                     self._process.pid, exc)
            reply["ok"] = False
            reply["error"] = {"kind": "EnclaveError", "message": str(exc)}
        self._channel.send(reply)

    def _shutdown(self) -> None:
        self._closed = True
        self._ocalls.close()
        self._channel.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if not self._closed:
            self._closed = True
            self._ocalls.close()
            self._channel.close()
