"""`wasmtee compile` writes an artifact that `wasmtee run` loads without recompiling."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("llvmlite")

from wasmtee.cli import main  # noqa: E402

HELLO = Path(__file__).resolve().parent.parent / "examples" / "wasi" / "hello.wasm"


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The artifact MAC key lives in the state directory; keep it per test.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def test_compiled_artifact_runs(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    artifact = tmp_path / "hello.cwasm"
    assert main(["compile", "--no-progress", str(HELLO), "-o", str(artifact)]) == 0
    capfd.readouterr()
    assert main(["run", str(artifact)]) == 0
    assert capfd.readouterr().out == "Hello, world!\n"


def test_tampered_artifact_is_rejected(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    artifact = tmp_path / "hello.cwasm"
    assert main(["compile", "--no-progress", str(HELLO), "-o", str(artifact)]) == 0
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    capfd.readouterr()
    assert main(["run", str(artifact)]) != 0
    captured = capfd.readouterr()
    assert "integrity check" in captured.err
    assert captured.out == ""


def test_text_module_compiles(tmp_path: Path) -> None:
    source = tmp_path / "add.wat"
    source.write_text('(module (func (export "add") (param i32 i32) (result i32)'
                      ' local.get 0 local.get 1 i32.add))')
    artifact = tmp_path / "add.cwasm"
    assert main(["compile", "--no-progress", str(source), "-o", str(artifact)]) == 0
    assert artifact.read_bytes()[:8] == b"WTEECWSM"
