"""Facts that readers record while the module decoder goes on."""

from __future__ import annotations

from wasmtee.errors import UnsupportedFeature


class DecodeNotes:
    """Facts that the readers record for the module decoder.

    `uses_data_index` is set when an instruction names a data segment
    (memory.init, data.drop), which makes the data count section required.
    `unsupported` is the first encoding of a later proposal that could be
    decoded past. The module decoder raises it only once the rest of the
    module turned out well formed, because the spec test suite expects a
    malformed module to be reported as malformed.
    """

    __slots__ = ("unsupported", "uses_data_index")

    def __init__(self) -> None:
        self.uses_data_index = False
        self.unsupported: UnsupportedFeature | None = None

    def defer(self, feature: UnsupportedFeature) -> None:
        """Record an unsupported feature unless an earlier one is recorded."""
        if self.unsupported is None:
            self.unsupported = feature
