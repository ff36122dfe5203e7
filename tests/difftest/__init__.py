"""Helpers for the differential tests against the wasmtime PyPI package.

`generate` turns a seed into a module with `wasm-tools smith`, `harness`
builds the companion module that exposes the generated module's exports with
integer-only signatures, and `sides` runs one module on one runtime and
records everything observable in an `Outcome`.
"""
