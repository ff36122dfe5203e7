"""The python execution tier: each wasm function becomes one Python function.

`TIER` implements the tier interface of docs/internals.md. Functions are
translated lazily: the first call of a function translates it to Python
source (wasmtee.pytier.translate), compiles that once per module, and binds
it into the instance's shared namespace, where later direct calls find it
as a global. See wasmtee.pytier.runtime for the names generated code uses.
"""

from __future__ import annotations

from wasmtee.pytier.runtime import CompiledModule, PythonTier

TIER = PythonTier()

__all__ = ["TIER", "CompiledModule", "PythonTier"]
