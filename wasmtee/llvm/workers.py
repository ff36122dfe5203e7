"""Compile IR chunks in worker processes, so LLVM uses every core.

llvmlite serialises all calls into LLVM behind one process-wide lock, so
threads cannot compile in parallel. Each worker is a child process running
`workers.main` from the parent's wasmtee package, which reads jobs on its
standard input and writes object files to its standard output. The parent keeps lowering the next
chunks to IR text while the workers compile earlier ones.

Frames, all integers little-endian:

    job:    u32 opt level, u32 CPU name length, u64 IR length, CPU name, IR text
    result: u32 status (0 ok, 1 error), u64 length, object file or UTF-8 message

Workers are started with subprocess rather than multiprocessing, because the
spawn and forkserver start methods import the parent's __main__ module again,
which reruns scripts that lack an `if __name__ == "__main__"` guard.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Callable, Iterable

from wasmtee.errors import CompileError

log = logging.getLogger(__name__)

JOB = struct.Struct("<IIQ")
RESULT = struct.Struct("<IQ")
STATUS_OK = 0
STATUS_ERROR = 1

# Upper bound on workers, so a many-core host does not hold many copies of LLVM.
MAX_WORKERS = 8


class WorkerUnavailable(CompileError):
    """A worker process could not run at all, for example because the worker module fails to import.

    The caller may compile in its own process instead. A worker that crashes
    while compiling raises a plain CompileError, because LLVM would crash the
    same way in the caller's process.
    """


def default_worker_count() -> int:
    """Return the number of workers: WASMTEE_COMPILE_WORKERS, else the usable cores (at most MAX_WORKERS)."""
    text = os.environ.get("WASMTEE_COMPILE_WORKERS", "").strip()
    if text:
        try:
            count = int(text)
        except ValueError:
            raise CompileError(
                f"invalid WASMTEE_COMPILE_WORKERS {text!r} (expected a number of processes, 0 to compile in process)"
            ) from None
        return max(0, count)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return min(cores, MAX_WORKERS)


def read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """Read `size` bytes, or return None at end of file."""
    chunks = []
    while size:
        data = stream.read(size)
        if not data:
            return None
        chunks.append(data)
        size -= len(data)
    return b"".join(chunks)


# Imports the parent's own wasmtee package by path, so the worker runs the same
# compiler even when another wasmtee is installed, without putting a
# directory such as site-packages ahead of the standard library on sys.path.
WORKER_BOOTSTRAP = """
import importlib.util, os, sys
package = sys.argv[1]
spec = importlib.util.spec_from_file_location(
    "wasmtee", os.path.join(package, "__init__.py"), submodule_search_locations=[package])
module = importlib.util.module_from_spec(spec)
sys.modules["wasmtee"] = module
spec.loader.exec_module(module)
from wasmtee.llvm.workers import main
main()
"""


class Worker:
    """One child process and the thread that feeds it jobs."""

    def __init__(self, jobs: queue.Queue, results: queue.Queue) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", WORKER_BOOTSTRAP, str(Path(__file__).resolve().parents[1])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.jobs = jobs
        self.results = results
        self.completed = 0
        self.thread = threading.Thread(target=self.serve, name="wasmtee-llvm-worker", daemon=True)
        self.thread.start()

    def serve(self) -> None:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        while True:
            job = self.jobs.get()
            if job is None:
                return
            index, ir, opt_level, cpu = job
            try:
                cpu_bytes = (cpu or "").encode()
                ir_bytes = ir.encode()
                stdin.write(JOB.pack(opt_level, len(cpu_bytes), len(ir_bytes)) + cpu_bytes)
                stdin.write(ir_bytes)
                stdin.flush()
                header = read_exactly(stdout, RESULT.size)
                if header is None:
                    raise CompileError("end of output")
                status, length = RESULT.unpack(header)
                payload = read_exactly(stdout, length)
                if payload is None:
                    raise CompileError("end of output")
                self.completed += 1
                if status == STATUS_OK:
                    self.results.put((index, payload))
                else:
                    self.results.put((index, CompileError(payload.decode("utf-8", "replace"))))
            except (OSError, ValueError, CompileError) as exc:
                # ValueError: the parent closed the pipes while this job ran.
                self.results.put((index, self.failure(exc)))
                return

    def failure(self, exc: BaseException) -> CompileError:
        """Describe why this worker stopped, as WorkerUnavailable when it never worked."""
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        if self.completed == 0 and status is not None and status > 0:
            return WorkerUnavailable(f"LLVM worker process exited with status {status} before its first job")
        if status is not None and status < 0:
            return CompileError(f"LLVM worker process was killed by signal {-status} while compiling")
        return CompileError(f"LLVM worker process failed: {exc}")

    def close(self) -> None:
        """Stop the process: end of input makes it exit after its current job."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.thread.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def compile_in_workers(
    irs: Iterable[str],
    total: int,
    opt_level: int,
    cpu: str | None,
    worker_count: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[bytes]:
    """Compile each IR text in `irs` to an object file, in order, with `worker_count` processes.

    `irs` is consumed lazily, so lowering overlaps with compilation and at most
    two chunks per worker wait in memory. Raises CompileError when LLVM rejects
    a chunk or a worker fails.
    """
    jobs: queue.Queue = queue.Queue(maxsize=worker_count)
    results: queue.Queue = queue.Queue()
    workers = [Worker(jobs, results) for _ in range(worker_count)]
    objects: list[bytes] = [b""] * total
    done = 0

    def receive(timeout: float) -> None:
        nonlocal done
        try:
            index, result = results.get(timeout=timeout)
        except queue.Empty:
            if not any(worker.thread.is_alive() for worker in workers) and results.empty():
                raise CompileError("every LLVM worker process has stopped") from None
            return
        if isinstance(result, BaseException):
            raise result
        objects[index] = result
        done += 1
        if progress is not None:
            progress(done, total)

    try:
        for index, ir in enumerate(irs):
            while True:
                try:
                    jobs.put((index, ir, opt_level, cpu), timeout=0.05)
                    break
                except queue.Full:
                    receive(timeout=0.05)
        while done < total:
            receive(timeout=0.5)
    finally:
        # Drop jobs still queued so every thread reaches its stop marker.
        try:
            while True:
                jobs.get_nowait()
        except queue.Empty:
            pass
        for _ in workers:
            jobs.put(None)
        for worker in workers:
            worker.close()
    return objects


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Run the worker loop: compile each job from `stdin` and write its result to `stdout`."""
    from wasmtee.llvm.jit import compile_ir

    while True:
        header = read_exactly(stdin, JOB.size)
        if header is None:
            return
        opt_level, cpu_length, ir_length = JOB.unpack(header)
        cpu = (read_exactly(stdin, cpu_length) or b"").decode() if cpu_length else None
        ir = read_exactly(stdin, ir_length)
        if ir is None:
            return
        try:
            code = compile_ir(ir.decode(), opt_level, cpu)
            stdout.write(RESULT.pack(STATUS_OK, len(code)) + code)
        except CompileError as exc:
            message = str(exc).encode()
            stdout.write(RESULT.pack(STATUS_ERROR, len(message)) + message)
        stdout.flush()


def main() -> None:
    # The parent handles Ctrl-C and closes the pipe, which ends this loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Results go to a private copy of standard output, and file descriptor 1
    # points at standard error, so nothing that LLVM prints can corrupt a frame.
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, results)


if __name__ == "__main__":
    main()
