"""Engine configuration and the engine that compiles modules with it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from wasmtee.errors import UsageError

logger = logging.getLogger(__name__)

TIER_NAMES = ("python", "llvm", "auto")
DEFAULT_MAX_CALL_DEPTH = 10_000
# The max deadline that `Store.set_deadline` and `--timeout` accept, about 31.7
# years, or threading.TIMEOUT_MAX when that is smaller (it is 9.2e9 s with
# CPython 3.11 on Linux). Longer values raise UsageError instead of being
# clamped, because threading.Timer overflows above TIMEOUT_MAX.
MAX_DEADLINE_SECONDS = min(1e9, threading.TIMEOUT_MAX)


@dataclass
class Config:
    """Settings shared by every store of an engine.

    `tier` is 'python', 'llvm' or 'auto' (llvm when llvmlite and the llvm
    tier load, otherwise python). `consume_fuel` makes stores count fuel,
    `epoch_interruption` lets `Store.interrupt()` and deadlines stop running
    code, and `max_call_depth` bounds wasm recursion.

    Raises UsageError from `check()` for an unknown tier or a bad depth.
    """

    tier: str = "auto"
    consume_fuel: bool = False
    epoch_interruption: bool = False
    max_call_depth: int = DEFAULT_MAX_CALL_DEPTH

    def check(self) -> None:
        """Raise UsageError when a setting is out of range."""
        if self.tier not in TIER_NAMES:
            raise UsageError(f"unknown tier {self.tier!r} (expected one of {', '.join(TIER_NAMES)})")
        depth = self.max_call_depth
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise UsageError(f"max_call_depth must be a positive int, got {depth!r}")


class Engine:
    """A configuration plus the execution tier that compiles modules for it.

    Raises UsageError for an invalid config.
    """

    def __init__(self, config: Config | None = None) -> None:
        config = Config() if config is None else config
        if not isinstance(config, Config):
            raise UsageError(f"expected a Config, got {config!r}")
        config.check()
        # Copy, so later edits of the caller's Config cannot change compiled code.
        self.config = Config(
            config.tier, bool(config.consume_fuel), bool(config.epoch_interruption),
            config.max_call_depth,
        )
        self._tier: Any = None

    @property
    def tier(self) -> Any:
        """The tier object (see wasmtee.runtime.tiers), loaded on first use."""
        if self._tier is None:
            from wasmtee.runtime.tiers import get_tier

            self._tier = get_tier(self.config.tier)
            logger.debug("engine uses the %s tier", self._tier.name)
        return self._tier

    def __repr__(self) -> str:
        return f"<Engine tier={self.config.tier}>"
