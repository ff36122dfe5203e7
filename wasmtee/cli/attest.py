"""`wasmtee attest`: produce, show and verify SGX DCAP quotes.

    wasmtee attest quote --backend sim --report-data HEX -o FILE
    wasmtee attest evidence --nonce HEX [--user-data HEX] -o FILE
    wasmtee attest show FILE
    wasmtee attest verify FILE [--policy POLICY.json] [--allow-simulation]

`verify` exits with status 0 only for a quote that passes every check and
the policy, and with a non-zero status otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from wasmtee.cli.arguments import int_in_range, positive_seconds
from wasmtee.errors import UsageError
from wasmtee.tee.errors import QuoteFormatError, VerificationError
from wasmtee.tee.measure import EnclaveConfig, measure_runtime
from wasmtee.tee.quote import INTEL_QE_VENDOR_ID, UnverifiedQuote, parse_quote
from wasmtee.tee.evidence import decode_evidence
from wasmtee.tee.verify import Policy, intel_root_from_quote, verify_evidence, verify_quote

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attest", help="produce, show and verify SGX DCAP quotes",
        description="Produce, show and verify SGX DCAP quotes. Exit status: 0 on success "
        "(for verify: the quote passed every check), 1 when a command or a verification "
        "fails, 2 for bad arguments.")
    commands = parser.add_subparsers(dest="attest_command", metavar="ACTION", required=True)

    quote = commands.add_parser("quote", help="write a quote from a fresh enclave")
    quote.add_argument("--backend", choices=["sim", "gramine"], default="sim",
                       help="enclave backend (default: sim)")
    quote.add_argument("--state-dir", help="sim platform state directory "
                       "(default: ~/.local/state/wasmtee/sim)")
    quote.add_argument("--report-data", default="",
                       help="REPORTDATA as hex, at most 64 bytes (default: empty)")
    quote.add_argument("--isv-prod-id", type=int_in_range(0, 0xFFFF), default=0,
                       help="enclave ISVPRODID, 0..65535 (default: 0)")
    quote.add_argument("--isv-svn", type=int_in_range(0, 0xFFFF), default=0,
                       help="enclave ISVSVN, 0..65535 (default: 0)")
    quote.add_argument("-o", "--output", required=True, help="file to write the quote to")
    quote.set_defaults(handler=run_quote)

    evidence = commands.add_parser(
        "evidence", help="write CBOR [quote, claims] evidence from a fresh enclave")
    evidence.add_argument("--backend", choices=["sim", "gramine"], default="sim",
                          help="enclave backend (default: sim)")
    evidence.add_argument("--state-dir", help="sim platform state directory "
                          "(default: ~/.local/state/wasmtee/sim)")
    evidence.add_argument("--user-data", default="", help="user-data claim as hex, "
                          "at most 64 bytes")
    evidence.add_argument("--nonce", help="nonce claim as hex, chosen by the verifier")
    evidence.add_argument("-o", "--output", required=True, help="file to write the evidence to")
    evidence.set_defaults(handler=run_evidence)

    show = commands.add_parser("show", help="print the fields of a quote (nothing is verified)")
    show.add_argument("file", help="quote file")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=run_show)

    verify = commands.add_parser("verify", help="verify a quote or evidence against a policy")
    verify.add_argument("file", help="quote or evidence file")
    verify.add_argument("--policy", help="policy JSON file (keys as in wasmtee.tee.verify.Policy, "
                        "bytes as hex)")
    verify.add_argument("--mrenclave", help="expected MRENCLAVE as hex (default, when neither the "
                        "policy nor --mrsigner names an identity: this wasmtee's own measurement)")
    verify.add_argument("--mrsigner", help="expected MRSIGNER as hex")
    verify.add_argument("--report-data", help="expected REPORTDATA as hex")
    verify.add_argument("--nonce", help="expected nonce claim of evidence, as hex")
    verify.add_argument("--max-age", type=positive_seconds,
                        help="maximum age of evidence in seconds, from its 'iat' claim")
    verify.add_argument("--allow-simulation", action="store_true",
                        help="accept quotes from the simulated platform")
    verify.add_argument("--allow-debug", action="store_true",
                        help="accept enclaves with the DEBUG attribute")
    verify.add_argument("--root", action="append", default=[],
                        help="trusted root CA certificate (PEM); may be repeated. Without "
                        "it, the Intel SGX Root CA is trusted by its pinned fingerprint")
    verify.add_argument("--state-dir", help="with --allow-simulation and no --root, trust the "
                        "root CA of this sim platform (default: ~/.local/state/wasmtee/sim)")
    verify.set_defaults(handler=run_verify)


def run_quote(args: argparse.Namespace) -> int:
    from wasmtee.tee.enclave import Enclave

    report_data = _hex_argument("--report-data", args.report_data)
    if len(report_data) > 64:
        raise UsageError(f"--report-data is {len(report_data)} bytes, max 64")
    try:
        config = EnclaveConfig(isv_prod_id=args.isv_prod_id, isv_svn=args.isv_svn)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with Enclave(backend=args.backend, state_dir=args.state_dir, config=config) as enclave:
        quote = enclave.get_quote(report_data)
    _write_output(args.output, quote)
    log.info("wrote a %d-byte quote to %s", len(quote), args.output)
    return 0


def run_show(args: argparse.Namespace) -> int:
    unverified_quote = _read_quote(args.file)
    fields = describe_quote(unverified_quote)
    if args.json:
        print(json.dumps(fields, indent=2))
        return 0
    print("UNVERIFIED quote contents (run 'wasmtee attest verify' to check them):")
    for name, value in fields.items():
        print(f"  {name:28} {value}")
    return 0


def describe_quote(unverified_quote: UnverifiedQuote) -> dict[str, Any]:
    """Return a quote's fields as JSON-ready values (hex for bytes)."""
    header = unverified_quote.header
    body = unverified_quote.body
    signature_data = unverified_quote.signature_data
    return {
        "version": header.version,
        "attestation_key_type": header.attestation_key_type,
        "tee_type": header.tee_type,
        "qe_svn": header.qe_svn,
        "pce_svn": header.pce_svn,
        "qe_vendor_id": header.qe_vendor_id.hex(),
        "qe_vendor": "Intel" if header.qe_vendor_id == INTEL_QE_VENDOR_ID else "not Intel",
        "user_data": header.user_data.hex(),
        "cpu_svn": body.cpu_svn.hex(),
        "misc_select": f"0x{body.misc_select:08x}",
        "attributes_flags": f"0x{body.attributes_flags:016x}",
        "attributes_xfrm": f"0x{body.attributes_xfrm:016x}",
        "debug": body.debug,
        "mr_enclave": body.mr_enclave.hex(),
        "mr_signer": body.mr_signer.hex(),
        "isv_prod_id": body.isv_prod_id,
        "isv_svn": body.isv_svn,
        "report_data": body.report_data.hex(),
        "attestation_key": signature_data.attestation_key.hex(),
        "qe_mr_enclave": signature_data.qe_report.mr_enclave.hex(),
        "qe_mr_signer": signature_data.qe_report.mr_signer.hex(),
        "certification_data_type": signature_data.certification_data_type,
        "certification_data_size": len(signature_data.certification_data),
    }


def run_verify(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file!r}: {exc.strerror}") from None
    policy = _build_policy(args)
    is_evidence = data[:1] == b"\x82"  # a CBOR array of two items: [quote, claims]
    try:
        if is_evidence:
            quote, _ = decode_evidence(data)
            roots = _trusted_roots(args, quote)
            claims = verify_evidence(data, policy, roots)
        else:
            roots = _trusted_roots(args, data)
            claims = verify_quote(data, policy, roots)
    except QuoteFormatError as exc:
        print(f"verification FAILED: invalid evidence: {exc}", file=sys.stderr)
        return 1
    except VerificationError as exc:
        print(f"verification FAILED: {exc}", file=sys.stderr)
        return 1
    print("verification OK")
    print(f"  mr_enclave   {claims.mr_enclave.hex()}")
    print(f"  mr_signer    {claims.mr_signer.hex()}")
    print(f"  isv_prod_id  {claims.isv_prod_id}")
    print(f"  isv_svn      {claims.isv_svn}")
    print(f"  debug        {claims.debug}")
    print(f"  simulated    {claims.simulated}")
    print(f"  report_data  {claims.report_data.hex()}")
    for name, value in sorted((claims.evidence_claims or {}).items()):
        shown = value.hex() if isinstance(value, bytes) else value
        print(f"  claim {name}: {shown}")
    return 0


def run_evidence(args: argparse.Namespace) -> int:
    from wasmtee.tee.enclave import Enclave

    user_data = _hex_argument("--user-data", args.user_data)
    nonce = _hex_argument("--nonce", args.nonce) if args.nonce else None
    if len(user_data) > 64:
        raise UsageError(f"--user-data is {len(user_data)} bytes, max 64")
    with Enclave(backend=args.backend, state_dir=args.state_dir) as enclave:
        evidence = enclave.get_evidence(user_data, nonce=nonce)
    _write_output(args.output, evidence)
    log.info("wrote %d bytes of evidence to %s", len(evidence), args.output)
    return 0


def _build_policy(args: argparse.Namespace) -> Policy:
    values: dict[str, Any] = {}
    if args.policy:
        try:
            text = Path(args.policy).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read policy file {args.policy!r}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"policy file {args.policy!r} is not UTF-8 JSON text: "
                             f"invalid byte at offset {exc.start}") from None
        values = dataclasses.asdict(Policy.from_json(text))
    for option, key in (("mrenclave", "mr_enclave"), ("mrsigner", "mr_signer"),
                        ("report_data", "report_data")):
        value = getattr(args, option)
        if value is not None:
            values[key] = _hex_argument(f"--{option.replace('_', '-')}", value)
    if args.nonce is not None:
        values["nonce"] = _hex_argument("--nonce", args.nonce)
    if args.max_age is not None:
        values["max_age"] = args.max_age
    if values.get("mr_enclave") is None and values.get("mr_signer") is None:
        values["mr_enclave"] = measure_runtime(EnclaveConfig())
    values["allow_simulation"] = values.get("allow_simulation", False) or args.allow_simulation
    values["allow_debug"] = values.get("allow_debug", False) or args.allow_debug
    return Policy(**values)


def _trusted_roots(args: argparse.Namespace, quote: bytes) -> list[x509.Certificate]:
    roots = []
    for path in args.root:
        try:
            roots.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
        except OSError as exc:
            raise UsageError(f"cannot read root certificate {path!r}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"cannot load root certificate {path!r}: {exc}") from None
    if roots:
        return roots
    if args.allow_simulation:
        from wasmtee.tee.sim import SimPlatform

        roots.append(SimPlatform(args.state_dir).root_certificate)
    try:
        roots.append(intel_root_from_quote(quote))
    except VerificationError:
        if not roots:
            raise
    return roots


def _read_quote(path: str) -> UnverifiedQuote:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read quote file {path!r}: {exc.strerror}") from None
    try:
        return parse_quote(data)
    except QuoteFormatError as exc:
        # Bad file contents, not a usage error: exit status 1, as for a bad module.
        raise QuoteFormatError(f"{path} is not a DCAP v3 quote: {exc}") from None


def _write_output(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _hex_argument(option: str, value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise UsageError(f"{option} must be hex, not {value!r}") from None
