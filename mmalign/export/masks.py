"""Span masks for masked-modelling pretraining, stored beside an export's frame sequences.

Masked speech models (wav2vec 2.0, HuBERT) hide spans of consecutive frames, masked
language models (BERT) single tokens; the model predicts what is hidden, here from the
other modalities too.  With ``mask=("audio:0.15:10",)`` every ``audio.*`` frame sequence
``<feature>`` (``pool="none"``) gets a boolean tensor ``<feature>.masked`` of its length,
True on the hidden frames:

* exactly ``floor(rate * L + u)`` of its ``L`` frames are hidden (``u`` uniform in
  [0, 1): the expected count is ``rate * L`` even for short samples, so the realised rate
  over an export is the rate asked for);
* in spans of ``span`` frames (one shorter where the count is not a multiple), placed
  uniformly at random without overlap (two may touch);
* drawn from the export's seed, the source, the sample and the modality: the same
  export gives the same masks, and the features of one modality with the same number of
  frames get the same mask;
* padding is never masked: a mask has the sample's own length, and
  :func:`mmalign.data.collate` pads it with False.

Public names
    :class:`MaskSpec`, :func:`parse_mask`   ``MODALITY:RATE[:SPAN]``
    :func:`span_mask`                       one mask
    :func:`add_masks`                       a sample's masks, and the frames they hide
    :func:`mask_summary`                    the rates asked and realised (``dataset.json``)
    :data:`MASK_MODALITIES`, :data:`DEFAULT_SPANS`
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError

__all__ = [
    "MASK_MODALITIES",
    "DEFAULT_SPANS",
    "MASKED_SUFFIX",
    "MaskSpec",
    "parse_mask",
    "span_mask",
    "add_masks",
    "mask_summary",
]

#: Modalities whose frame sequences can be masked.
MASK_MODALITIES = ("audio", "video", "text")
#: Span length (frames) when none is given: 10 audio frames as in wav2vec 2.0 and HuBERT,
#: single frames elsewhere as in BERT.
DEFAULT_SPANS = {"audio": 10, "video": 1, "text": 1}
#: The suffix of a mask tensor's name: ``audio.logmel.masked``.
MASKED_SUFFIX = ".masked"


@dataclass(frozen=True)
class MaskSpec:
    """What to hide of one modality: the share of its frames, in spans of ``span`` frames."""

    modality: str
    rate: float
    span: int

    def __str__(self) -> str:
        return f"{self.modality}:{self.rate:g}:{self.span}"


def parse_mask(spec: str | MaskSpec) -> MaskSpec:
    """A mask from ``MODALITY:RATE[:SPAN]`` (``audio:0.15:10``, ``text:0.15``).

    Raises
    ------
    UsageError
        Not of that shape; a modality other than audio, video, text; a rate outside
        (0, 1); a span that is not a whole number of at least 1.
    """
    if isinstance(spec, MaskSpec):
        spec = str(spec)
    parts = str(spec).strip().split(":")
    bad = f"{{mask}} {spec!r}: expected MODALITY:RATE[:SPAN], e.g. audio:0.15:10 or text:0.15"
    if len(parts) not in (2, 3):
        raise UsageError(bad, names=["mask"])
    modality = parts[0].strip()
    if modality not in MASK_MODALITIES:
        raise UsageError(
            f"{{mask}} {spec!r}: unknown modality {modality!r}; choose one of {', '.join(MASK_MODALITIES)}",
            names=["mask"],
        )
    try:
        rate = float(parts[1])
        span = int(parts[2]) if len(parts) == 3 else DEFAULT_SPANS[modality]
    except ValueError:
        raise UsageError(bad, names=["mask"]) from None
    if not (0.0 < rate < 1.0):
        raise UsageError(f"{{mask}} {spec!r}: the rate must lie between 0 and 1, exclusive", names=["mask"])
    if span < 1:
        raise UsageError(f"{{mask}} {spec!r}: the span must be at least 1 frame", names=["mask"])
    return MaskSpec(modality, rate, span)


def span_mask(length: int, rate: float, span: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of ``length`` frames, ``floor(rate * length + u)`` of them True, in spans.

    Parameters
    ----------
    length : int
        Frames.
    rate : float
        Share of frames to hide, in (0, 1).
    span : int
        Frames per span (the last one shorter when the count is not a multiple).
    rng : np.random.Generator
        Where ``u`` and the span positions come from.

    Returns
    -------
    np.ndarray [shape=(length,)] bool
    """
    out = np.zeros(length, bool)
    if length <= 0:
        return out
    count = min(length, int(math.floor(rate * length + rng.random())))
    if count == 0:
        return out
    spans = -(-count // span)
    sizes = np.full(spans, span, np.int64)
    sizes[-1] = count - span * (spans - 1)
    sizes = sizes[rng.permutation(spans)]
    free = length - count
    # stars and bars: the spans among the free frames, `free + spans` slots, `spans` of them spans
    slots = np.sort(rng.choice(free + spans, size=spans, replace=False))
    starts = slots - np.arange(spans) + np.concatenate(([0], np.cumsum(sizes)[:-1]))
    for a, n in zip(starts, sizes):
        out[a : a + n] = True
    return out


def _modality(name: str) -> str:
    return name.split(".", 1)[0]


def add_masks(
    sample: MutableMapping[str, np.ndarray], masks: Sequence[MaskSpec], *, seed: int, key: str
) -> dict[str, list[int]]:
    """Add ``<feature>.masked`` beside every frame sequence of a masked modality in ``sample``.

    Parameters
    ----------
    sample : dict of str to np.ndarray
        A sample's tensors: frame sequences ``(L, D)`` (and their ``.times``).
    masks : sequence of MaskSpec
    seed : int
        The export's seed.
    key : str
        Names the sample, the same on every run (its source's digest and segment id).

    Returns
    -------
    dict of str to [int, int]
        Per masked modality: frames hidden, frames in all.
    """
    counts: dict[str, list[int]] = {}
    names = [n for n, v in sample.items() if np.ndim(v) == 2]
    for spec in masks:
        digest = hashlib.sha256(f"{int(seed)}|{key}|{spec.modality}".encode()).digest()
        entropy = int.from_bytes(digest[:16], "little")
        c = counts.setdefault(spec.modality, [0, 0])
        for name in names:
            if _modality(name) != spec.modality:
                continue
            mask = span_mask(len(sample[name]), spec.rate, spec.span, np.random.default_rng(entropy))
            sample[name + MASKED_SUFFIX] = mask
            c[0] += int(mask.sum())
            c[1] += len(mask)
    return counts


def mask_summary(specs: Sequence[MaskSpec], counts: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, object]:
    """``dataset.json``'s ``masks``: per modality the rate and span asked, and the rate realised."""
    out: dict[str, object] = {}
    for spec in specs:
        hidden = sum(int(c.get(spec.modality, (0, 0))[0]) for c in counts)
        frames = sum(int(c.get(spec.modality, (0, 0))[1]) for c in counts)
        out[spec.modality] = {
            "rate": spec.rate,
            "span": spec.span,
            "masked_frames": hidden,
            "frames": frames,
            "realised_rate": round(hidden / frames, 6) if frames else None,
        }
    return out
