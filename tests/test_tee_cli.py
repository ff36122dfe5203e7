"""`wasmtee attest` and `wasmtee enclave` subcommands."""

from __future__ import annotations

import json
import sys
import tomllib

import pytest

from wasmtee.cli import enclave, main
from wasmtee.errors import UsageError
from wasmtee.tee.measure import EnclaveConfig, measure_runtime


def run_cli(argv):
    """Run the real command line in this process and return its exit status."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2


@pytest.fixture(scope="module")
def quote_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli")
    path = directory / "quote.bin"
    status = run_cli(["attest", "quote", "--backend", "sim", "--state-dir",
                      str(directory / "sim"), "--report-data", "00112233", "-o", str(path)])
    assert status == 0
    return path


def state_dir_of(quote_file):
    return str(quote_file.parent / "sim")


def test_show_prints_fields(quote_file, capsys):
    assert run_cli(["attest", "show", "--json", str(quote_file)]) == 0
    fields = json.loads(capsys.readouterr().out)
    assert fields["version"] == 3
    assert fields["mr_enclave"] == measure_runtime(EnclaveConfig()).hex()
    assert fields["report_data"].startswith("00112233")
    assert fields["qe_vendor"] == "not Intel"
    assert fields["debug"] is True
    assert run_cli(["attest", "show", str(quote_file)]) == 0
    assert "UNVERIFIED" in capsys.readouterr().out


def test_verify_accepts_with_simulation_allowed(quote_file, capsys):
    status = run_cli(["attest", "verify", str(quote_file), "--allow-simulation",
                      "--allow-debug", "--state-dir", state_dir_of(quote_file),
                      "--report-data", "00112233"])
    assert status == 0
    assert "verification OK" in capsys.readouterr().out


def test_verify_rejects_simulation_by_default(quote_file, tmp_path, capsys):
    root = tmp_path / "root.pem"
    root.write_bytes((quote_file.parent / "sim" / "root_ca.pem").read_bytes())
    status = run_cli(["attest", "verify", str(quote_file), "--root", str(root)])
    assert status == 1
    assert "'simulation' failed" in capsys.readouterr().err


def test_verify_without_roots_trusts_only_intel(quote_file, capsys):
    assert run_cli(["attest", "verify", str(quote_file)]) == 1
    assert "not at the Intel SGX Root CA" in capsys.readouterr().err


def test_verify_policy_file(quote_file, tmp_path, capsys):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"mr_enclave": "00" * 32, "allow_debug": True}))
    status = run_cli(["attest", "verify", str(quote_file), "--policy", str(policy),
                      "--allow-simulation", "--state-dir", state_dir_of(quote_file)])
    assert status == 1
    assert "'mr_enclave' failed" in capsys.readouterr().err
    policy.write_text(json.dumps({"mr_enclave": measure_runtime(EnclaveConfig()).hex(),
                                  "allow_debug": True, "report_data": "00112233"}))
    status = run_cli(["attest", "verify", str(quote_file), "--policy", str(policy),
                      "--allow-simulation", "--state-dir", state_dir_of(quote_file)])
    assert status == 0


def test_verify_rejects_wrong_report_data(quote_file, capsys):
    status = run_cli(["attest", "verify", str(quote_file), "--allow-simulation",
                      "--allow-debug", "--state-dir", state_dir_of(quote_file),
                      "--report-data", "ff"])
    assert status == 1
    assert "'report_data' failed" in capsys.readouterr().err


@pytest.mark.parametrize("freshness", [["--nonce", "0011223344"], ["--max-age", "1"],
                                       ["--nonce", "00", "--max-age", "60"]])
def test_verify_bare_quote_fails_freshness(quote_file, freshness, capsys):
    # A quote carries no nonce and no issue time, so it may be a replay.
    status = run_cli(["attest", "verify", str(quote_file), "--allow-simulation",
                      "--allow-debug", "--state-dir", state_dir_of(quote_file), *freshness])
    assert status == 1
    captured = capsys.readouterr()
    assert "'freshness' failed" in captured.err
    assert "verify evidence instead" in captured.err
    assert "verification OK" not in captured.out


def test_verify_rejects_tampered_file(quote_file, tmp_path, capsys):
    tampered = bytearray(quote_file.read_bytes())
    tampered[120] ^= 1
    path = tmp_path / "tampered.bin"
    path.write_bytes(bytes(tampered))
    status = run_cli(["attest", "verify", str(path), "--allow-simulation", "--allow-debug",
                      "--state-dir", state_dir_of(quote_file)])
    assert status == 1
    assert "'quote_signature' failed" in capsys.readouterr().err


def test_show_rejects_non_quote(tmp_path, capsys):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"junk")
    assert run_cli(["attest", "show", str(path)]) == 1
    assert "is not a DCAP v3 quote" in capsys.readouterr().err


def test_quote_rejects_long_report_data(tmp_path, capsys):
    status = run_cli(["attest", "quote", "--report-data", "00" * 65, "-o",
                      str(tmp_path / "q.bin"), "--state-dir", str(tmp_path / "sim")])
    assert status == 2
    assert "--report-data is 65 bytes, max 64" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["attest", "quote", "--report-data", "zz", "-o", "q.bin"], "--report-data must be hex"),
    (["attest", "quote", "--isv-prod-id", "70000", "-o", "q.bin"],
     "argument --isv-prod-id: invalid value '70000'"),
    (["attest", "quote", "--isv-svn", "x", "-o", "q.bin"], "argument --isv-svn: invalid value 'x'"),
    (["attest", "evidence", "--nonce", "xyz", "-o", "e.bin"], "--nonce must be hex"),
    (["attest", "verify", "v.bin", "--max-age", "-5"], "argument --max-age: invalid number"),
    (["attest", "verify", "v.bin", "--mrenclave", "not-hex"], "--mrenclave must be hex"),
    (["attest", "verify", "v.bin", "--policy", "/missing/policy.json"],
     "cannot read policy file"),
    (["attest", "show", "/missing/quote.bin"], "cannot read quote file"),
    (["attest"], "required: ACTION"),
    (["attest", "frobnicate"], "invalid choice: 'frobnicate'"),
    (["enclave", "manifest", "--max-threads", "0"], "argument --max-threads: invalid value '0'"),
    (["enclave", "manifest", "--enclave-size", "3G"], "power of two"),
    (["enclave", "measure", "--isv-svn", "\u0663"], "argument --isv-svn: invalid value"),
    (["enclave"], "required: ACTION"),
])
def test_usage_errors_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v.bin").write_bytes(b"junk")
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "q.bin").exists()


def test_manifest_has_required_settings(tmp_path):
    output = tmp_path / "wasmtee-enclave.manifest.template"
    assert run_cli(["enclave", "manifest", "-o", str(output), "--enclave-size", "4G",
                    "--max-threads", "8", "--isv-svn", "3"]) == 0
    manifest = tomllib.loads(output.read_text())
    sgx = manifest["sgx"]
    assert sgx["remote_attestation"] == "dcap"
    assert sgx["enclave_size"] == "4G"
    assert sgx["max_threads"] == 8
    assert sgx["isvsvn"] == 3
    assert sgx["debug"] is False
    trusted = sgx["trusted_files"]
    assert f"file:{sys.executable}" in trusted or any(
        entry.startswith("file:") and entry.endswith("/python3.11") for entry in trusted)
    assert any(entry.endswith("/wasmtee/") for entry in trusted)
    assert any("cryptography" in entry for entry in trusted)
    encrypted = [mount for mount in manifest["fs"]["mounts"] if mount.get("type") == "encrypted"]
    assert encrypted == [{"type": "encrypted", "path": "/sealed", "uri": "file:sealed",
                          "key_name": "_sgx_mrsigner"}]
    assert manifest["loader"]["argv"][1:] == ["-m", "wasmtee.tee.enclave_main", "0", "1"]


def test_manifest_rejects_bad_size():
    with pytest.raises(UsageError, match="power of two"):
        enclave.build_manifest(enclave_size="3G")
    with pytest.raises(UsageError, match="must look like 512M or 2G"):
        enclave.build_manifest(enclave_size="lots")
    with pytest.raises(UsageError, match="max-threads"):
        enclave.build_manifest(max_threads=0)


def test_measure_prints_mrenclave(capsys):
    assert run_cli(["enclave", "measure", "--isv-svn", "2"]) == 0
    assert capsys.readouterr().out.strip() == measure_runtime(EnclaveConfig(isv_svn=2)).hex()


def test_evidence_roundtrip_with_nonce(tmp_path, capsys):
    state = str(tmp_path / "sim")
    path = tmp_path / "evidence.cbor"
    assert run_cli(["attest", "evidence", "--state-dir", state, "--nonce", "abcd",
                    "--user-data", "0102", "-o", str(path)]) == 0
    common = ["attest", "verify", str(path), "--allow-simulation", "--allow-debug",
              "--state-dir", state, "--max-age", "60"]
    assert run_cli(common + ["--nonce", "abcd"]) == 0
    output = capsys.readouterr().out
    assert "claim nonce: abcd" in output
    assert "claim user-data: 0102" in output
    assert run_cli(common + ["--nonce", "ffff"]) == 1
    assert "'nonce' failed" in capsys.readouterr().err


def test_verify_rejects_malformed_evidence(tmp_path, capsys):
    path = tmp_path / "bad.cbor"
    path.write_bytes(b"\x82\x01\x02")
    assert run_cli(["attest", "verify", str(path), "--allow-simulation",
                    "--state-dir", str(tmp_path / "sim")]) == 1
    assert "invalid evidence" in capsys.readouterr().err
    assert run_cli(["attest", "verify", str(tmp_path / "missing.bin")]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["attest", "quote", "-o", "{dir}"], "cannot write {dir}: Is a directory"),
    (["attest", "quote", "-o", "{dir}/missing/q.bin"],
     "cannot write {dir}/missing/q.bin: No such file or directory"),
    (["attest", "evidence", "-o", "{dir}"], "cannot write {dir}: Is a directory"),
    (["enclave", "manifest", "-o", "{dir}"], "cannot write {dir}: Is a directory"),
    (["enclave", "manifest", "-o", "{dir}/missing/m"],
     "cannot write {dir}/missing/m: No such file or directory"),
    (["attest", "show", "{dir}"], "cannot read quote file '{dir}': Is a directory"),
    (["attest", "verify", "{dir}"], "cannot read '{dir}': Is a directory"),
    (["attest", "verify", "{dir}/v.bin", "--policy", "{dir}"],
     "cannot read policy file '{dir}': Is a directory"),
    (["attest", "verify", "{dir}/v.bin", "--policy", "{dir}/v.bin"],
     "policy file '{dir}/v.bin' is not UTF-8 JSON text"),
    (["attest", "verify", "{dir}/v.bin", "--root", "{dir}"],
     "cannot read root certificate '{dir}': Is a directory"),
])
def test_bad_file_paths_exit_2(argv, message, tmp_path, capsys):
    directory = str(tmp_path)
    (tmp_path / "v.bin").write_bytes(b"\xff\xfe not a quote")
    argv = [arg.format(dir=directory) for arg in argv]
    if argv[:2] in (["attest", "quote"], ["attest", "evidence"]):
        argv[2:2] = ["--state-dir", str(tmp_path / "sim")]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert message.format(dir=directory) in err
    assert "internal error" not in err
