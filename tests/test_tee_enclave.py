"""The enclave process boundary: ECALLs, OCALLs and hostile messages."""

from __future__ import annotations

import os
import struct
import sys

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wasmtee.tee.enclave import Enclave, EnclaveCallError, OcallHandler
from wasmtee.tee.enclave_service import EnclaveService
from wasmtee.tee.errors import EnclaveError, ProtocolError, SealingError, VerificationError
from wasmtee.tee.measure import EnclaveConfig
from wasmtee.tee.protocol import PROTOCOL_VERSION, decode_message, encode_message
from wasmtee.tee.sim import SimPlatform
from wasmtee.tee.verify import Policy, verify_evidence, verify_quote


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim")


@pytest.fixture(scope="module")
def enclave(state_dir):
    with Enclave(backend="sim", state_dir=state_dir, timeout=20) as running:
        yield running


@pytest.fixture(scope="module")
def roots(state_dir):
    return [SimPlatform(state_dir).root_certificate]


def sim_policy(enclave, **changes):
    values = dict(mr_enclave=enclave.identity["mr_enclave"], allow_debug=True,
                  allow_simulation=True)
    values.update(changes)
    return Policy(**values)


def raw_exchange(enclave, message_bytes):
    """Send raw frame bytes to the enclave and decode its reply."""
    os.write(enclave._channel.write_fd, message_bytes)
    return decode_message(enclave._channel.receive_payload(timeout=10))


def ecall_frame(seq, op, args):
    return encode_message({"v": PROTOCOL_VERSION, "seq": seq, "type": "ecall", "op": op,
                           "args": args})


# -- ECALLs through a real process ------------------------------------------------

def test_identity_matches_measurement(enclave):
    from wasmtee.tee.measure import measure_runtime
    assert enclave.identity["mr_enclave"] == measure_runtime(EnclaveConfig())
    assert enclave.identity["debug"] is True
    assert enclave.identity["isv_svn"] == 0


def test_quote_from_enclave_verifies(enclave, roots):
    quote = enclave.get_quote(b"\x01\x02")
    claims = verify_quote(quote, sim_policy(enclave, report_data=b"\x01\x02"), roots)
    assert claims.simulated
    assert claims.report_data[:2] == b"\x01\x02"


def test_evidence_from_enclave_verifies(enclave, roots):
    evidence = enclave.get_evidence(b"user", nonce=b"fresh nonce")
    policy = sim_policy(enclave, nonce=b"fresh nonce", max_age=60)
    claims = verify_evidence(evidence, policy, roots)
    assert claims.evidence_claims["user-data"] == b"user"
    assert claims.evidence_claims["modules"] == []
    with pytest.raises(VerificationError) as info:
        verify_evidence(evidence, sim_policy(enclave, nonce=b"other"), roots)
    assert info.value.check == "nonce"


def test_seal_unseal_through_enclave(enclave):
    blob = enclave.seal(b"secret", "mrenclave", label=b"db")
    assert b"secret" not in blob
    assert enclave.unseal(blob, label=b"db") == b"secret"
    with pytest.raises(SealingError, match="failed authentication"):
        enclave.unseal(blob, label=b"other")
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(SealingError):
        enclave.unseal(bytes(tampered), label=b"db")


def test_sealed_blob_moves_between_enclaves(enclave, state_dir):
    by_enclave = enclave.seal(b"A", "mrenclave")
    by_signer = enclave.seal(b"B", "mrsigner")
    with Enclave(state_dir=state_dir, timeout=20) as same_build:
        assert same_build.unseal(by_enclave) == b"A"
    with Enclave(state_dir=state_dir, config=EnclaveConfig(isv_svn=1), timeout=20) as upgraded:
        assert upgraded.identity["mr_enclave"] != enclave.identity["mr_enclave"]
        assert upgraded.unseal(by_signer) == b"B"
        with pytest.raises(SealingError):
            upgraded.unseal(by_enclave)
        newer = upgraded.seal(b"C", "mrsigner")
    with pytest.raises(SealingError, match="above this enclave's ISVSVN 0"):
        enclave.unseal(newer)


def test_bad_ecall_arguments(enclave):
    with pytest.raises(EnclaveCallError, match="unknown seal policy"):
        enclave.seal(b"x", policy="mrnothing")
    with pytest.raises(EnclaveCallError, match="report data is 65 bytes, max 64"):
        enclave.get_quote(b"x" * 65)
    with pytest.raises(ProtocolError, match="unknown arguments"):
        enclave._ecall("get_quote", {"report_data": b"", "extra": 1})
    with pytest.raises(ProtocolError, match="argument 'data' must be bytes, not str"):
        enclave._ecall("seal", {"data": "text"})
    with pytest.raises(ProtocolError, match="unknown ECALL 'format_disk'"):
        enclave._ecall("format_disk", {})
    with pytest.raises(EnclaveCallError, match="unknown module handle"):
        enclave._ecall("instantiate", {"module": os.urandom(16)})
    with pytest.raises(EnclaveCallError, match="already created"):
        enclave._ecall("create", {"backend": "sim", "config": {}})
    # The enclave still works after every rejected call.
    assert len(enclave.get_quote(b"")) > 432


def test_replayed_and_reordered_messages(enclave):
    seq = enclave._seq
    replay = raw_exchange(enclave, ecall_frame(seq, "get_quote", {"report_data": b""}))
    assert replay["ok"] is False
    assert replay["error"]["kind"] == "ProtocolError"
    assert "replayed or reordered" in replay["error"]["message"]
    skipped = raw_exchange(enclave, ecall_frame(seq + 5, "get_quote", {"report_data": b""}))
    assert skipped["ok"] is False
    assert "expected %d" % (seq + 1) in skipped["error"]["message"]
    # Neither message advanced the sequence, so the next ECALL is accepted.
    assert len(enclave.get_quote(b"")) > 432


def test_malformed_frames_get_errors(enclave):
    for payload in [b"\xff", b"\xa0", cbor2.dumps([1, 2]), cbor2.dumps({"v": 2, "seq": 1}),
                    cbor2.dumps({"v": 1, "seq": 0, "type": "ecall"}),
                    cbor2.dumps({"v": 1, "seq": 1, "type": "ecall", "op": "x", "args": {}}) + b"x"]:
        reply = raw_exchange(enclave, struct.pack(">I", len(payload)) + payload)
        assert reply["ok"] is False
        assert reply["error"]["kind"] == "ProtocolError"
    assert len(enclave.get_quote(b"")) > 432


def test_oversized_frame_closes_enclave(state_dir):
    running = Enclave(state_dir=state_dir, timeout=20)
    reply = raw_exchange(running, struct.pack(">I", 2**31))
    assert reply["error"]["kind"] == "ProtocolError"
    assert "exceeds" in reply["error"]["message"]
    assert running._process.wait(timeout=10) == 2
    with pytest.raises(EnclaveError, match="exited with status 2"):
        running.get_quote(b"")


def test_enclave_that_hangs_times_out():
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(EnclaveError, match="timed out"):
        Enclave(command=command, timeout=0.5)


def test_enclave_that_dies_is_reported():
    command = [sys.executable, "-c", "import sys; sys.exit(7)"]
    with pytest.raises(EnclaveError, match="exited with status 7"):
        Enclave(command=command, timeout=10)


def test_destroy_is_final(state_dir):
    running = Enclave(state_dir=state_dir, timeout=20)
    running.destroy()
    assert running._process.returncode == 0
    with pytest.raises(EnclaveError, match="destroyed"):
        running.get_quote(b"")
    running.destroy()


# -- the enclave service in process ----------------------------------------------

def make_service(state_dir, ocall=None):
    service = EnclaveService(ocall or (lambda op, args: 1_700_000_000.0))
    reply = service.handle_payload(ecall_frame(1, "create", {
        "backend": "sim", "config": {}, "state_dir": str(state_dir)})[4:])
    assert reply["ok"], reply
    return service


def test_ecall_before_create_rejected():
    service = EnclaveService(lambda op, args: 0.0)
    reply = service.handle_payload(ecall_frame(1, "get_quote", {"report_data": b""})[4:])
    assert reply["ok"] is False
    assert "before 'create'" in reply["error"]["message"]


def test_lying_host_time_rejected(state_dir):
    service = make_service(state_dir, ocall=lambda op, args: float("nan"))
    reply = service.handle_payload(ecall_frame(2, "get_evidence", {"report_data": b""})[4:])
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "ProtocolError"
    assert "invalid time" in reply["error"]["message"]


def test_unknown_backend_rejected():
    service = EnclaveService(lambda op, args: 0.0)
    reply = service.handle_payload(ecall_frame(1, "create", {"backend": "tdx", "config": {}})[4:])
    assert reply["error"]["message"] == "unknown backend 'tdx'; expected 'sim' or 'gramine'"


ARGUMENT_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
    | st.binary(max_size=80) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
OPERATIONS = st.sampled_from(["create", "get_identity", "load_module", "instantiate", "call",
                              "run_wasi", "get_quote", "get_evidence", "seal", "unseal",
                              "destroy", "nope"])


@pytest.fixture(scope="module")
def fuzz_service(state_dir):
    return make_service(state_dir)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=200))
def test_fuzz_random_bytes(fuzz_service, state_dir, payload):
    check_reply(fuzz_service.handle_payload(payload), state_dir)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=OPERATIONS, args=st.dictionaries(
    st.sampled_from(["backend", "config", "module", "instance", "export", "args", "env",
                     "stdin", "report_data", "nonce", "data", "policy", "label", "blob",
                     "state_dir", "x"]), ARGUMENT_VALUES, max_size=5),
       seq_offset=st.sampled_from([0, 0, 0, -1, 1]))
def test_fuzz_structured_ecalls(fuzz_service, state_dir, op, args, seq_offset):
    if op == "destroy":
        op = "get_identity"  # keep the shared service alive
    seq = fuzz_service._expected_seq + seq_offset
    message = {"v": PROTOCOL_VERSION, "seq": max(seq, 1), "type": "ecall", "op": op, "args": args}
    check_reply(fuzz_service.handle_payload(cbor2.dumps(message)), state_dir)


def check_reply(reply, state_dir):
    decoded = decode_message(cbor2.dumps(reply))
    assert decoded["type"] == "result"
    root_key = (state_dir / "root_key.bin").read_bytes()
    encoded = cbor2.dumps(reply)
    assert root_key not in encoded
    assert root_key.hex().encode() not in encoded
    if not reply["ok"]:
        assert reply["error"]["kind"] != "InternalError", reply


# -- OCALL handler -------------------------------------------------------------

def test_ocall_files_confined(tmp_path):
    handler = OcallHandler(tmp_path / "store", ("127.0.0.1",))
    (tmp_path / "store").mkdir()
    handler.handle("file_write", {"path": "a/b.bin", "data": b"123"})
    assert handler.handle("file_read", {"path": "a/b.bin"}) == b"123"
    for bad in ["../escape", "/etc/passwd", "", "a/../../x", "x\x00y"]:
        with pytest.raises(EnclaveError):
            handler.handle("file_read", {"path": bad})
    handler.handle("file_delete", {"path": "a/b.bin"})
    with pytest.raises(EnclaveError, match="cannot read"):
        handler.handle("file_read", {"path": "a/b.bin"})


def test_ocall_sockets_limited_to_allowed_hosts(tmp_path):
    handler = OcallHandler(None, ("127.0.0.1",))
    with pytest.raises(EnclaveError, match="not allowed"):
        handler.handle("socket_connect", {"host": "10.0.0.1", "port": 80})
    with pytest.raises(EnclaveError, match="no host storage"):
        handler.handle("file_read", {"path": "x"})
    with pytest.raises(EnclaveError, match="unknown OCALL"):
        handler.handle("exec", {})


def test_concurrent_ecalls_are_serialized(enclave, roots):
    import threading

    errors = []
    quotes = []

    def worker(tag):
        try:
            for _ in range(20):
                quotes.append((tag, enclave.get_quote(tag)))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(bytes([i]),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(quotes) == 80
    for tag, quote in quotes:
        assert quote[368:369] == tag


def test_unencodable_result_does_not_end_enclave(monkeypatch, state_dir):
    import threading

    from wasmtee.tee import enclave_main
    from wasmtee.tee.protocol import Channel

    class OddService(EnclaveService):
        def handle_payload(self, payload):
            reply = super().handle_payload(payload)
            if reply.get("ok") and reply.get("value") is None:
                reply["value"] = object()  # what CBOR cannot encode
            return reply

    monkeypatch.setattr(enclave_main, "EnclaveService", OddService)
    to_enclave_read, to_enclave_write = os.pipe()
    from_enclave_read, from_enclave_write = os.pipe()
    thread = threading.Thread(
        target=enclave_main.serve, args=(Channel(to_enclave_read, from_enclave_write),),
        daemon=True)
    thread.start()
    host = Channel(from_enclave_read, to_enclave_write)
    os.write(to_enclave_write, ecall_frame(1, "create", {
        "backend": "sim", "config": {}, "state_dir": str(state_dir)}))
    assert decode_message(host.receive_payload(timeout=10))["ok"] is True
    os.write(to_enclave_write, ecall_frame(2, "destroy", {}))
    reply = decode_message(host.receive_payload(timeout=10))
    thread.join(10)
    assert reply["ok"] is False
    assert reply["error"]["message"] == "the result cannot be encoded"
    assert not thread.is_alive()
    host.close()
    for fd in (to_enclave_read, from_enclave_write):
        os.close(fd)
