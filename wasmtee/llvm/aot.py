"""Ahead-of-time artifacts (.cwasm) and the on-disk JIT cache.

An artifact is the source module plus the native object files that the LLVM
tier produced for it. Layout (all integers little-endian):

    8 bytes   magic b"WTEECWSM"
    4 bytes   format version
    4 bytes   header length H
    H bytes   header, JSON (see `ArtifactHeader`)
    32 bytes  HMAC-SHA256 over everything before it and the payload
    payload   the wasm module, then each object file, with lengths in the header

The header records the format version, wasmtee version, target triple, CPU
name and features, the source module's SHA-256 and the compile options. A file
whose header does not match this process, or whose MAC does not verify, raises
`CompileError` and none of its code is loaded. The MAC key lives in the user's
state directory, so an artifact written on one machine loads only where that
key is present: copy the key along with the file to share artifacts.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from wasmtee.errors import CompileError
from wasmtee.llvm import lower

log = logging.getLogger(__name__)

MAGIC = b"WTEECWSM"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")
MAC_SIZE = 32
# Upper bound for a header, so a corrupt length cannot make the loader read gigabytes.
MAX_HEADER = 1 << 20


@dataclass
class ArtifactHeader:
    format_version: int
    wasmtee_version: str
    target_triple: str
    cpu_name: str
    cpu_features: str
    module_sha256: str
    opt_level: int
    consume_fuel: bool
    interruptible: bool
    wasm_length: int
    object_lengths: list[int]
    count_depth: bool = False
    compiler_fingerprint: str = ""


def wasmtee_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("wasmtee")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@functools.cache
def compiler_fingerprint() -> str:
    """Return a hash of the code that decides the native ABI (lowering and context layout).

    Artifacts and cache entries record it, so code from a changed compiler,
    even under the same wasmtee version, is never loaded.
    """
    digest = hashlib.sha256()
    for name in ("lower.py", "jit.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:32]


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "wasmtee"


def mac_key() -> bytes:
    """Return this user's artifact MAC key, creating it with mode 0600 on first use."""
    path = state_dir() / "aot.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def host_identity() -> tuple[str, str, str]:
    import llvmlite.binding as llvm

    from wasmtee.llvm.jit import _initialize_llvm

    _initialize_llvm()
    return llvm.get_default_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


# Features that the portable x86-64 micro-architecture levels guarantee, so an
# artifact built for one of them loads on any host that has these features.
PORTABLE_CPU_FEATURES = {
    "generic": "",
    "x86-64": "",
    "x86-64-v2": "+cx16,+popcnt,+sse3,+sse4.1,+sse4.2,+ssse3",
    "x86-64-v3": "+avx,+avx2,+bmi,+bmi2,+cx16,+f16c,+fma,+lzcnt,+movbe,+popcnt,+sse3,+sse4.1,+sse4.2,+ssse3",
    "x86-64-v4": "+avx,+avx2,+avx512bw,+avx512cd,+avx512dq,+avx512f,+avx512vl,+bmi,+bmi2,+cx16,+f16c,"
                 "+fma,+lzcnt,+movbe,+popcnt,+sse3,+sse4.1,+sse4.2,+ssse3",
}


def target_identity(cpu: str | None) -> tuple[str, str, str]:
    """Return (triple, CPU name, CPU features) for code compiled for `cpu` (None: this host)."""
    triple, host_cpu, host_features = host_identity()
    if cpu is None or cpu == host_cpu:
        return triple, host_cpu, host_features
    return triple, cpu, PORTABLE_CPU_FEATURES.get(cpu, "")


def write_artifact(wasm: bytes, objects: list[bytes], options: lower.Options, opt_level: int,
                   cpu: str | None = None) -> bytes:
    triple, cpu_name, features = target_identity(cpu)
    header = ArtifactHeader(
        format_version=FORMAT_VERSION,
        wasmtee_version=wasmtee_version(),
        target_triple=triple,
        cpu_name=cpu_name,
        cpu_features=features,
        module_sha256=hashlib.sha256(wasm).hexdigest(),
        opt_level=opt_level,
        consume_fuel=options.consume_fuel,
        interruptible=options.interruptible,
        count_depth=options.count_depth,
        compiler_fingerprint=compiler_fingerprint(),
        wasm_length=len(wasm),
        object_lengths=[len(code) for code in objects],
    )
    header_bytes = json.dumps(asdict(header), sort_keys=True).encode()
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)) + header_bytes
    payload = wasm + b"".join(objects)
    tag = hmac.new(mac_key(), prefix + payload, hashlib.sha256).digest()
    return prefix + tag + payload


def is_artifact(data: bytes) -> bool:
    return data[:8] == MAGIC


def read_artifact(data: bytes) -> tuple[ArtifactHeader, bytes, list[bytes]]:
    """Check an artifact and return its header, wasm module and object files.

    Raises CompileError naming the mismatch for a file from another version,
    target or CPU, and for any file whose MAC does not verify.
    """
    if not is_artifact(data):
        raise CompileError("not a wasmtee AOT artifact (bad magic)")
    if len(data) < _PREFIX.size:
        raise CompileError(f"AOT artifact is truncated ({len(data)} bytes, "
                           f"shorter than its {_PREFIX.size}-byte prefix)")
    _, version, header_length = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CompileError(f"unsupported AOT format version {version} (expected {FORMAT_VERSION})")
    if header_length > MAX_HEADER or _PREFIX.size + header_length + MAC_SIZE > len(data):
        raise CompileError(f"AOT artifact is truncated (header length {header_length})")
    header_end = _PREFIX.size + header_length
    prefix = data[:header_end]
    tag = data[header_end:header_end + MAC_SIZE]
    payload = data[header_end + MAC_SIZE:]
    expected = hmac.new(mac_key(), prefix + payload, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise CompileError("AOT artifact failed its integrity check (tampered, or made with another key)")
    try:
        header = ArtifactHeader(**json.loads(data[_PREFIX.size:header_end]))
    except (ValueError, TypeError) as exc:
        raise CompileError(f"AOT artifact has an invalid header: {exc}") from None
    check_compatible(header)
    if header.wasm_length + sum(header.object_lengths) != len(payload):
        raise CompileError("AOT artifact payload length does not match its header")
    wasm = payload[:header.wasm_length]
    if hashlib.sha256(wasm).hexdigest() != header.module_sha256:
        raise CompileError("AOT artifact module hash does not match its header")
    objects = []
    position = header.wasm_length
    for length in header.object_lengths:
        objects.append(payload[position:position + length])
        position += length
    return header, wasm, objects


def check_compatible(header: ArtifactHeader) -> None:
    triple, cpu_name, features = host_identity()
    version = wasmtee_version()
    if header.wasmtee_version != version:
        raise CompileError(
            f"AOT artifact was made by wasmtee {header.wasmtee_version}, this is {version}: recompile it"
        )
    if header.compiler_fingerprint != compiler_fingerprint():
        raise CompileError(
            "AOT artifact was made by a different build of the llvm tier "
            f"(compiler {header.compiler_fingerprint or 'unknown'}): recompile it"
        )
    if header.target_triple != triple:
        raise CompileError(f"AOT artifact targets {header.target_triple}, this host is {triple}")
    if header.cpu_name != cpu_name and header.cpu_name not in PORTABLE_CPU_FEATURES:
        # The features of a named CPU other than this host's are unknown here.
        raise CompileError(
            f"AOT artifact targets CPU {header.cpu_name}, this host is {cpu_name}: "
            "recompile it here, or with --target-cpu x86-64-v2 (or another portable level)"
        )
    missing = set(header.cpu_features.split(",")) - set(features.split(","))
    enabled_missing = sorted(f for f in missing if f.startswith("+"))
    if enabled_missing:
        raise CompileError(
            f"AOT artifact needs CPU features this host lacks: {', '.join(enabled_missing[:8])}"
        )


def cache_path(wasm: bytes, options: lower.Options, opt_level: int) -> Path:
    triple, cpu_name, features = host_identity()
    key = hashlib.sha256()
    for part in (wasm, wasmtee_version().encode(), compiler_fingerprint().encode(), triple.encode(), cpu_name.encode(),
                 features.encode(), repr((options.consume_fuel, options.interruptible, options.count_depth, opt_level)).encode()):
        key.update(hashlib.sha256(part).digest())
    return state_dir() / "cache" / f"{key.hexdigest()}.cwasm"


def load_cached(wasm: bytes, options: lower.Options, opt_level: int) -> list[bytes] | None:
    path = cache_path(wasm, options, opt_level)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        header, cached_wasm, objects = read_artifact(data)
    except CompileError as exc:
        log.warning("ignoring JIT cache entry %s: %s", path, exc)
        return None
    # A valid entry copied to another module's path must not run for it,
    # because callers skip validating `wasm` on a hit.
    settings = (options.consume_fuel, options.interruptible, options.count_depth, opt_level)
    if cached_wasm != wasm or settings != (header.consume_fuel, header.interruptible,
                                           header.count_depth, header.opt_level):
        log.warning("ignoring JIT cache entry %s: it was made for another module or settings", path)
        return None
    log.info("loaded native code from the JIT cache (%s)", path.name)
    return objects


def store_cached(wasm: bytes, objects: list[bytes], options: lower.Options, opt_level: int) -> None:
    path = cache_path(wasm, options, opt_level)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_bytes(write_artifact(wasm, objects, options, opt_level))
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("could not write the JIT cache entry %s: %s", path, exc)


ProgressCallback = Callable[[int, int], None]


def compile_artifact(wasm: bytes, opt_level: int | None = None, consume_fuel: bool = False,
                     interruptible: bool = False, progress: ProgressCallback | None = None,
                     cpu: str | None = None) -> bytes:
    """Decode, validate and compile a module, returning the artifact's bytes.

    `opt_level` None picks the level by module size (see `jit.choose_opt_level`).
    `cpu` is an LLVM CPU name (None: this host's CPU with all its features).
    Raises DecodeError, ValidationError or CompileError.
    """
    from wasmtee.binary import decode_module
    from wasmtee.llvm.jit import choose_opt_level, compile_objects
    from wasmtee.valid import validate_module

    module = decode_module(wasm)
    info = validate_module(module)
    opt_level = choose_opt_level(module, opt_level)
    options = lower.Options(consume_fuel=consume_fuel, interruptible=interruptible)
    objects = compile_objects(module, list(info.func_types), options, opt_level, cpu=cpu, progress=progress)
    return write_artifact(wasm, objects, options, opt_level, cpu=cpu)


def load_module(engine: Any, data: bytes) -> Any:
    """Turn a .cwasm artifact into a `wasmtee.api.module.Module` without recompiling.

    The engine must use the llvm tier (or "auto" resolving to it), and its
    fuel and interruption settings must match the artifact's. Raises
    CompileError for a file that is not an artifact, was tampered with, or
    was made for another wasmtee version, target or CPU.
    """
    from wasmtee.api.module import Module
    from wasmtee.binary import decode_module
    from wasmtee.llvm.jit import options_from_config, preloaded_objects

    header, wasm, objects = read_artifact(data)
    tier = engine.tier
    if tier.name != "llvm":
        raise CompileError(f"AOT artifacts need the llvm tier, this engine uses the {tier.name} tier")
    options = options_from_config(engine.config)
    for setting, wanted, present in (
        ("fuel checks (--consume-fuel)", options.consume_fuel, header.consume_fuel),
        ("interruption checks (--interruptible)", options.interruptible, header.interruptible),
        ("call depth counting (a non-default max_call_depth)", options.count_depth, header.count_depth),
    ):
        if wanted != present:
            action = "with" if wanted else "without"
            raise CompileError(f"AOT artifact does not match the engine: recompile it {action} {setting}")
    model = decode_module(wasm)
    with preloaded_objects(model, objects):
        module = Module.from_model(engine, model)
    log.info("loaded AOT artifact: %s", describe(header))
    return module


def describe(header: Any) -> str:
    return (
        f"wasmtee {header.wasmtee_version}, {header.target_triple} ({header.cpu_name}), "
        f"module sha256 {header.module_sha256[:16]}..., opt level {header.opt_level}"
    )
