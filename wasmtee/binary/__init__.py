"""The binary format: decoding `.wasm` bytes into a `wasmtee.model.Module`.

`decode_module` decodes and checks everything the binary grammar of
WebAssembly 2.0 fixes; the validator (`wasmtee.valid`) checks the rest.
`iter_sections` lists the sections of a module without decoding them, and
`encode_module` writes a module back into the binary format.
"""

from wasmtee.binary.encode import encode_module
from wasmtee.binary.module import decode_module
from wasmtee.binary.sections import SectionInfo, iter_sections

__all__ = ["SectionInfo", "decode_module", "encode_module", "iter_sections"]
