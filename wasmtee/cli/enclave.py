"""`wasmtee enclave`: the Gramine manifest and the measurement of the enclave.

    wasmtee enclave manifest [-o FILE] [--enclave-size 2G] [--max-threads 16]
    wasmtee enclave measure [--isv-prod-id N] [--isv-svn N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import sysconfig
from pathlib import Path
from typing import Any

from wasmtee.cli.arguments import int_in_range
from wasmtee.errors import UsageError
from wasmtee.tee.measure import PACKAGE_ROOT, EnclaveConfig, measure_runtime

# Python packages the enclave imports besides the standard library.
DEPENDENCIES = ["cryptography", "cbor2", "_cbor2"]
SIZE_PATTERN = re.compile(r"^([1-9][0-9]*)([KMG])$")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "enclave", help="Gramine manifest and enclave measurement",
        description="Gramine manifest and enclave measurement. Exit status: 0 on success, "
        "1 when a command fails, 2 for bad arguments.")
    commands = parser.add_subparsers(dest="enclave_command", metavar="ACTION", required=True)

    manifest = commands.add_parser(
        "manifest", help="write a Gramine manifest template for the wasmtee enclave")
    manifest.add_argument("-o", "--output", help="output file (default: standard output)")
    manifest.add_argument("--enclave-size", default="2G",
                          help="enclave memory size, a power of two with K, M or G (default: 2G)")
    manifest.add_argument("--max-threads", type=int_in_range(1, 4096), default=16,
                          help="maximum number of enclave threads, 1..4096 (default: 16)")
    manifest.add_argument("--isv-prod-id", type=int_in_range(0, 0xFFFF), default=0,
                          help="ISVPRODID, 0..65535 (default: 0)")
    manifest.add_argument("--isv-svn", type=int_in_range(0, 0xFFFF), default=0,
                          help="ISVSVN, 0..65535 (default: 0)")
    manifest.add_argument("--sealed-dir", default="sealed",
                          help="host directory behind the encrypted /sealed mount "
                          "(default: ./sealed)")
    manifest.add_argument("--debug", action="store_true",
                          help="build a debug enclave (its memory is readable by the host)")
    manifest.set_defaults(handler=run_manifest)

    measure = commands.add_parser(
        "measure", help="print the sim backend's MRENCLAVE-equivalent for this wasmtee")
    measure.add_argument("--isv-prod-id", type=int_in_range(0, 0xFFFF), default=0,
                         help="ISVPRODID, 0..65535 (default: 0)")
    measure.add_argument("--isv-svn", type=int_in_range(0, 0xFFFF), default=0,
                         help="ISVSVN, 0..65535 (default: 0)")
    measure.set_defaults(handler=run_measure)


def run_measure(args: argparse.Namespace) -> int:
    config = _config(args)
    print(measure_runtime(config).hex())
    return 0


def run_manifest(args: argparse.Namespace) -> int:
    text = build_manifest(
        enclave_size=args.enclave_size,
        max_threads=args.max_threads,
        isv_prod_id=args.isv_prod_id,
        isv_svn=args.isv_svn,
        sealed_dir=args.sealed_dir,
        debug=args.debug,
    )
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
    return 0


def build_manifest(enclave_size: str = "2G", max_threads: int = 16, isv_prod_id: int = 0,
                   isv_svn: int = 0, sealed_dir: str = "sealed", debug: bool = False) -> str:
    """Return a Gramine manifest template (TOML with Jinja expressions in strings).

    Raises UsageError for an enclave size that is not a power of two, or
    thread counts and SVNs out of range.
    """
    _check_size(enclave_size)
    if not 1 <= max_threads <= 4096:
        raise UsageError(f"--max-threads must be in 1..4096, not {max_threads}")
    _config(argparse.Namespace(isv_prod_id=isv_prod_id, isv_svn=isv_svn))
    python = str(Path(sys.executable).resolve())
    prefix = str(Path(sys.prefix).resolve())
    stdlib = str(Path(sysconfig.get_paths()["stdlib"]).resolve())
    package_dir = str(PACKAGE_ROOT)
    package_parent = str(PACKAGE_ROOT.parent)
    trusted = [
        "file:{{ gramine.libos }}",
        "file:{{ gramine.runtimedir() }}/",
        "file:/lib/x86_64-linux-gnu/",
        "file:/usr/lib/x86_64-linux-gnu/",
        f"file:{python}",
        f"file:{stdlib}/",
        *[f"file:{path}" for path in _dependency_paths()],
        f"file:{package_dir}/",
    ]
    mounts = [
        {"path": "/lib", "uri": "file:{{ gramine.runtimedir() }}"},
        {"path": "/lib/x86_64-linux-gnu", "uri": "file:/lib/x86_64-linux-gnu"},
        {"path": "/usr/lib/x86_64-linux-gnu", "uri": "file:/usr/lib/x86_64-linux-gnu"},
        {"path": prefix, "uri": f"file:{prefix}"},
        {"path": package_parent, "uri": f"file:{package_parent}"},
        {"type": "encrypted", "path": "/sealed", "uri": f"file:{sealed_dir}",
         "key_name": "_sgx_mrsigner"},
        {"type": "tmpfs", "path": "/tmp"},
    ]
    lines = [
        "# Gramine manifest template for the wasmtee enclave (wasmtee enclave manifest).",
        "# Build and start it with:",
        "#   gramine-manifest wasmtee-enclave.manifest.template wasmtee-enclave.manifest",
        "#   gramine-sgx-sign --manifest wasmtee-enclave.manifest "
        "--output wasmtee-enclave.manifest.sgx",
        "#   gramine-sgx wasmtee-enclave",
        "# The enclave speaks the ECALL protocol on its standard input and output.",
        "",
        f"libos.entrypoint = {_toml(python)}",
        'loader.entrypoint = "file:{{ gramine.libos }}"',
        'loader.log_level = "error"',
        f"loader.argv = {_toml([python, '-m', 'wasmtee.tee.enclave_main', '0', '1'])}",
        f"loader.env.PYTHONPATH = {_toml(package_parent)}",
        'loader.env.PYTHONDONTWRITEBYTECODE = "1"',
        'loader.env.LD_LIBRARY_PATH = "/lib:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu"',
        "",
        "fs.mounts = [",
        *[f"  {_toml_inline_table(mount)}," for mount in mounts],
        "]",
        "",
        f"sgx.debug = {_toml(debug)}",
        f"sgx.enclave_size = {_toml(enclave_size)}",
        f"sgx.max_threads = {max_threads}",
        'sgx.remote_attestation = "dcap"',
        f"sgx.isvprodid = {isv_prod_id}",
        f"sgx.isvsvn = {isv_svn}",
        "",
        "sgx.trusted_files = [",
        *[f"  {_toml(entry)}," for entry in trusted],
        "]",
        "",
    ]
    return "\n".join(lines)


def _dependency_paths() -> list[str]:
    paths = []
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            paths.extend(f"{Path(location).resolve()}/"
                         for location in spec.submodule_search_locations)
        elif spec.origin:
            paths.append(str(Path(spec.origin).resolve()))
    return paths


def _check_size(size: str) -> None:
    match = SIZE_PATTERN.match(size)
    if match is None:
        raise UsageError(f"--enclave-size must look like 512M or 2G, not {size!r}")
    number = int(match.group(1))
    if number & (number - 1):
        raise UsageError(f"--enclave-size must be a power of two, not {size!r}")


def _config(args: argparse.Namespace) -> EnclaveConfig:
    try:
        return EnclaveConfig(isv_prod_id=args.isv_prod_id, isv_svn=args.isv_svn)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _toml(value: Any) -> str:
    # JSON strings, lists, integers and booleans are valid TOML values.
    return json.dumps(value)


def _toml_inline_table(table: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{key} = {_toml(value)}" for key, value in table.items()) + " }"
