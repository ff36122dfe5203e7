"""The example WASI programs on wasmtime (PyPI) and on wasmtee, with the same results.

The wasmtime run pins what each program must print; the wasmtee run is then
compared with it. wasmtee runs use the python tier, or the llvm tier while the
python tier is not available, and skip when neither loads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "wasi"


@dataclass
class Outcome:
    status: int
    stdout: bytes
    stderr: bytes


def run_wasmtime(wasm: Path, args: list[str], env: dict[str, str],
                 dirs: list[tuple[str, str]], tmp: Path, stdin: bytes = b"") -> Outcome:
    """Run a WASI command on the wasmtime package, capturing output in files under `tmp`."""
    import wasmtime

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    config = wasmtime.WasiConfig()
    config.argv = [wasm.name, *args]
    config.env = list(env.items())
    for host, guest in dirs:
        config.preopen_dir(host, guest)
    out, err, inp = tmp / "wt.out", tmp / "wt.err", tmp / "wt.in"
    inp.write_bytes(stdin)
    config.stdout_file = str(out)
    config.stderr_file = str(err)
    config.stdin_file = str(inp)
    store.set_wasi(config)
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(wasm)))
    status = 0
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as exc:
        status = exc.code
    return Outcome(status, out.read_bytes(), err.read_bytes())


def run_wasmtee(wasm: Path, args: list[str], env: dict[str, str],
                dirs: list[tuple[str, str]], stdin: bytes = b"", timeout: float = 300) -> Outcome:
    """Run `wasmtee run` in a child process, as a user would."""
    command = [sys.executable, "-m", "wasmtee", "run", "--tier", TIER, "--argv0", wasm.name]
    for host, guest in dirs:
        command += ["--dir", f"{host}::{guest}"]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    command += [str(wasm), *args]
    proc = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def available_tier() -> str | None:
    """Return "python" or "llvm", whichever first runs a trivial module, else None."""
    import wasmtee

    for tier in ("python", "llvm"):
        try:
            engine = wasmtee.Engine(wasmtee.Config(tier=tier))
            store = wasmtee.Store(engine)
            module = wasmtee.Module(engine, '(module (func (export "f") (result i32) i32.const 7))')
            if wasmtee.Instance(store, module, []).exports(store)["f"](store) == 7:
                return tier
        except Exception:
            continue
    return None


# WASMTEE_TEST_TIER=llvm (or python) picks the tier for every wasmtee run in these tests.
TIER = os.environ.get("WASMTEE_TEST_TIER") or available_tier() or "python"
needs_engine = pytest.mark.skipif(available_tier() is None,
                                  reason="no execution tier is available")


def _data_dir(tmp_path: Path, name: str) -> Path:
    data = tmp_path / name
    data.mkdir()
    (data / "in.txt").write_bytes(b"alpha\nneedle one\nbeta\nneedle two\n")
    return data


CASES = {
    "hello": (["x"], {}, b"Hello, world!\n", 0),
    "envargs": (["a", "b c"], {"HOME": "/home/guest", "K": "V"},
                b"argv[0]=envargs.wasm\nargv[1]=a\nargv[2]=b c\nenv HOME=/home/guest\n"
                b"env K=V\nHOME /home/guest\n", 2),
    "clock": ([], {}, b"monotonic resolution ok: 1\nrealtime after 2020: 1\n"
              b"slept at least 20 ms: 1\nrandom buffers differ: 1\n", 0),
    "grep": (["needle", "/data/in.txt"], {}, b"2:needle one\n4:needle two\n", 0),
    "copy": (["/data/in.txt", "/data/out/copy.txt"], {},
             b"copied 33 bytes\ncopy.txt 33\n", 0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_on_wasmtime(name, tmp_path):
    args, env, expected, status = CASES[name]
    data = _data_dir(tmp_path, "data")
    outcome = run_wasmtime(EXAMPLES / f"{name}.wasm", args, env, [(str(data), "/data")], tmp_path)
    assert outcome.stdout == expected
    assert outcome.status == status


@needs_engine
@pytest.mark.parametrize("name", sorted(CASES))
def test_example_matches_wasmtime(name, tmp_path):
    args, env, _expected, _status = CASES[name]
    ref_dir = _data_dir(tmp_path, "ref")
    our_dir = _data_dir(tmp_path, "ours")
    wasm = EXAMPLES / f"{name}.wasm"
    reference = run_wasmtime(wasm, args, env, [(str(ref_dir), "/data")], tmp_path)
    ours = run_wasmtee(wasm, args, env, [(str(our_dir), "/data")])
    assert ours.stdout == reference.stdout, ours.stderr.decode(errors="replace")
    assert ours.status == reference.status
    ref_files = sorted(p.relative_to(ref_dir) for p in ref_dir.rglob("*"))
    our_files = sorted(p.relative_to(our_dir) for p in our_dir.rglob("*"))
    assert our_files == ref_files


@needs_engine
def test_grep_reads_stdin(tmp_path):
    wasm = EXAMPLES / "grep.wasm"
    text = b"one\ntwo needle\nthree\n"
    reference = run_wasmtime(wasm, ["needle"], {}, [], tmp_path, stdin=text)
    ours = run_wasmtee(wasm, ["needle"], {}, [], stdin=text)
    assert ours.stdout == reference.stdout == b"2:two needle\n"
    assert ours.status == reference.status == 0


@needs_engine
def test_copy_escape_fails_like_wasmtime(tmp_path):
    wasm = EXAMPLES / "copy.wasm"
    data = _data_dir(tmp_path, "data")
    args = ["/data/../../etc/passwd", "/data/stolen"]
    reference = run_wasmtime(wasm, args, {}, [(str(data), "/data")], tmp_path)
    ours = run_wasmtee(wasm, args, {}, [(str(data), "/data")])
    assert ours.status == reference.status == 1
    assert not (data / "stolen").exists()


@needs_engine
def test_embedding_api_with_both_module_names(tmp_path):
    import io

    import wasmtee
    from wasmtee.wasi import WasiConfig, add_to_linker

    wat = """(module
      (import "wasi_unstable" "fd_write" (func $old_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_unstable" "fd_seek" (func $old_seek (param i32 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 64) "unstable\\n")
      (data (i32.const 80) "preview1\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64))
        (i32.store (i32.const 4) (i32.const 9))
        (drop (call $old_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
        (i32.store (i32.const 0) (i32.const 80))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
        ;; whence 0 is CUR in wasi_unstable; stdout cannot seek, so this returns SPIPE (70)
        ;; or NOTCAPABLE (76), never INVAL (28)
        (call $exit (call $old_seek (i32.const 1) (i64.const 0) (i32.const 0) (i32.const 40)))))"""
    engine = wasmtee.Engine(wasmtee.Config(tier=TIER))
    store = wasmtee.Store(engine)
    linker = wasmtee.Linker(engine)
    stdout = io.BytesIO()
    wasi = add_to_linker(linker, store, WasiConfig(stdout=stdout))
    instance = linker.instantiate(store, wasmtee.Module(engine, wat))
    with pytest.raises(wasmtee.WasiExit) as info:
        instance.exports(store)["_start"](store)
    wasi.close()
    assert stdout.getvalue() == b"unstable\npreview1\n"
    assert info.value.code in (70, 76)
