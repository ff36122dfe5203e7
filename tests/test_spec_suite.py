"""The official spec test suite's WebAssembly 2.0 scripts, run through the WAST runner.

The suite is fetched outside the repository. Set WASMTEE_SPEC_TESTSUITE to its
directory (default /work/ext/testsuite) and WASMTEE_SPEC_FILES to a file that
lists the scripts to run, one name a line (default: wasm2-files.txt next to
the suite). The tests skip when either is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wasmtee.script.runner import run_script_file

SUITE = Path(os.environ.get("WASMTEE_SPEC_TESTSUITE", "/work/ext/testsuite"))
FILE_LIST = Path(
    os.environ.get("WASMTEE_SPEC_FILES", str(SUITE.parent / "wasm2-files.txt"))
)


def _spec_files() -> list[str]:
    if not SUITE.is_dir() or not FILE_LIST.is_file():
        return []
    return [name for name in FILE_LIST.read_text().split() if name.endswith(".wast")]


SPEC_FILES = _spec_files()


@pytest.mark.skipif(not SPEC_FILES, reason=f"spec test suite not found at {SUITE}")
@pytest.mark.parametrize("name", SPEC_FILES or ["none"])
def test_spec_script(name):
    summary = run_script_file(SUITE / name, tier="python")
    failures = "\n".join(str(failure) for failure in summary.failures[:20])
    assert summary.failed == 0, f"{summary.line()}\n{failures}"
