"""`wasmtee run` and `wasmtee inspect` from the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_wasi_programs import TIER, needs_engine
from wasmtee.cli.run import parse_invoke_args, parse_size
from wasmtee.errors import UsageError
from wasmtee.model import FuncType, ValType

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "examples" / "wasi" / "hello.wasm"


def wasmtee(*args: str, stdin: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess:
    if args and args[0] == "run" and "--tier" not in args:
        args = ("run", "--tier", TIER, *args[1:])
    return subprocess.run([sys.executable, "-m", "wasmtee", *args], input=stdin,
                          capture_output=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run the command line in this process (for commands that run no wasm code)."""
    import contextlib
    import io

    from wasmtee.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(args, status, out.getvalue().encode(),
                                       err.getvalue().encode())


def test_help_documents_every_option():
    proc = cli("run", "--help")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    for option in ("--dir", "--dir-ro", "--env", "--invoke", "--fuel", "--max-memory",
                   "--timeout", "--tier", "--argv0"):
        assert option in text
    assert "SECONDS" in text
    assert "bytes" in text


@pytest.mark.parametrize("args", [
    ["run", "--fuel", "lots", "x.wasm"],
    ["run", "--max-memory", "12Q", "x.wasm"],
    ["run", "--timeout", "-1", "x.wasm"],
    ["run", "--tier", "jit", "x.wasm"],
    ["run"],
    ["run", "--dir", "/definitely/not/here", str(HELLO)],
    ["run", "--env", "=x", str(HELLO)],
    ["run", "missing-module.wasm"],
    ["inspect", "missing-module.wasm"],
    ["run", "--fuel", "\u00b2", "x.wasm"],
    ["run", "--fuel", "-1", "x.wasm"],
    ["run", "--fuel", "1_000", "x.wasm"],
    ["run", "--max-memory", "\u00b2K", "x.wasm"],
    ["run", "--timeout", "nan", "x.wasm"],
    ["run", "--timeout", "inf", "x.wasm"],
    ["run", "--timeout", "99999999999", "x.wasm"],
    ["run", "--timeout", "1e300", "x.wasm"],
    ["wast", "--timeout", "1e300", "x.wast"],
    ["wast", "--timeout", "0", "x.wast"],
    ["wast", "missing-script.wast"],
    ["wast", "."],
    ["compile", "--opt-level", "7", "x.wasm"],
])
def test_bad_arguments_exit_2(args):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert b"error" in proc.stderr


def typed_options(parser=None, path=()):
    """Yield (subcommand path, option string, type function) for every typed option."""
    import argparse as ap

    from wasmtee.cli import build_parser

    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, ap._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from typed_options(subparser, (*path, name))
        elif action.option_strings and callable(action.type):
            yield path, action.option_strings[-1], action.type


TYPED_OPTIONS = list(typed_options())


def test_typed_options_found():
    names = {option for _path, option, _type in TYPED_OPTIONS}
    for option in ("--fuel", "--max-memory", "--timeout", "--isv-svn", "--max-age",
                   "--max-threads", "--opt-level"):
        assert option in names


@pytest.mark.parametrize("path,option,type_function", TYPED_OPTIONS,
                         ids=[" ".join((*p, o)) for p, o, _t in TYPED_OPTIONS])
@pytest.mark.parametrize("value", ["\u00b2", "-7x", ""])
def test_bad_option_value_named(path, option, type_function, value):
    proc = cli(*path, f"{option}={value}")
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert f"argument {option}" in err
    assert repr(value) in err
    # A type function's name, such as _non_negative_int, is no message for users.
    assert "invalid _" not in err
    assert f"invalid {getattr(type_function, '__name__', '')} value" not in err or \
        type_function in (int, float)
    assert "Traceback" not in err


def test_parse_size_units():
    assert parse_size("65536") == 65536
    assert parse_size("64K") == 65536
    assert parse_size("16MiB") == 16 << 20
    assert parse_size("1g") == 1 << 30
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("1.5M")


def test_parse_invoke_args_by_type():
    ty = FuncType((ValType.I32, ValType.I64, ValType.F32, ValType.F64), ())
    assert parse_invoke_args(ty, ["-1", "0x10", "1.5", "nan"])[:3] == [-1, 16, 1.5]
    assert parse_invoke_args(ty, ["4294967295", "1", "0", "0"])[0] == -1
    with pytest.raises(UsageError):
        parse_invoke_args(ty, ["4294967296", "1", "0", "0"])
    with pytest.raises(UsageError):
        parse_invoke_args(ty, ["1"])
    with pytest.raises(UsageError):
        parse_invoke_args(ty, ["x", "1", "0", "0"])


def test_inspect_reports_wasi_and_features():
    proc = cli("inspect", str(REPO / "examples" / "wasi" / "copy.wasm"))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "WASI: wasi_snapshot_preview1" in text
    assert "kind: command (_start)" in text
    assert "wasi_snapshot_preview1.path_open: func [i32 i32 i32 i32 i32 i64 i64 i32 i32] -> [i32]" in text
    assert "memory 0: min 257 max unbounded pages" in text
    assert "features: bulk memory, sign-extension" in text


def test_inspect_wat_reactor(tmp_path):
    wat = tmp_path / "r.wat"
    wat.write_text('(module (memory (export "memory") 1 2) (func (export "_initialize"))'
                   ' (func (export "pair") (result i32 i64) i32.const 1 i64.const 2))')
    proc = cli("inspect", str(wat))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "kind: reactor (_initialize)" in text
    assert "pair: func [] -> [i32 i64]" in text
    assert "features: multi-value" in text


def test_inspect_malformed_module(tmp_path):
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x01\xff")
    proc = cli("inspect", str(bad))
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr


WAT_PROGRAMS = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ready\\n")
  (global $initialized (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $initialized (i32.const 1)))
  (func (export "initialized") (result i32) (global.get $initialized))
  (func (export "add") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
  (func (export "fdiv") (param f64 f64) (result f64) (f64.div (local.get 0) (local.get 1)))
  (func (export "pair") (param i32) (result i32 i32) (local.get 0) (i32.const -1))
  (func (export "say")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "quit") (param i32) (call $exit (local.get 0)))
  (func $inner (unreachable))
  (func $outer (call $inner))
  (func (export "crash") (call $outer))
  (func (export "spin") (loop $l (br $l)))
)
"""


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "prog.wat"
    path.write_text(WAT_PROGRAMS)
    return str(path)


@needs_engine
def test_hello_command():
    proc = wasmtee("run", str(HELLO))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"Hello, world!\n"


@needs_engine
def test_invoke_prints_results(program):
    assert wasmtee("run", "--invoke", "add", program, "-5", "7").stdout == b"2\n"
    assert wasmtee("run", "--invoke", "fdiv", program, "1", "4").stdout == b"0.25\n"
    assert wasmtee("run", "--invoke", "pair", program, "9").stdout == b"9\n-1\n"
    assert wasmtee("run", "--invoke", "initialized", program).stdout == b"1\n"
    assert wasmtee("run", "--invoke", "say", program).stdout == b"ready\n"


@needs_engine
def test_invoke_errors(program):
    assert wasmtee("run", "--invoke", "nope", program).returncode == 2
    assert wasmtee("run", "--invoke", "add", program, "1").returncode == 2
    assert wasmtee("run", program).returncode == 2


@needs_engine
def test_exit_code_passes_through(program):
    assert wasmtee("run", "--invoke", "quit", program, "42").returncode == 42


@needs_engine
def test_trap_prints_code_and_backtrace(program):
    proc = wasmtee("run", "--invoke", "crash", program)
    assert proc.returncode == 134
    assert b"trap: unreachable" in proc.stderr
    assert b"Traceback" not in proc.stderr


@needs_engine
def test_fuel_and_timeout_stop_loops(program):
    proc = wasmtee("run", "--fuel", "1000", "--invoke", "spin", program)
    assert proc.returncode == 134
    assert b"all fuel consumed" in proc.stderr
    proc = wasmtee("run", "--timeout", "0.5", "--invoke", "spin", program)
    assert proc.returncode == 134
    assert b"interrupted" in proc.stderr


@needs_engine
def test_max_memory_rejects_large_minimum(tmp_path):
    wat = tmp_path / "big.wat"
    wat.write_text('(module (memory 4) (func (export "_start")))')
    assert wasmtee("run", "--max-memory", "64K", str(wat)).returncode == 1
    assert wasmtee("run", "--max-memory", "256K", str(wat)).returncode == 0


def test_trap_backtrace_lists_frames(capsys):
    from wasmtee.cli.run import _print_trap
    from wasmtee.errors import Frame, Trap, TrapCode

    frames = [Frame(1, "inner", None, 0x2a), Frame(2, "outer", "app", None)]
    _print_trap(Trap(TrapCode.UNREACHABLE, frames=frames))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "wasmtee run: trap: unreachable"
    assert lines[1] == "wasm backtrace:"
    assert lines[2] == "  0: inner @ 0x2a"
    assert lines[3] == "  1: app!outer"


STDIO_FDSTAT_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $stat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $stat (i32.const 0) (i32.const 0)))
    (drop (call $stat (i32.const 1) (i32.const 24)))
    (drop (call $stat (i32.const 2) (i32.const 48)))
    (i32.store (i32.const 128) (i32.const 0))
    (i32.store (i32.const 132) (i32.const 72))
    (drop (call $write (i32.const 1) (i32.const 128) (i32.const 1) (i32.const 136)))))
"""
UNKNOWN, CHARACTER_DEVICE = 0, 2
FD_READ, FD_SEEK, FD_TELL, FD_WRITE = 1 << 1, 1 << 2, 1 << 5, 1 << 6


def run_stdio_probe(tmp_path, stdin, stdout) -> list[tuple[int, int]]:
    """Run the probe with the given stdin and stdout; return (filetype, rights) of fds 0-2."""
    import struct

    wat = tmp_path / "probe.wat"
    wat.write_text(STDIO_FDSTAT_WAT)
    command = [sys.executable, "-m", "wasmtee", "run", "--tier", TIER, str(wat)]
    proc = subprocess.run(command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                          timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    data = proc.stdout if stdout == subprocess.PIPE else (tmp_path / "out").read_bytes()
    assert len(data) == 72
    return [(data[24 * fd], struct.unpack_from("<Q", data, 24 * fd + 8)[0]) for fd in range(3)]


def check_stdio_rights(stats: list[tuple[int, int]]) -> None:
    for fd, (_filetype, rights) in enumerate(stats):
        assert not rights & (FD_SEEK | FD_TELL), fd
        assert bool(rights & FD_READ) == (fd == 0), fd
        assert bool(rights & FD_WRITE) == (fd != 0), fd


@needs_engine
def test_redirected_stdout_is_not_a_terminal(tmp_path):
    with open(tmp_path / "out", "wb") as out:
        stats = run_stdio_probe(tmp_path, subprocess.DEVNULL, out)
    assert stats[0][0] == UNKNOWN  # /dev/null is a character device, but no terminal
    assert stats[1][0] == UNKNOWN  # a regular file
    check_stdio_rights(stats)


@needs_engine
def test_piped_stdio_is_not_a_terminal(tmp_path):
    stats = run_stdio_probe(tmp_path, subprocess.PIPE, subprocess.PIPE)
    assert stats[0][0] == UNKNOWN
    assert stats[1][0] == UNKNOWN
    assert stats[2][0] == UNKNOWN
    check_stdio_rights(stats)


@needs_engine
def test_terminal_stdin_is_a_character_device(tmp_path):
    terminal, terminal_peer = os.openpty()
    try:
        with open(tmp_path / "out", "wb") as out:
            stats = run_stdio_probe(tmp_path, terminal_peer, out)
    finally:
        os.close(terminal)
        os.close(terminal_peer)
    assert stats[0][0] == CHARACTER_DEVICE
    assert stats[1][0] == UNKNOWN
    check_stdio_rights(stats)


@needs_engine
@pytest.mark.parametrize("code,status", [(0, 0), (1, 1), (125, 125), (126, 1), (255, 1),
                                         (300, 1)])
def test_exit_code_range(program, code, status):
    proc = wasmtee("run", "--invoke", "quit", program, str(code))
    assert proc.returncode == status
    if code > 125:
        message = proc.stderr.decode()
        assert f"exited with code {code}," in message
        assert "0..125" in message
        assert len(message.splitlines()) == 1
    else:
        assert proc.stderr == b""


@needs_engine
def test_negative_exit_code_named(program):
    proc = wasmtee("run", "--invoke", "quit", program, "-1")
    assert proc.returncode == 1
    assert b"exited with code 4294967295 (-1 as a signed i32)" in proc.stderr


@needs_engine
def test_proc_raise_returns_notsup(tmp_path):
    wat = tmp_path / "raise.wat"
    wat.write_text("""(module
      (import "wasi_snapshot_preview1" "proc_raise" (func $raise (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "after\\n")
      (func (export "_start")
        (i32.store8 (i32.const 16) (i32.add (i32.load8_u (i32.const 16)) (call $raise (i32.const 6))))
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 6))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")
    proc = wasmtee("run", str(wat))
    assert proc.returncode == 0
    # NOTSUP is 58, so the first letter moves from 'a' (97) to 155.
    assert proc.stdout == bytes([97 + 58]) + b"fter\n"
    assert proc.stderr == b""


NOT_MODULES = [
    ("empty.wasm", b"", "is empty"),
    ("elf.bin", b"\x7fELF\x02\x01\x01\x00" + bytes(56), "starts with 7f 45 4c 46 02 01 01 00"),
    ("random.bin", bytes(range(255, 191, -1)), "starts with ff fe fd fc fb fa f9 f8"),
    ("notes.txt", b"hello world\n", "text that starts with 'hello world'"),
    ("comments.wat", b";; only\n(; a (; nested ;) comment ;)\n  ", "only whitespace and WAT"),
    ("short.wasm", b"\0as", "only the first 3 of the 4 magic bytes"),
]


@pytest.mark.parametrize("command", ["run", "inspect", "compile"])
@pytest.mark.parametrize("name,data,message", NOT_MODULES, ids=[n for n, _d, _m in NOT_MODULES])
def test_non_module_file_rejected(tmp_path, command, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    proc = cli(command, str(path))
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert f"{path} " in err
    assert message in err
    assert len(err.splitlines()) == 1
    assert not path.with_suffix(".cwasm").exists() or name.endswith(".cwasm")


def test_wat_with_leading_comments_accepted(tmp_path):
    path = tmp_path / "commented.wat"
    path.write_text(";; a module\n(; block ;) (module (func (export \"f\")))")
    proc = cli("inspect", str(path))
    assert proc.returncode == 0, proc.stderr
    assert b"f: func [] -> []" in proc.stdout


@pytest.mark.parametrize("data,message", [
    (b"WTEECWSM", "truncated"),
    (b"WTEECWSM" + bytes(8), "unsupported AOT format version 0"),
    (b"WTEECWSM" + bytes(range(64)), "AOT"),
])
def test_bad_artifact_rejected(tmp_path, data, message):
    path = tmp_path / "app.cwasm"
    path.write_bytes(data)
    proc = cli("run", str(path))
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    if "component is missing" not in err:
        assert f"{path} cannot be loaded as a wasmtee AOT artifact" in err
        assert message in err
    assert "Traceback" not in err
    for command in ("inspect", "compile"):
        proc = cli(command, str(path))
        assert proc.returncode == 2
        assert b"is a wasmtee AOT artifact" in proc.stderr or b"already" in proc.stderr


def test_backtrace_collapses_repeated_frames():
    from wasmtee.cli.run import format_backtrace
    from wasmtee.errors import Frame

    fac = Frame(1, "fac", None, 0x30)
    frames = [Frame(1, "fac", None, 0x42)] + [fac] * 9993 + [Frame(0, "main", None, 0x10)]
    lines = format_backtrace(frames)
    assert lines == [
        "  0: fac @ 0x42",
        "  1: fac @ 0x30",
        "  2: fac @ 0x30",
        "  3: fac @ 0x30",
        "  ... 9990 more frames of fac @ 0x30 (4..9993)",
        "  9994: main @ 0x10",
    ]
    assert format_backtrace([fac] * 4)[-1] == "  ... 1 more frame of fac @ 0x30 (3..3)"
    assert len(format_backtrace([fac] * 3)) == 3
    alternating = [Frame(1, "even", None), Frame(2, "odd", None)] * 3
    assert len(format_backtrace(alternating)) == 6


@needs_engine
def test_deep_recursion_backtrace_is_short(tmp_path):
    wat = tmp_path / "deep.wat"
    wat.write_text('(module (func $down (call $down)) (func (export "_start") (call $down)))')
    proc = wasmtee("run", str(wat))
    assert proc.returncode == 134
    err = proc.stderr.decode()
    assert "call stack exhausted" in err
    if "not recorded" not in err:
        assert "more frames of" in err
        assert len(err.splitlines()) < 12


def test_help_documents_exit_status():
    proc = cli("--help")
    assert b"Exit status" in proc.stdout
    for command in ("run", "inspect", "compile", "wast", "attest", "enclave"):
        proc = cli(command, "--help")
        text = b" ".join(proc.stdout.split())
        assert proc.returncode == 0
        assert b"Exit status" in text, command
        assert b"2 for bad arguments" in text, command


@needs_engine
def test_dir_ro_program_reads_not_writes(tmp_path):
    data = tmp_path / "data"
    (data / "out").mkdir(parents=True)
    (data / "in.txt").write_bytes(b"alpha\nneedle one\n")
    before = sorted(path.name for path in data.rglob("*"))
    examples = REPO / "examples" / "wasi"
    proc = wasmtee("run", "--dir-ro", f"{data}::/data", str(examples / "grep.wasm"),
                   "needle", "/data/in.txt")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"2:needle one\n"
    # copy.c creates the parent directory first, then opens the target with fopen("wb").
    proc = wasmtee("run", "--dir-ro", f"{data}::/data", str(examples / "copy.wasm"),
                   "/data/in.txt", "/data/out/copy.txt")
    assert proc.returncode == 1
    assert b"Operation not permitted" in proc.stderr
    assert sorted(path.name for path in data.rglob("*")) == before
    assert (data / "in.txt").read_bytes() == b"alpha\nneedle one\n"


ENVARGS = REPO / "examples" / "wasi" / "envargs.wasm"


@needs_engine
def test_empty_argv0_is_passed():
    proc = wasmtee("run", "--argv0", "", str(ENVARGS), "x")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[:2] == [b"argv[0]=", b"argv[1]=x"]


@pytest.mark.parametrize("args,named", [
    (["run", str(ENVARGS), "ok", "\udcff"], "guest argument 2 b'\\xff'"),
    (["run", "--env", "A=\udcff", str(ENVARGS)], "--env b'A=\\xff'"),
    (["run", "--argv0", "\udcff", str(ENVARGS)], "--argv0 b'\\xff'"),
    (["run", "--dir", f"{REPO}::/\udcfe", str(ENVARGS)], "--dir guest path b'/\\xfe'"),
])
def test_non_utf8_arguments_rejected(args, named):
    # Python's command line decodes the byte 0xff to the lone surrogate U+DCFF.
    proc = cli(*args)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert named in err
    assert "not valid UTF-8" in err
    assert "internal error" not in err


def test_non_utf8_argument_from_shell():
    proc = subprocess.run([os.fsencode(sys.executable), b"-m", b"wasmtee", b"run", os.fsencode(ENVARGS),
                           b"\xff"], capture_output=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    assert b"guest argument 1 b'\\xff' is not valid UTF-8" in proc.stderr


def test_dir_that_is_a_file_named():
    proc = cli("run", "--dir", str(ENVARGS), str(ENVARGS))
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "is not a directory" in err
    assert "not found" not in err


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_module_not_regular_file_rejected(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    proc = cli("run", path)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "not a regular file" in err


def test_module_directory_rejected():
    proc = cli("run", str(REPO))
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Is a directory" in err


def test_module_file_size_cap(tmp_path, monkeypatch):
    from wasmtee.cli import module_file

    monkeypatch.setattr(module_file, "MAX_MODULE_FILE_SIZE", 16)
    big = tmp_path / "big.wasm"
    big.write_bytes(b"\0asm\1\0\0\0" + bytes(9))
    with pytest.raises(UsageError) as info:
        module_file.read_module_file(str(big))
    assert "larger than 16 bytes" in str(info.value)
    big.write_bytes(bytes(16))
    assert module_file.read_module_file(str(big)) == bytes(16)


def test_huge_table_exits_1(tmp_path):
    # A table of 2^32-1 elements, as wasmtime's "out of memory" case.
    module = tmp_path / "bigtable.wasm"
    module.write_bytes(bytes.fromhex("0061736d01000000" "0408017000ffffffff0f"))
    proc = wasmtee("run", str(module))
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "4294967295 elements" in err
    assert "internal error" not in err


@needs_engine
@pytest.mark.parametrize("depth,status", [(3000, 0), (4000, 134)])
def test_max_call_depth_option(tmp_path, depth, status):
    wat = tmp_path / "recurse.wat"
    wat.write_text("""(module
      (func $down (export "down") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
          (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1))))))))""")
    proc = wasmtee("run", "--max-call-depth", "3500", "--invoke", "down", str(wat), str(depth))
    assert proc.returncode == status, proc.stderr
    if status == 0:
        assert proc.stdout == f"{depth}\n".encode()
    else:
        assert b"call stack exhausted" in proc.stderr


@needs_engine
def test_max_call_depth_raised_on_python_tier(tmp_path):
    wat = tmp_path / "recurse.wat"
    wat.write_text("""(module
      (func $down (export "down") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
          (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1))))))))""")
    proc = wasmtee("run", "--tier", "python", "--invoke", "down", str(wat), "15000")
    assert proc.returncode == 134
    proc = wasmtee("run", "--tier", "python", "--max-call-depth", "200000", "--invoke", "down",
                   str(wat), "150000")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"150000\n"


@pytest.mark.parametrize("value", ["0", "-5", "1000001", "1e4"])
def test_max_call_depth_bad_values(value):
    proc = cli("run", "--max-call-depth", value, "x.wasm")
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "--max-call-depth" in err
    assert repr(value) in err


def test_help_documents_max_call_depth():
    text = " ".join(cli("run", "--help").stdout.decode().split())
    assert "--max-call-depth N" in text
    assert "default: 10000" in text
    assert "1 GiB" in text


@needs_engine
def test_cwasm_with_python_tier_rejected(tmp_path):
    pytest.importorskip("llvmlite")
    artifact = tmp_path / "envargs.cwasm"
    proc = wasmtee("compile", str(ENVARGS), "-o", str(artifact))
    assert proc.returncode == 0, proc.stderr
    proc = wasmtee("run", "--tier", "python", str(artifact))
    assert proc.returncode == 2
    assert b"runs only on the llvm tier" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "wasmtee", "run", str(artifact), "a"],
                          capture_output=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1, proc.stderr
    assert b"argv[1]=a" in proc.stdout


FLOATS = """(module
  (func (export "id32") (param f32) (result f32) local.get 0)
  (func (export "id64") (param f64) (result f64) local.get 0)
  (func (export "neg32") (param f32) (result f32) local.get 0 f32.neg)
  (func (export "bits32") (param f32) (result i32) local.get 0 i32.reinterpret_f32)
  (func (export "bits64") (param f64) (result i64) local.get 0 i64.reinterpret_f64))"""


@needs_engine
@pytest.mark.parametrize("func,argument,printed", [
    ("id32", "0x1.8p1", "3.0"),
    ("id64", "1_000.5", "1000.5"),
    ("id64", "-inf", "-inf"),
    ("id32", "-nan", "-nan"),
    ("id32", "nan:0x200000", "nan:0x200000"),
    ("neg32", "nan", "-nan"),
    ("id64", "-nan:0x8000000000001", "-nan:0x8000000000001"),
    ("bits32", "-nan:0x1", str(0xFF80_0001 - (1 << 32))),
    ("bits64", "nan", str(0x7FF8_0000_0000_0000)),
    ("bits32", "0x1p-149", "1"),
])
def test_invoke_float_forms(tmp_path, func, argument, printed):
    wat = tmp_path / "floats.wat"
    wat.write_text(FLOATS)
    proc = wasmtee("run", "--invoke", func, str(wat), argument)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == printed + "\n"


@pytest.mark.parametrize("text", ["bogus", "1e39", "nan:0x0", "nan:0x800000", "0x"])
def test_invoke_bad_f32_rejected(text):
    with pytest.raises(UsageError) as info:
        parse_invoke_args(FuncType((ValType.F32,), ()), [text])
    assert repr(text) in str(info.value)


def test_enclave_empty_argv0_is_passed():
    proc = subprocess.run([sys.executable, "-m", "wasmtee", "run", "--enclave", "sim", "--argv0", "",
                           str(ENVARGS), "x"], capture_output=True, timeout=300, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[:2] == [b"argv[0]=", b"argv[1]=x"]


def test_enclave_non_utf8_argument_rejected():
    proc = cli("run", "--enclave", "sim", str(ENVARGS), "\udcff")
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "guest argument 1 b'\\xff' is not valid UTF-8" in err


@pytest.mark.parametrize("command", ["inspect", "invoke"])
def test_closed_stdout_exits_141_quietly(command, tmp_path):
    wat = tmp_path / "seven.wat"
    wat.write_text('(module (func (export "seven") (result i32) i32.const 7))')
    command = (["inspect", str(HELLO)] if command == "inspect"
               else ["run", "--tier", TIER, "--invoke", "seven", str(wat)])
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "wasmtee", *command], stdout=write_end,
                              stderr=subprocess.PIPE, timeout=60, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == b""
