"""Wasm modules inside the enclave: loading, calls, traps and the guest attestation imports."""

from __future__ import annotations

import hashlib

import pytest
import wasmtime  # reference tool only: compiles the test modules from WAT

from wasmtee.tee.enclave import Enclave, EnclaveCallError
from wasmtee.tee.errors import RollbackError
from wasmtee.tee.guest_api import guest_user_data
from wasmtee.tee.measure import EnclaveConfig
from wasmtee.tee.sim import SimPlatform
from wasmtee.tee.verify import Policy, verify_evidence

TIERS = ["python", "llvm"]

GUEST_WAT = """
(module
  (import "wasmtee_attest" "collect_evidence" (func $collect (param i32 i32 i32 i32) (result i32)))
  (import "wasmtee_attest" "verify_evidence" (func $verify (param i32 i32 i32) (result i32)))
  (import "wasmtee_attest" "evidence_field" (func $field (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "hello")
  (func (export "add") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    i32.add)
  (func (export "divide") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    i32.div_s)
  (func (export "evidence_size") (result i32)
    (call $collect (i32.const 0) (i32.const 5) (i32.const 1024) (i32.const 64000)))
  (func (export "roundtrip") (result i32)
    (local $length i32)
    (local.set $length
      (call $collect (i32.const 0) (i32.const 5) (i32.const 1024) (i32.const 64000)))
    (if (i32.le_s (local.get $length) (i32.const 0))
      (then (return (i32.const -100))))
    (if (i32.ne (call $field (i32.const 1024) (local.get $length) (i32.const 4)
                             (i32.const 512) (i32.const 32))
                (i32.const 32))
      (then (return (i32.const -200))))
    (call $verify (i32.const 1024) (local.get $length) (i32.const 512)))
  (func (export "tampered") (result i32)
    (local $length i32)
    (local.set $length
      (call $collect (i32.const 0) (i32.const 5) (i32.const 1024) (i32.const 64000)))
    (drop (call $field (i32.const 1024) (local.get $length) (i32.const 4)
                       (i32.const 512) (i32.const 32)))
    (i32.store8 (i32.const 1100) (i32.xor (i32.load8_u (i32.const 1100)) (i32.const 1)))
    (call $verify (i32.const 1024) (local.get $length) (i32.const 512)))
  (func (export "out_of_bounds") (result i32)
    (call $collect (i32.const 200000) (i32.const 5) (i32.const 1024) (i32.const 64000))))
"""


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim")


@pytest.fixture(scope="module", params=TIERS)
def enclave(state_dir, request):
    config = EnclaveConfig(tier=request.param)
    with Enclave(state_dir=state_dir, config=config, timeout=60) as running:
        yield running


@pytest.fixture(scope="module")
def guest(enclave):
    module_bytes = wasmtime.wat2wasm(GUEST_WAT)
    loaded = enclave.load_module(module_bytes)
    return module_bytes, loaded, enclave.instantiate(loaded)


def test_module_hash_is_sha256(guest):
    module_bytes, loaded, _ = guest
    assert loaded.sha256 == hashlib.sha256(module_bytes).digest()
    assert len(loaded.handle) == 16


def test_call_inside_enclave(enclave, guest):
    _, _, instance = guest
    assert enclave.call(instance, "add", 2, 40) == [42]
    assert enclave.call(instance, "add", -5, 3) == [-2]


def test_trap_becomes_error(enclave, guest):
    _, _, instance = guest
    with pytest.raises(EnclaveCallError) as info:
        enclave.call(instance, "divide", 1, 0)
    assert info.value.kind == "Trap"
    assert "integer divide by zero" in str(info.value)
    assert enclave.call(instance, "divide", 9, 3) == [3]


def test_unknown_export_and_handles(enclave, guest):
    _, loaded, instance = guest
    with pytest.raises(EnclaveCallError, match="no exported function 'missing'"):
        enclave.call(instance, "missing")
    with pytest.raises(EnclaveCallError, match="unknown instance handle"):
        enclave.call(loaded.handle, "add", 1, 2)


def test_invalid_module_rejected(enclave):
    with pytest.raises(EnclaveCallError) as info:
        enclave.load_module(b"\x00asm\x01\x00\x00\x00\x01\xff")
    assert info.value.kind == "DecodeError"
    with pytest.raises(EnclaveCallError):
        enclave.load_module(b"not wasm at all")


def test_guest_evidence_roundtrip(enclave, guest):
    _, _, instance = guest
    assert enclave.call(instance, "roundtrip") == [0]
    assert enclave.call(instance, "tampered") == [1]
    assert enclave.call(instance, "evidence_size")[0] > 432


def test_guest_out_of_bounds_traps(enclave, guest):
    _, _, instance = guest
    with pytest.raises(EnclaveCallError) as info:
        enclave.call(instance, "out_of_bounds")
    assert info.value.kind == "Trap"


def test_evidence_lists_loaded_modules(enclave, guest, state_dir):
    _, loaded, _ = guest
    evidence = enclave.get_evidence(b"", nonce=b"n")
    policy = Policy(mr_enclave=enclave.identity["mr_enclave"], allow_debug=True,
                    allow_simulation=True, nonce=b"n")
    claims = verify_evidence(evidence, policy, [SimPlatform(state_dir).root_certificate])
    assert loaded.sha256 in claims.evidence_claims["modules"]


def test_guest_user_data_formula(guest):
    _, loaded, _ = guest
    assert guest_user_data(loaded.sha256, b"hello") == hashlib.sha256(
        loaded.sha256 + b"hello").digest()


COUNTER_WAT = r"""
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "counter.txt")
  (data (i32.const 80) "count=0\n")
  ;; Read one digit from counter.txt in the first preopen (fd 3), add one,
  ;; write it back, print it, and exit with 7 when it reaches 2.
  (func (export "_start")
    (local $count i32)
    (i32.store (i32.const 16) (i32.const 64))
    (i32.store (i32.const 20) (i32.const 1))
    (if (i32.eqz (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 11)
                   (i32.const 0) (i64.const 0x42) (i64.const 0) (i32.const 0) (i32.const 28)))
      (then
        (drop (call $fd_read (i32.load (i32.const 28)) (i32.const 16) (i32.const 1)
                             (i32.const 24)))
        (if (i32.eq (i32.load (i32.const 24)) (i32.const 1))
          (then (local.set $count (i32.sub (i32.load8_u (i32.const 64)) (i32.const 48)))))
        (drop (call $fd_close (i32.load (i32.const 28))))))
    (local.set $count (i32.add (local.get $count) (i32.const 1)))
    (i32.store8 (i32.const 64) (i32.add (local.get $count) (i32.const 48)))
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 11)
          (i32.const 9) (i64.const 0x42) (i64.const 0) (i32.const 0) (i32.const 28))
      (then (call $proc_exit (i32.const 3))))
    (drop (call $fd_write (i32.load (i32.const 28)) (i32.const 16) (i32.const 1) (i32.const 24)))
    (drop (call $fd_close (i32.load (i32.const 28))))
    (i32.store8 (i32.const 86) (i32.add (local.get $count) (i32.const 48)))
    (i32.store (i32.const 32) (i32.const 80))
    (i32.store (i32.const 36) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 24)))
    (if (i32.eq (local.get $count) (i32.const 2))
      (then (call $proc_exit (i32.const 7))))))
"""


@pytest.mark.parametrize("tier", TIERS)
def test_wasi_program_keeps_protected_state(tmp_path, tier):
    import shutil

    # A fresh platform: its monotonic counters must match this host directory.
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    with Enclave(state_dir=tmp_path / "sim", storage_dir=host_dir,
                 config=EnclaveConfig(tier=tier), timeout=60) as running:
        module = running.load_module(wasmtime.wat2wasm(COUNTER_WAT))
        first = running.run_wasi(module, ["counter"], protected_dir="/data")
        assert first.stderr == b""
        assert first.exit_code == 0
        assert first.stdout == b"count=1\n"
        snapshot = tmp_path / "snapshot"
        shutil.copytree(host_dir, snapshot)
        second = running.run_wasi(module, ["counter"], protected_dir="/data")
        assert second.exit_code == 7
        assert second.stdout == b"count=2\n"
        for path in host_dir.rglob("*"):
            if path.is_file():
                assert path.read_bytes() != b"2"
        shutil.rmtree(host_dir)
        shutil.copytree(snapshot, host_dir)
        with pytest.raises(RollbackError):
            running.run_wasi(module, ["counter"], protected_dir="/data")
        shutil.rmtree(host_dir)
        host_dir.mkdir()
        with pytest.raises(EnclaveCallError, match="index was deleted"):
            running.run_wasi(module, ["counter"], protected_dir="/data")


def test_wasi_without_start_rejected(enclave, guest):
    _, loaded, _ = guest
    with pytest.raises(EnclaveCallError, match="no exported _start"):
        enclave.run_wasi(loaded)
