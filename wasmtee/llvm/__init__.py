"""The LLVM execution tier (llvmlite MCJIT), with ahead-of-time artifacts.

`TIER` implements the tier interface of docs/internals.md. Importing this
package raises ImportError when llvmlite is missing, which the tier registry
treats as "tier unavailable".
"""

from __future__ import annotations

import llvmlite.binding  # noqa: F401 - fail early when llvmlite is missing

from wasmtee.llvm.jit import CompiledModule, LlvmTier

TIER = LlvmTier()

__all__ = ["TIER", "CompiledModule", "LlvmTier"]
