"""The binary format: decoding `.wasm` bytes into a `wasmtee.model.Module`.

`decode_module` decodes and checks everything the binary grammar of
WebAssembly 2.0 fixes; the validator (`wasmtee.valid`) checks the rest.
`iter_sections` lists the sections of a module without decoding them.
"""

from wasmtee.binary.module import decode_module
from wasmtee.binary.sections import SectionInfo, iter_sections

__all__ = ["SectionInfo", "decode_module", "iter_sections"]
