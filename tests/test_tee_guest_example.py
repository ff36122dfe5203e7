"""examples/attest/attest.wasm under `wasmtee run --enclave sim`: the printed claims."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wasmtee.tee.measure import EnclaveConfig, enclave_attributes, measure_runtime
from wasmtee.tee.quote import ATTRIBUTE_DEBUG
from wasmtee.tee.sim import SimPlatform

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "attest" / "attest.wasm"
BUFFER = "nonce 7f3a for the attest example"


def parse_claims(stdout: str) -> dict[str, str]:
    claims = {}
    for line in stdout.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            claims[name] = value
    return claims


@pytest.fixture(scope="module")
def state_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def run_result(state_home) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_STATE_HOME=str(state_home), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "wasmtee", "run", "--enclave", "sim",
                           str(EXAMPLE), BUFFER], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def claims(run_result) -> dict[str, str]:
    assert run_result.returncode == 0, run_result.stderr
    return parse_claims(run_result.stdout)


def test_example_exits_zero(run_result):
    assert run_result.returncode == 0, run_result.stderr


def test_mr_enclave_matches_measurement(claims):
    assert claims["mr_enclave"] == measure_runtime(EnclaveConfig()).hex()


def test_mr_signer_matches_platform(claims, state_home):
    platform = SimPlatform(state_home / "wasmtee" / "sim")
    assert claims["mr_signer"] == platform.mr_signer.hex()


def test_product_id_and_svn(claims):
    config = EnclaveConfig()
    assert claims["isv_prod_id"] == str(config.isv_prod_id)
    assert claims["isv_svn"] == str(config.isv_svn)


def test_attributes_and_debug(claims):
    # The simulated platform adds the DEBUG attribute to every enclave.
    flags = enclave_attributes(EnclaveConfig()) | ATTRIBUTE_DEBUG
    assert claims["attributes_flags_le"] == flags.to_bytes(8, "little").hex()
    assert claims["debug"] == "1"


def test_user_data_binds_module_and_buffer(claims):
    module_hash = hashlib.sha256(EXAMPLE.read_bytes()).digest()
    expected = hashlib.sha256(module_hash + BUFFER.encode()).hexdigest()
    assert claims["buffer"] == BUFFER
    assert claims["user_data"] == expected


def test_report_data_layout(claims):
    report_data = bytes.fromhex(claims["report_data"])
    assert len(report_data) == 64
    # Evidence REPORTDATA is SHA-256 of the claims map, then 32 zero bytes.
    assert report_data[32:] == bytes(32)
    assert report_data[:32] != bytes(32)


def test_verification_results(claims):
    assert claims["verify"] == "ok"
    assert claims["verify_wrong_user_data"] == "rejected"
    assert claims["verify_tampered"] == "rejected"


def test_example_imports_attest_functions():
    data = EXAMPLE.read_bytes()
    for name in (b"collect_evidence", b"verify_evidence", b"evidence_field"):
        assert name in data, name
    assert b"wasmtee_attest" in data
