"""Property tests for the binary decoder: hostile bytes never escape as crashes.

Random bytes, and mutations and truncations of well-formed modules, must either
decode or raise a WasmteeError subclass, in bounded time. Modules generated
by `wasm-tools smith` with only WebAssembly 2.0 features must always decode.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wasmtee.binary import decode_module, iter_sections
from wasmtee.errors import DecodeError, WasmteeError

HEADER = b"\0asm\x01\0\0\0"
MAX_SECONDS = 2.0

def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + _uleb(len(payload)) + payload


def _vec(*items: bytes) -> bytes:
    return _uleb(len(items)) + b"".join(items)


def _body(locals_and_code: bytes) -> bytes:
    return _uleb(len(locals_and_code)) + locals_and_code


def _build_seeds() -> list[bytes]:
    """Build well-formed modules to mutate (they need not validate).

    Together they contain every section kind, nested blocks, most immediate
    kinds, several segment encodings and a name section.
    """
    types = _section(1, _vec(b"\x60\x01\x7f\x01\x7f", b"\x60\x00\x00"))
    imports = _section(2, _vec(b"\x03env\x01f\x00\x00", b"\x03env\x01g\x03\x7e\x00"))
    funcs = _section(3, _vec(b"\x01", b"\x00"))
    tables = _section(4, _vec(b"\x70\x01\x00\x04"))
    mems = _section(5, _vec(b"\x01\x01\x02"))
    globals_ = _section(6, _vec(b"\x7f\x01\x41\x07\x0b", b"\x7d\x00\x43\x00\x00\xc0\x7f\x0b"))
    exports = _section(7, _vec(b"\x04main\x00\x01", b"\x03mem\x02\x00"))
    start = _section(8, b"\x01")
    elems = _section(9, _vec(b"\x00\x41\x00\x0b\x01\x01", b"\x05\x70\x01\xd0\x70\x0b",
                             b"\x03\x00\x01\x02"))
    data_count = _section(12, b"\x02")
    body0 = (b"\x00"
             b"\x02\x40\x41\x01\x04\x40\x41\x02\x1a\x05\x41\x03\x1a\x0b\x0b"
             b"\x41\x00\x28\x02\x0c\x1a"
             b"\x02\x40\x41\x00\x0e\x01\x00\x00\x0b"
             b"\xfc\x09\x00\x44" + bytes(8) + b"\x1a\x0b")
    body1 = (b"\x01\x02\x7e"
             b"\x20\x00\x41\x05\x6a\x21\x00"
             b"\x41\x00\x41\x00\x41\x00\xfc\x08\x01\x00"
             b"\x42\x7f\x22\x01\x1a\x41\x00\x11\x00\x00\x0b")
    code = _section(10, _vec(_body(body1), _body(body0)))
    datas = _section(11, _vec(b"\x00\x41\x10\x0b\x03abc", b"\x01\x02\xff\x00"))
    names = _section(0, b"\x04name" + _section(0, b"\x01m")
                     + _section(1, _vec(b"\x01\x04main"))
                     + _section(2, _vec(b"\x01" + _vec(b"\x00\x01p"))))
    full = HEADER + b"".join([types, imports, funcs, tables, mems, globals_, exports,
                              start, elems, data_count, code, datas, names])
    small = HEADER + _section(1, _vec(b"\x60\x00\x00")) + _section(3, _vec(b"\x00")) \
        + _section(10, _vec(_body(b"\x00\x41\x01\x1a\x0b")))
    return [full, small]


SEEDS = _build_seeds()


def _decode_bounded(data: bytes) -> None:
    """Decode `data`, allowing only WasmteeError with an offset inside the input.

    Fail if decoding takes too long.
    """
    started = time.perf_counter()
    try:
        decode_module(data)
    except DecodeError as exc:
        assert exc.offset is not None
        assert 0 <= exc.offset <= len(data)
    except WasmteeError:
        pass
    elapsed = time.perf_counter() - started
    assert elapsed < MAX_SECONDS, f"decoding {len(data)} bytes took {elapsed:.2f} s"


def test_seeds_decode():
    for seed in SEEDS:
        decoded = decode_module(seed)
        assert decoded.funcs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _decode_bounded(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_after_header(payload):
    _decode_bounded(HEADER + payload)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 13), st.binary(max_size=60)), max_size=6))
def test_random_sections(sections):
    data = HEADER + b"".join(_section(section_id, payload) for section_id, payload in sections)
    _decode_bounded(data)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_byte_replacements(seed, replacements):
    data = bytearray(seed)
    for position, value in replacements:
        data[position % len(data)] = value
    _decode_bounded(bytes(data))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=8),
    st.booleans(),
)
def test_insertions_and_deletions(seed, position, chunk, insert):
    position %= len(seed)
    if insert:
        data = seed[:position] + chunk + seed[position:]
    else:
        data = seed[:position] + seed[position + len(chunk):]
    _decode_bounded(data)


@pytest.mark.parametrize("seed_index", range(len(SEEDS)))
def test_every_truncation(seed_index):
    seed = SEEDS[seed_index]
    boundaries = {len(HEADER)} | {
        section.content_offset + section.size for section in iter_sections(seed)}
    for cut in range(len(seed)):
        try:
            decode_module(seed[:cut])
        except DecodeError:
            continue
        # A cut between two sections leaves a shorter module, which may be valid.
        assert cut in boundaries, f"a truncation at byte {cut} decoded"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 0xFFFF_FFFF))
def test_huge_declared_counts(tail, count):
    for section_id in (1, 2, 3, 4, 5, 6, 7, 9, 10, 11):
        _decode_bounded(HEADER + bytes([section_id]) + _uleb(len(tail) + 5)
                        + _uleb(count) + tail)


SMITH_FLAGS = [
    "--exceptions-enabled", "false", "--gc-enabled", "false",
    "--compact-imports-enabled", "false", "--custom-descriptors-enabled", "false",
    "--custom-page-sizes-enabled", "false", "--memory64-enabled", "false",
    "--relaxed-simd-enabled", "false", "--shared-everything-threads-enabled", "false",
    "--simd-enabled", "false", "--tail-call-enabled", "false",
    "--threads-enabled", "false", "--wide-arithmetic-enabled", "false",
    "--max-memories", "1",
]


@pytest.mark.skipif(shutil.which("wasm-tools") is None,
                    reason="the wasm-tools CLI is not installed")
@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=64, max_size=4000), st.booleans())
def test_smith_modules_decode(seed, overlong_leb):
    flags = SMITH_FLAGS + (["--min-uleb-size", "5"] if overlong_leb else [])
    result = subprocess.run(["wasm-tools", "smith", *flags], input=seed,
                            capture_output=True, check=False)
    if result.returncode != 0:
        return  # smith could not build a module from this seed
    decoded = decode_module(result.stdout)
    sections = {section.name: section for section in iter_sections(result.stdout)}
    assert ("code" in sections) == bool(decoded.funcs)
    for function in decoded.funcs:
        assert function.body[-1].op == 0x0B
