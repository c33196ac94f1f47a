"""Aligners: every one of them produces a TimeMap (see mmalign.timeline).

``align_sequences`` (DTW of two feature sequences, :mod:`mmalign.align.sequences`) is
loaded on first use, so that ``import mmalign.align.sync`` stays free of the DTW kernels.
"""

from __future__ import annotations

from typing import Any

__all__ = ["align_sequences"]


def __getattr__(name: str) -> Any:
    if name == "align_sequences":
        from .sequences import align_sequences

        return align_sequences
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
