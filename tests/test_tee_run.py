"""`wasmtee run --enclave sim`: WASI commands inside a simulated enclave, through the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GUEST_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("hello from the enclave\n");
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    const char *greeting = getenv("GREETING");
    printf("GREETING=%s\n", greeting ? greeting : "(unset)");
    fprintf(stderr, "diagnostic on stderr\n");
    if (argc > 2 && strcmp(argv[1], "write") == 0) {
        FILE *file = fopen("/data/secret.txt", "w");
        if (!file) { perror("fopen for writing"); return 10; }
        fputs(argv[2], file);
        fclose(file);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "read") == 0) {
        char buffer[256] = {0};
        FILE *file = fopen("/data/secret.txt", "r");
        if (!file) { perror("fopen for reading"); return 11; }
        fgets(buffer, sizeof buffer, file);
        fclose(file);
        printf("read: %s\n", buffer);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "cat") == 0) {
        int c;
        while ((c = getchar()) != EOF) putchar(c);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
    if (argc > 1 && strcmp(argv[1], "trap") == 0) __builtin_trap();
    if (argc > 1 && strcmp(argv[1], "count") == 0) {
        long count = 0;
        while (getchar() != EOF) count++;
        printf("read %ld bytes\n", count);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "flood") == 0) {
        static char block[65536];
        memset(block, 'x', sizeof block);
        for (long left = atol(argv[2]); left > 0; left -= sizeof block)
            fwrite(block, 1, left < (long)sizeof block ? (size_t)left : sizeof block, stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "spin") == 0) {
        volatile unsigned long counter = 0;
        for (;;) counter++;
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("guest")
    source = directory / "guest.c"
    source.write_text(GUEST_C)
    output = directory / "guest.wasm"
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-O2",
                    str(source), "-o", str(output)], check=True, capture_output=True)
    return output


@pytest.fixture(scope="module")
def state_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


def run_cli(state_home: Path, *argv: str, stdin: bytes = b"",
            path: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, XDG_STATE_HOME=str(state_home), PYTHONPATH=str(ROOT))
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "wasmtee", "run", *argv], env=env,
                          capture_output=True, timeout=120, input=stdin)


def test_hello_forwards_args_env_stdio(guest, state_home):
    result = run_cli(state_home, "--enclave", "sim", "--env", "GREETING=hi", str(guest),
                     "one", "two words")
    assert result.returncode == 0, result.stderr
    stdout = result.stdout.decode()
    assert "hello from the enclave\n" in stdout
    assert "argv[0]=guest.wasm\n" in stdout
    assert "argv[1]=one\n" in stdout
    assert "argv[2]=two words\n" in stdout
    assert "GREETING=hi\n" in stdout
    assert b"diagnostic on stderr\n" in result.stderr


def test_host_environment_not_passed(guest, state_home):
    result = run_cli(state_home, "--enclave", "sim", str(guest))
    assert result.returncode == 0, result.stderr
    assert "GREETING=(unset)\n" in result.stdout.decode()


@pytest.mark.parametrize("code,status", [(0, 0), (3, 3), (125, 125), (255, 1)])
def test_exit_code_returned(guest, state_home, code, status):
    result = run_cli(state_home, "--enclave", "sim", str(guest), "exit", str(code))
    assert result.returncode == status, result.stderr
    if code != status:
        # As in plain `wasmtee run` and `wasmtime run`, codes above 125 are an error.
        assert f"exited with code {code},".encode() in result.stderr


def test_trap_exits_134(guest, state_home):
    result = run_cli(state_home, "--enclave", "sim", str(guest), "trap")
    assert result.returncode == 134
    assert b"trap inside the enclave" in result.stderr


def test_bad_module_clear_error(tmp_path, state_home):
    module = tmp_path / "bad.wasm"
    module.write_bytes(b"\x00asm\x01\x00\x00\x00\x01\xff")
    result = run_cli(state_home, "--enclave", "sim", str(module))
    assert result.returncode == 1
    assert b"the enclave rejected" in result.stderr
    assert b"bad.wasm" in result.stderr
    assert b"Traceback" not in result.stderr


def test_missing_module_usage_error(tmp_path, state_home):
    result = run_cli(state_home, "--enclave", "sim", str(tmp_path / "absent.wasm"))
    assert result.returncode == 2
    assert b"cannot read module" in result.stderr


@pytest.mark.parametrize("options", [["--invoke", "f"], ["--fuel", "10"], ["--dir-ro", "."],
                                     ["--tier", "llvm"], ["--max-memory", "1M"]])
def test_unsupported_option_rejected(guest, state_home, options):
    result = run_cli(state_home, "--enclave", "sim", *options, str(guest))
    assert result.returncode == 2
    assert b"not supported with --enclave" in result.stderr


def test_dir_is_protected_storage(guest, state_home, tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    secret = "launch code 0451 for the enclave"
    spec = f"{storage}::/data"
    written = run_cli(state_home, "--enclave", "sim", "--dir", spec, str(guest), "write", secret)
    assert written.returncode == 0, written.stderr
    stored = [path for path in storage.rglob("*") if path.is_file()]
    assert stored, "the protected file left nothing in the host directory"
    for path in stored:
        assert secret.encode() not in path.read_bytes(), path
    read = run_cli(state_home, "--enclave", "sim", "--dir", spec, str(guest), "read")
    assert read.returncode == 0, read.stderr
    assert f"read: {secret}\n" in read.stdout.decode()


def test_two_dirs_rejected(guest, state_home, tmp_path):
    result = run_cli(state_home, "--enclave", "sim", "--dir", str(tmp_path), "--dir",
                     str(tmp_path), str(guest))
    assert result.returncode == 2
    assert b"one --dir" in result.stderr


def test_stdin_forwarded(guest, state_home):
    data = b"line one\nline two with \xc3\xa9\n"
    result = run_cli(state_home, "--enclave", "sim", str(guest), "cat", stdin=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(data)


def test_gramine_missing_clear_error(guest, state_home, tmp_path):
    # An empty PATH makes sure gramine-sgx cannot be found.
    result = run_cli(state_home, "--enclave", "gramine", str(guest), path=str(tmp_path))
    assert result.returncode == 1
    assert b"gramine-sgx" in result.stderr
    assert b"Traceback" not in result.stderr


def test_timeout_interrupts_guest(guest, state_home):
    result = run_cli(state_home, "--enclave", "sim", "--timeout", "1", str(guest), "spin")
    assert result.returncode == 134
    assert b"trap inside the enclave" in result.stderr


def test_timeout_above_max_rejected(guest, state_home):
    result = run_cli(state_home, "--enclave", "sim", "--timeout", "7200", str(guest))
    assert result.returncode == 2
    assert b"--timeout 7200" in result.stderr


MIB = 1024 * 1024


def test_aot_artifact_rejected(guest, state_home, tmp_path):
    artifact = tmp_path / "guest.cwasm"
    compiled = subprocess.run([sys.executable, "-m", "wasmtee", "compile", "--no-progress",
                               str(guest), "-o", str(artifact)], capture_output=True,
                              timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if compiled.returncode != 0 and b"llvm" in compiled.stderr:
        pytest.skip("the llvm tier is unavailable, so no artifact can be made")
    assert compiled.returncode == 0, compiled.stderr
    result = run_cli(state_home, "--enclave", "sim", str(artifact))
    assert result.returncode == 2
    assert b"AOT artifacts cannot run in an enclave" in result.stderr
    assert b"UTF-8" not in result.stderr


def test_large_stdin_streamed_whole(guest, state_home):
    # Above the 32 MiB ECALL message cap, so only reads through OCALLs carry it.
    size = 40_000_000
    result = run_cli(state_home, "--enclave", "sim", str(guest), "count", stdin=bytes(size))
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.endswith(f"read {size} bytes\n".encode())


def test_sigint_while_guest_waits_for_stdin(guest, state_home):
    env = dict(os.environ, XDG_STATE_HOME=str(state_home), PYTHONPATH=str(ROOT))
    read_end, write_end = os.pipe()
    try:
        host = subprocess.Popen([sys.executable, "-m", "wasmtee", "run", "--enclave", "sim",
                                 str(guest), "cat"], env=env, stdin=read_end,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(read_end)
        os.write(write_end, b"first line\n")
        assert host.stderr is not None
        assert host.stderr.readline() == b"diagnostic on stderr\n"
        host.send_signal(signal.SIGINT)
        _, stderr = host.communicate(timeout=30)
    finally:
        os.close(write_end)
        host.kill()
    assert host.returncode == 130, stderr
    assert b"wasmtee run: interrupted" in stderr
    assert b"Traceback" not in stderr


def test_large_stdout_streamed_whole(guest, state_home):
    size = 17 * MIB
    result = run_cli(state_home, "--enclave", "sim", str(guest), "flood", str(size))
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.startswith(b"hello from the enclave\n")
    assert result.stdout.endswith(b"x" * 1000)
    assert result.stdout.count(b"x") == size
    assert b"dropped" not in result.stderr


def test_closed_stdout_pipe_ends_guest(guest, state_home):
    env = dict(os.environ, XDG_STATE_HOME=str(state_home), PYTHONPATH=str(ROOT))
    host = subprocess.Popen([sys.executable, "-m", "wasmtee", "run", "--enclave", "sim",
                             str(guest), "flood", str(1024 * MIB)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert host.stdout is not None
    try:
        assert host.stdout.read(10) == b"hello from"
        host.stdout.close()
        _, stderr = host.communicate(timeout=120)
    finally:
        host.kill()
    assert host.returncode == 0, stderr
    assert b"Traceback" not in stderr


def test_captured_stdout_reports_dropped_bytes(guest, state_home):
    from wasmtee.tee.enclave import Enclave

    with Enclave(backend="sim", state_dir=state_home / "sim") as enclave:
        module = enclave.load_module(guest.read_bytes())
        result = enclave.run_wasi(module, ["guest", "flood", str(17 * MIB)])
    assert result.exit_code == 0
    assert len(result.stdout) == 16 * MIB
    kept_floods = result.stdout.count(b"x")
    assert result.stdout_dropped == 17 * MIB - kept_floods
    assert result.stderr_dropped == 0


def test_streamed_output_reaches_streams(guest, state_home):
    import io

    from wasmtee.tee.enclave import Enclave

    stdout, stderr = io.BytesIO(), io.BytesIO()
    with Enclave(backend="sim", state_dir=state_home / "sim") as enclave:
        module = enclave.load_module(guest.read_bytes())
        result = enclave.run_wasi(module, ["guest", "exit", "4"], stdout=stdout, stderr=stderr)
    assert result.exit_code == 4
    assert result.stdout == b""
    assert stdout.getvalue().startswith(b"hello from the enclave\n")
    assert stderr.getvalue() == b"diagnostic on stderr\n"


def test_oversized_ecall_leaves_enclave_usable(guest, state_home):
    from wasmtee.tee.enclave import Enclave, MessageTooLargeError

    with Enclave(backend="sim", state_dir=state_home / "sim") as enclave:
        module = enclave.load_module(guest.read_bytes())
        with pytest.raises(MessageTooLargeError) as info:
            enclave.run_wasi(module, ["guest", "cat"], stdin=bytes(33 * MIB))
        assert info.value.op == "run_wasi"
        assert info.value.limit == 32 * MIB
        result = enclave.run_wasi(module, ["guest", "cat"], stdin=b"still alive\n")
    assert result.exit_code == 0
    assert result.stdout.endswith(b"still alive\n")


def start_spinning(state_home: Path, guest: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start `wasmtee run --enclave sim GUEST spin`; return it and the enclave's process id."""
    env = dict(os.environ, XDG_STATE_HOME=str(state_home), PYTHONPATH=str(ROOT))
    host = subprocess.Popen([sys.executable, "-m", "wasmtee", "run", "--enclave", "sim",
                             str(guest), "spin"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    children: list[str] = []
    while not children and time.monotonic() < deadline:
        time.sleep(0.2)
        listing = subprocess.run(["ps", "-o", "pid=", "--ppid", str(host.pid)],
                                 capture_output=True, text=True)
        children = listing.stdout.split()
    assert children, "the enclave process did not start"
    # The guest writes this line to its unbuffered stderr just before it spins,
    # and the enclave streams it to the host's stderr.
    assert host.stderr is not None
    assert host.stderr.readline() == b"diagnostic on stderr\n"
    return host, int(children[0])


def process_running(pid: int) -> bool:
    """Return whether `pid` exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while process_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_sigint_interrupts_enclave_guest(guest, state_home):
    host, child = start_spinning(state_home, guest)
    try:
        host.send_signal(signal.SIGINT)
        _, stderr = host.communicate(timeout=30)
        assert host.returncode == 130, stderr
        assert b"wasmtee run: interrupted" in stderr
        assert b"Traceback" not in stderr
        assert wait_gone(child, 10)
    finally:
        host.kill()
        if process_running(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_host_ends_enclave(guest, state_home, signum):
    host, child = start_spinning(state_home, guest)
    try:
        host.send_signal(signum)
        host.wait(timeout=30)
        assert host.returncode == -signum
        assert wait_gone(child, 10), "the enclave process outlived its host"
    finally:
        host.kill()
        if process_running(child):
            os.kill(child, signal.SIGKILL)
