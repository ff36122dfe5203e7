"""The tier registry: load the python or llvm execution tier on demand.

A tier object may set `automatic = False` while it is incomplete. 'auto'
then skips it, but asking for it by name still returns it.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from wasmtee.errors import UsageError

logger = logging.getLogger(__name__)

_MODULES = {"python": "wasmtee.pytier", "llvm": "wasmtee.llvm"}
_loaded: dict[str, Any] = {}
_failures: dict[str, str] = {}
_lock = threading.Lock()


def _load(name: str) -> Any:
    with _lock:
        if name in _loaded:
            return _loaded[name]
        if name in _failures:
            return None
        try:
            module = importlib.import_module(_MODULES[name])
            tier = module.TIER
            if name == "llvm":
                import llvmlite.binding  # noqa: F401  (the tier needs it at compile time)
        except Exception as exc:  # noqa: BLE001  (any import failure makes the tier unusable)
            _failures[name] = f"{type(exc).__name__}: {exc}"
            logger.info("the %s tier is not available: %s", name, _failures[name])
            return None
        _loaded[name] = tier
        return tier


def available_tiers() -> list[str]:
    """Return the names of the tiers that load in this process."""
    return [name for name in _MODULES if _load(name) is not None]


def get_tier(name: str) -> Any:
    """Return the tier object for 'python', 'llvm' or 'auto'.

    'auto' picks llvm when it loads, otherwise python.
    Raises UsageError for an unknown name or a tier that cannot be loaded.
    """
    if name == "auto":
        tier = _load("llvm")
        # A tier that is still being completed sets `automatic = False` and is used only by name.
        if tier is None or not getattr(tier, "automatic", True):
            tier = _load("python")
        if tier is None:
            raise UsageError(f"no execution tier is available ({'; '.join(_failures.values())})")
        return tier
    if name not in _MODULES:
        raise UsageError(f"unknown tier {name!r} (expected python, llvm or auto)")
    tier = _load(name)
    if tier is None:
        raise UsageError(f"the {name} tier is not available ({_failures[name]})")
    return tier
