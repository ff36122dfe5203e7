"""The enclave side of the ECALL protocol: validate each message, then act on it.

Everything in a message is untrusted. `EnclaveService.handle_payload` never
raises: a malformed, replayed or reordered message, or an operation that
fails, becomes an error result, and no result carries key material.
Modules and instances are named by random 16-byte handles, never by
addresses or indexes the host could guess.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from wasmtee.errors import WasmteeError
from wasmtee.tee.attester import Attester
from wasmtee.tee.errors import EnclaveError, ProtocolError
from wasmtee.tee.evidence import (
    CLAIM_ISSUED_AT,
    CLAIM_MODULES,
    CLAIM_NONCE,
    CLAIM_USER_DATA,
)
from wasmtee.tee.measure import (
    EnclaveConfig,
    EnclaveIdentity,
    enclave_attributes,
    measure_module,
    measure_runtime,
)
from wasmtee.tee.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ERROR_KINDS,
    PROTOCOL_VERSION,
    decode_message,
)
from wasmtee.tee.guest_api import GuestAttestation
from wasmtee.tee.sealing import Sealer, SealPolicy
from wasmtee.tee.verify import Policy
from wasmtee.tee import wasm_host

log = logging.getLogger(__name__)

HANDLE_SIZE = 16
MAX_MODULES = 256
MAX_INSTANCES = 1024
MAX_CALL_ARGS = 1000
MAX_WASI_ARGS = 4096
# The minimum and maximum size that one stdin_read OCALL requests.
STDIN_READ_AHEAD = 64 * 1024
MAX_STDIN_READ = 1024 * 1024

OcallFunction = Callable[[str, dict[str, Any]], Any]


@dataclass
class LoadedModule:
    sha256: bytes
    compiled: Any


class EnclaveService:
    """One enclave's state and its ECALL handlers.

    `ocall(op, args)` sends an OCALL to the host and returns its value;
    it raises EnclaveError or ProtocolError when the host fails or lies.
    """

    def __init__(self, ocall: OcallFunction) -> None:
        self._ocall = ocall
        self._expected_seq = 1
        self.destroyed = False
        self.max_message_size = DEFAULT_MAX_MESSAGE_SIZE
        self._identity: EnclaveIdentity | None = None
        self._attester: Attester | None = None
        self._sealer: Sealer | None = None
        self._platform: Any = None
        self._config = EnclaveConfig()
        self._runtime: wasm_host.WasmRuntime | None = None
        self._modules: dict[bytes, LoadedModule] = {}
        self._instances: dict[bytes, Any] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "create": self._create,
            "get_identity": self._get_identity,
            "load_module": self._load_module,
            "instantiate": self._instantiate,
            "call": self._call,
            "run_wasi": self._run_wasi,
            "get_quote": self._get_quote,
            "get_evidence": self._get_evidence,
            "seal": self._seal,
            "unseal": self._unseal,
            "destroy": self._destroy,
            "ratls_listen": self._ratls_listen,
            "ratls_serve": self._ratls_serve,
        }
        self._ratls_server: Any = None
        self._ratls_store = "ratls"

    # -- envelope ------------------------------------------------------------

    def handle_payload(self, payload: bytes) -> dict[str, Any]:
        """Act on one ECALL payload and return the result message."""
        try:
            message = decode_message(payload)
            if message["type"] != "ecall":
                raise ProtocolError(f"expected an ecall message, got {message['type']!r}")
            if message["seq"] != self._expected_seq:
                raise ProtocolError(
                    f"sequence number {message['seq']} was replayed or reordered "
                    f"(expected {self._expected_seq})"
                )
        except ProtocolError as exc:
            log.warning("rejected ECALL message: %s", exc)
            return self._error_result(self._expected_seq, exc)
        seq = self._expected_seq
        self._expected_seq += 1
        try:
            value = self._dispatch(message["op"], message["args"])
        except WasmteeError as exc:
            return self._error_result(seq, exc)
        except (TypeError, ValueError, OverflowError) as exc:
            # Misuse errors from the layers below name the bad value, never a key.
            return self._error_result(seq, EnclaveError(f"invalid arguments: {exc}"))
        except Exception:
            log.exception("internal error in ECALL %r", message["op"])
            return {"v": PROTOCOL_VERSION, "seq": seq, "type": "result", "ok": False,
                    "error": {"kind": "InternalError",
                              "message": "internal error in the enclave"}}
        return {"v": PROTOCOL_VERSION, "seq": seq, "type": "result", "ok": True, "value": value}

    @staticmethod
    def _error_result(seq: int, exc: WasmteeError) -> dict[str, Any]:
        kind = type(exc).__name__
        if kind not in ERROR_KINDS:
            kind = "EnclaveError"
        return {"v": PROTOCOL_VERSION, "seq": seq, "type": "result", "ok": False,
                "error": {"kind": kind, "message": str(exc)}}

    def _dispatch(self, op: str, args: dict[str, Any]) -> Any:
        handler = self._handlers.get(op)
        if handler is None:
            raise ProtocolError(f"unknown ECALL {op!r}")
        if self.destroyed:
            raise EnclaveError("the enclave was destroyed")
        if op != "create" and self._identity is None:
            raise EnclaveError(f"ECALL {op!r} before 'create'")
        return handler(args)

    def interrupt(self) -> None:
        """Make the guest code that an ECALL runs now trap with INTERRUPTED; safe from any thread."""
        runtime = self._runtime
        if runtime is None or not runtime.interrupt():
            log.info("interrupt request while no guest code runs; ignored")
            return
        log.info("interrupted the running guest code")

    # -- lifecycle -----------------------------------------------------------

    def _create(self, args: dict[str, Any]) -> dict[str, Any]:
        _check_keys("create", args, {"backend", "config", "state_dir", "attestation_dir"})
        if self._identity is not None:
            raise EnclaveError("the enclave was already created")
        backend = _get(args, "backend", str)
        config = EnclaveConfig.from_dict(_get(args, "config", dict))
        platform = self._open_platform(backend, args)
        mr_enclave = measure_runtime(config)
        identity = EnclaveIdentity(
            mr_enclave=mr_enclave,
            mr_signer=platform.mr_signer,
            isv_prod_id=config.isv_prod_id,
            isv_svn=config.isv_svn,
            attributes_flags=enclave_attributes(config),
        )
        identity = platform.bind_identity(identity)
        self._identity = identity
        self._platform = platform
        self._config = config
        self.max_message_size = config.max_message_size
        self._attester = Attester(platform, identity, clock=self._host_time)
        self._sealer = Sealer(platform, identity)
        log.info("enclave created on the %s backend, MRENCLAVE %s", backend,
                 identity.mr_enclave.hex())
        return self._get_identity({})

    @staticmethod
    def _open_platform(backend: str, args: dict[str, Any]) -> Any:
        if backend == "sim":
            from wasmtee.tee.sim import SimPlatform

            state_dir = _get(args, "state_dir", str, optional=True)
            return SimPlatform(state_dir)
        if backend == "gramine":
            from wasmtee.tee.gramine import GraminePlatform

            directory = _get(args, "attestation_dir", str, optional=True)
            state_dir = _get(args, "state_dir", str, optional=True)
            return GraminePlatform(directory or "/dev/attestation", state_dir)
        raise EnclaveError(f"unknown backend {backend!r}; expected 'sim' or 'gramine'")

    def _get_identity(self, args: dict[str, Any]) -> dict[str, Any]:
        _check_keys("get_identity", args, set())
        identity = self._identity
        assert identity is not None  # _dispatch checked it
        return {"mr_enclave": identity.mr_enclave, "mr_signer": identity.mr_signer,
                "isv_prod_id": identity.isv_prod_id, "isv_svn": identity.isv_svn,
                "debug": identity.debug}

    def _destroy(self, args: dict[str, Any]) -> None:
        _check_keys("destroy", args, set())
        self._modules.clear()
        self._instances.clear()
        if self._ratls_server is not None:
            self._ratls_server.close()
            self._ratls_server = None
        self.destroyed = True
        log.info("enclave destroyed")

    # -- modules -------------------------------------------------------------

    def _wasm(self) -> wasm_host.WasmRuntime:
        if self._runtime is None:
            self._runtime = wasm_host.WasmRuntime(self._config.tier)
        return self._runtime

    def _load_module(self, args: dict[str, Any]) -> dict[str, Any]:
        _check_keys("load_module", args, {"module"})
        module_bytes = _get(args, "module", bytes)
        if len(self._modules) >= MAX_MODULES:
            raise EnclaveError(f"too many loaded modules (max {MAX_MODULES})")
        compiled = self._wasm().compile(module_bytes)
        handle = os.urandom(HANDLE_SIZE)
        self._modules[handle] = LoadedModule(measure_module(module_bytes), compiled)
        return {"handle": handle, "sha256": self._modules[handle].sha256}

    def _instantiate(self, args: dict[str, Any]) -> dict[str, Any]:
        _check_keys("instantiate", args, {"module"})
        module = self._module(args)
        if len(self._instances) >= MAX_INSTANCES:
            raise EnclaveError(f"too many instances (max {MAX_INSTANCES})")
        instance = self._wasm().instantiate(module.compiled, self._guest_attestation(module))
        handle = os.urandom(HANDLE_SIZE)
        self._instances[handle] = instance
        return {"handle": handle}

    def _guest_attestation(self, module: LoadedModule) -> GuestAttestation:
        assert self._attester is not None and self._platform is not None
        platform = self._platform
        roots = [platform.root_certificate] if platform.simulated else []

        def policy(mr_enclave: bytes, mr_signer: bytes) -> Policy:
            # A simulated enclave can only talk to simulated (debug) peers.
            return Policy(mr_enclave=mr_enclave, allow_simulation=platform.simulated,
                          allow_debug=platform.simulated)

        return GuestAttestation(self._attester, module.sha256, roots, policy)

    def _call(self, args: dict[str, Any]) -> list[Any]:
        _check_keys("call", args, {"instance", "export", "args"})
        handle = _get(args, "instance", bytes)
        instance = self._instances.get(handle)
        if instance is None:
            raise EnclaveError("unknown instance handle")
        export = _get(args, "export", str)
        values = _get(args, "args", list)
        if len(values) > MAX_CALL_ARGS:
            raise EnclaveError(f"too many call arguments ({len(values)}, max {MAX_CALL_ARGS})")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise EnclaveError(f"call arguments must be numbers, not {value!r}")
        return self._wasm().call(instance, export, values)

    def _run_wasi(self, args: dict[str, Any]) -> dict[str, Any]:
        from wasmtee.tee.ratls_service import check_timeout

        _check_keys("run_wasi", args, {"module", "args", "env", "stdin", "protected_dir",
                                       "protected_store", "timeout", "stream_output",
                                       "stream_stdin"})
        timeout = None
        if args.get("timeout") is not None:
            timeout = check_timeout(args["timeout"])
        module = self._module(args)
        argv = _get(args, "args", list, optional=True) or []
        env = _get(args, "env", dict, optional=True) or {}
        stdin = _get(args, "stdin", bytes, optional=True) or b""
        if len(argv) > MAX_WASI_ARGS or len(env) > MAX_WASI_ARGS:
            raise EnclaveError(f"too many WASI arguments or variables (max {MAX_WASI_ARGS})")
        if not all(isinstance(item, str) for item in argv):
            raise EnclaveError("WASI arguments must be strings")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise EnclaveError("WASI environment names and values must be strings")
        preopens = []
        protected_dir = _get(args, "protected_dir", str, optional=True)
        if protected_dir is not None:
            store_name = _get(args, "protected_store", str, optional=True) or "default"
            preopens.append((protected_dir, self._protected_directory(store_name)))
        output_sink = None
        if _get(args, "stream_output", bool, optional=True):
            output_sink = self._send_output
        if _get(args, "stream_stdin", bool, optional=True):
            if stdin:
                raise ProtocolError("run_wasi with stream_stdin must not carry stdin bytes")
            stdin = OcallStdin(self._ocall)
        exit_code, stdout, stderr = self._wasm().run_wasi(
            module.compiled, argv, env, stdin, self._guest_attestation(module), preopens,
            timeout, output_sink)
        return {"exit_code": exit_code, "stdout": stdout.getvalue(),
                "stderr": stderr.getvalue(), "stdout_dropped": stdout.dropped,
                "stderr_dropped": stderr.dropped}

    def _send_output(self, fd: int, data: bytes) -> None:
        """Send guest output to the host's standard output (fd 1) or error (fd 2).

        Raises OSError with the host's errno when the host cannot write it.
        """
        status = self._ocall("output_write", {"fd": fd, "data": data})
        if status == 0:
            return
        if isinstance(status, bool) or not isinstance(status, int) or not 0 < status < 4096:
            raise ProtocolError(f"host returned an invalid output_write status {status!r}")
        raise OSError(status, os.strerror(status))

    def _protected_directory(self, store_name: str) -> Any:
        from wasmtee.tee.protected_files import OcallStorage, ProtectedFileStore
        from wasmtee.tee.protected_fs import ProtectedDirectory

        if not store_name.isidentifier():
            raise EnclaveError(f"protected store name must be an identifier, not {store_name!r}")
        assert self._sealer is not None
        storage = OcallStorage(self._ocall, prefix=f"protected/{store_name}/")
        return ProtectedDirectory(ProtectedFileStore(self._sealer, storage, store_name))

    def _module(self, args: dict[str, Any]) -> LoadedModule:
        module = self._modules.get(_get(args, "module", bytes))
        if module is None:
            raise EnclaveError("unknown module handle")
        return module

    # -- attested job channel ----------------------------------------------------

    def _ratls_listen(self, args: dict[str, Any]) -> dict[str, Any]:
        from wasmtee.tee.ratls_service import AttestedServer

        _check_keys("ratls_listen", args, {"host", "port", "store"})
        host = _get(args, "host", str, optional=True) or "127.0.0.1"
        port = _get(args, "port", int, optional=True) or 0
        store_name = _get(args, "store", str, optional=True) or "ratls"
        if not 0 <= port <= 65535:
            raise EnclaveError(f"port {port} is out of range 0..65535")
        if not store_name.isidentifier():
            raise EnclaveError(f"protected store name must be an identifier, not {store_name!r}")
        if self._ratls_server is not None:
            raise EnclaveError("the enclave already serves RA-TLS on port "
                               f"{self._ratls_server.port}")
        assert self._attester is not None  # _dispatch checked that 'create' ran
        self._ratls_server = AttestedServer(self._attester, host, port)
        self._ratls_store = store_name
        return {"host": host, "port": self._ratls_server.port,
                "certificate": self._ratls_server.identity.certificate.public_bytes(
                    serialization.Encoding.DER)}

    def _ratls_serve(self, args: dict[str, Any]) -> dict[str, Any]:
        from wasmtee.tee.ratls_service import check_timeout

        _check_keys("ratls_serve", args, {"timeout", "job_timeout"})
        timeout = check_timeout(args.get("timeout", 30.0))
        job_timeout = check_timeout(args.get("job_timeout", 60.0))
        if self._ratls_server is None:
            raise EnclaveError("call 'ratls_listen' before 'ratls_serve'")

        def run_job(module_bytes: bytes, stdin: bytes, argv: list[str]) -> dict[str, Any]:
            return self._run_ratls_job(module_bytes, stdin, argv, job_timeout)

        return self._ratls_server.serve_one(timeout, run_job)

    def _run_ratls_job(self, module_bytes: bytes, stdin: bytes, argv: list[str],
                       timeout: float) -> dict[str, Any]:
        """Run one job from an attested client with a protected result directory."""
        from wasmtee.tee.ratls_service import RESULT_DIR, RESULT_FILE

        module = LoadedModule(measure_module(module_bytes), self._wasm().compile(module_bytes))
        directory = self._protected_directory(self._ratls_store)
        # A result left by an earlier job must not pass as this job's result.
        if directory.store.exists(RESULT_FILE):
            directory.store.delete(RESULT_FILE)
            directory = self._protected_directory(self._ratls_store)
        # TODO: a job has no fuel or memory limit, only the wall-clock `timeout`.
        exit_code, stdout_output, stderr_output = self._wasm().run_wasi(
            module.compiled, ["job", *argv], {}, stdin, self._guest_attestation(module),
            [(RESULT_DIR, directory)], timeout)
        stdout, stderr = stdout_output.getvalue(), stderr_output.getvalue()
        result = None
        if directory.store.exists(RESULT_FILE):
            result = directory.store.read(RESULT_FILE)
        return {"ok": True, "exit_code": exit_code, "result": result, "stdout": stdout,
                "stderr": stderr}

    # -- attestation and sealing ----------------------------------------------

    def _get_quote(self, args: dict[str, Any]) -> bytes:
        _check_keys("get_quote", args, {"report_data"})
        report_data = _get(args, "report_data", bytes)
        if len(report_data) > 64:
            raise EnclaveError(f"report data is {len(report_data)} bytes, max 64")
        assert self._attester is not None
        return self._attester.quote(report_data)

    def _get_evidence(self, args: dict[str, Any]) -> bytes:
        _check_keys("get_evidence", args, {"report_data", "nonce"})
        report_data = _get(args, "report_data", bytes)
        if len(report_data) > 64:
            raise EnclaveError(f"report data is {len(report_data)} bytes, max 64")
        claims: dict[str, Any] = {
            CLAIM_USER_DATA: report_data,
            CLAIM_MODULES: [module.sha256 for module in self._modules.values()],
            CLAIM_ISSUED_AT: int(self._host_time()),
        }
        nonce = _get(args, "nonce", bytes, optional=True)
        if nonce is not None:
            if len(nonce) > 64:
                raise EnclaveError(f"nonce is {len(nonce)} bytes, max 64")
            claims[CLAIM_NONCE] = nonce
        assert self._attester is not None
        return self._attester.evidence(claims)

    def _seal(self, args: dict[str, Any]) -> bytes:
        _check_keys("seal", args, {"data", "policy", "label"})
        data = _get(args, "data", bytes)
        policy = _seal_policy(_get(args, "policy", str, optional=True) or "mrenclave")
        label = _get(args, "label", bytes, optional=True) or b""
        assert self._sealer is not None
        return self._sealer.seal(data, policy, label)

    def _unseal(self, args: dict[str, Any]) -> bytes:
        _check_keys("unseal", args, {"blob", "label"})
        blob = _get(args, "blob", bytes)
        label = _get(args, "label", bytes, optional=True) or b""
        assert self._sealer is not None
        # TODO: unsealed data is returned to the host caller. Secrets that must
        # stay inside need the guest API, which does not exist yet.
        return self._sealer.unseal(blob, label)

    def _host_time(self) -> float:
        value = self._ocall("time", {})
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProtocolError(f"host returned an invalid time {value!r}")
        return float(value)


class OcallStdin:
    """Guest standard input read from the host's standard input through `stdin_read` OCALLs."""

    def __init__(self, ocall: OcallFunction) -> None:
        self._ocall = ocall
        # Bytes read ahead, so that small guest reads need fewer OCALLs.
        self._pending = b""

    def read(self, size: int) -> bytes:
        """Return up to `size` bytes, b"" at end of input.

        Raises WasiError with the host's errno when the host read failed
        or was interrupted, and ProtocolError for an invalid reply.
        """
        size = max(1, size)
        if not self._pending:
            self._pending = self._read_from_host(min(max(size, STDIN_READ_AHEAD), MAX_STDIN_READ))
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk

    def _read_from_host(self, size: int) -> bytes:
        value = self._ocall("stdin_read", {"size": size})
        if isinstance(value, bytes) and len(value) <= size:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 4096:
            from wasmtee.wasi.constants import WasiError, errno_from_os

            raise WasiError(errno_from_os(OSError(value, os.strerror(value))), "read stdin")
        raise ProtocolError(f"host returned an invalid stdin_read reply of type "
                            f"{type(value).__name__}")

    def isatty(self) -> bool:
        return False


def _seal_policy(name: str) -> SealPolicy:
    try:
        return SealPolicy[name.upper()]
    except KeyError:
        raise EnclaveError(f"unknown seal policy {name!r}; expected 'mrenclave' or 'mrsigner'") from None


def _check_keys(op: str, args: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(args) - allowed
    if unknown:
        raise ProtocolError(f"unknown arguments to {op!r}: {sorted(map(str, unknown))}")


def _get(args: dict[str, Any], name: str, kind: type, optional: bool = False) -> Any:
    value = args.get(name)
    if value is None:
        if optional:
            return None
        raise ProtocolError(f"missing argument {name!r}")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"argument {name!r} must be {kind.__name__}, not {type(value).__name__}")
    return value
