"""Matching pairs: for every aligned sample, negatives that are never positives in disguise.

A cross-modal matching objective ("do this audio and this text belong together?") needs
samples whose two halves do *not* belong together.  Drawn carelessly, such a negative
leaks: its text is the same sentence said elsewhere (``"Yes."``, ``"Thank you."``), or
it comes from the neighbouring second of the same recording, where the speech really
does match the text in part.  Here a *partner* ``b`` of an aligned sample ``a`` passes
only when

* its normalised text (:func:`normalize_text`) differs from ``a``'s;
* it is not ``a``, and, in the same source, does not overlap ``a`` in time and lies at
  least ``min_gap`` seconds away from it (in another source, any time will do);
* the other partners of ``a`` have other normalised texts still (``K`` different
  negatives).

How the partners are picked (``hard``):

``none``
    At random among all samples that pass.
``same-source``
    At random among the samples of ``a``'s own source that pass (a hard negative: same
    speaker, room and topic); where the source has too few, the rest at random from all
    (counted as ``fallback``).
``nearest``
    The samples whose text is most similar to ``a``'s (cosine of the hashed n-gram text
    embedding, :func:`mmalign.features.text.hashed_ngrams`, of the normalised texts)
    that pass: the hardest negatives, with every duplicate of ``a``'s text left out.

Public functions
    :func:`normalize_text`   the text as the rules compare it
    :func:`draw_partners`    partners per sample (indices), seeded
    :func:`negative_record`  a negative's manifest record, from its two samples' records
    :func:`pair_gap`         seconds between two segments (negative when they overlap)
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError

__all__ = [
    "PAIRINGS",
    "HARD_NEGATIVES",
    "SWAPS",
    "PairSummary",
    "normalize_text",
    "pair_gap",
    "draw_partners",
    "negative_record",
    "is_text_feature",
    "check_pairing",
]

#: What ``pairs`` may be: none (aligned samples only), matching (plus negatives).
PAIRINGS = ("none", "matching")
#: How negatives are picked.
HARD_NEGATIVES = ("none", "same-source", "nearest")
#: Which half of a negative comes from the other sample: its text, or its media features.
SWAPS = ("text", "media")

_MARKUP = re.compile(r"<[^>]*>|\{[^}]*\}")  # HTML-like tags (<i>, <c.red>, <00:01.000>) and ASS overrides
_NON_WORD = re.compile(r"[\W_]+")


def normalize_text(text: str | None) -> str:
    """A text as the pairing rules and the batch sampler compare it.

    Unicode NFKC, markup (``<i>``, WebVTT timestamps, ASS ``{\\an8}``) removed, case
    folded, every run of punctuation, symbols and white space made one space, trimmed:
    ``"<i>Thank you!</i>"`` and ``"thank  you"`` are the same text.  ``None`` is ``""``.
    """
    if not text:
        return ""
    t = unicodedata.normalize("NFKC", text)
    t = _MARKUP.sub(" ", t).casefold()
    return _NON_WORD.sub(" ", t).strip()


def pair_gap(start_a: float, end_a: float, start_b: float, end_b: float) -> float:
    """Seconds between two segments of one timeline; negative by the overlap when they overlap."""
    return max(start_b - end_a, start_a - end_b)


def is_text_feature(name: str) -> bool:
    """Whether a tensor name belongs to the text modality (``text.*``, with its ``.times``, ``.masked``)."""
    return name.startswith("text.")


@dataclass
class PairSummary:
    """What a pairing drew.

    Attributes
    ----------
    positives : int
        Aligned samples.
    negatives : int
        Negatives drawn (``K`` per positive, fewer where too few samples pass: ``short``).
    short : int
        Positives with fewer than ``K`` negatives.
    fallback : int
        ``same-source``: negatives taken from other sources for lack of enough in the own one.
    """

    positives: int = 0
    negatives: int = 0
    short: int = 0
    fallback: int = 0

    def to_dict(self) -> dict[str, Any]:
        total = self.positives + self.negatives
        return {
            "positives": self.positives,
            "negatives": self.negatives,
            "label_ratio": round(self.positives / total, 6) if total else None,
            "short": self.short,
            "fallback": self.fallback,
        }


class _Samples:
    """The fields the rules look at, as arrays: text codes, source codes, bounds."""

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        texts: dict[str, int] = {}
        sources: dict[str, int] = {}
        self.norm = [normalize_text(r.get("text")) for r in records]
        self.text = np.array([texts.setdefault(t, len(texts)) for t in self.norm], np.int64)
        self.source = np.array([sources.setdefault(str(r["source"]), len(sources)) for r in records], np.int64)
        self.start = np.array([float(r["start"]) for r in records], np.float64)
        self.end = np.array([float(r["end"]) for r in records], np.float64)
        self.n = len(records)

    def passes(self, a: int, b: int, min_gap: float, taken: set[int]) -> bool:
        """Whether ``b`` may be a negative of ``a`` (``taken``: text codes of ``a``'s partners so far)."""
        if b == a or self.text[b] == self.text[a] or int(self.text[b]) in taken:
            return False
        if self.source[b] != self.source[a]:
            return True
        return pair_gap(self.start[a], self.end[a], self.start[b], self.end[b]) >= min_gap


def check_pairing(negatives: int, hard: str, min_gap: float) -> None:
    """Refuse a pairing's settings with one line.

    Raises
    ------
    UsageError
        ``negatives`` not a whole number of at least 1, an unknown ``hard``, a negative
        or non-finite ``min_gap``.
    """
    if isinstance(negatives, bool) or not isinstance(negatives, (int, np.integer)) or negatives < 1:
        raise UsageError(f"{{negatives}} must be a whole number of at least 1, got {negatives!r}", names=["negatives"])
    if hard not in HARD_NEGATIVES:
        raise UsageError(
            f"unknown {{hard_negatives}} {hard!r}; choose one of {', '.join(HARD_NEGATIVES)}", names=["hard_negatives"]
        )
    if not (np.isfinite(min_gap) and min_gap >= 0):
        raise UsageError(f"{{min_gap}} must be a non-negative number of seconds, got {min_gap!r}", names=["min_gap"])


def _rng(seed: int, what: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{int(seed)}|{what}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _pick_random(
    s: _Samples, a: int, pool: np.ndarray, k: int, min_gap: float, taken: set[int], rng: np.random.Generator
) -> list[int]:
    """Up to ``k`` partners of ``a`` drawn at random from ``pool`` (indices), by the rules."""
    out: list[int] = []
    if not len(pool):
        return out
    for _ in range(16 * k + 16):  # rejection: nearly every draw passes in a real export
        b = int(pool[rng.integers(len(pool))])
        if s.passes(a, b, min_gap, taken):
            out.append(b)
            taken.add(int(s.text[b]))
            if len(out) == k:
                return out
    for b in rng.permutation(pool):  # few pass: look at every one, in a random order
        b = int(b)
        if s.passes(a, b, min_gap, taken):
            out.append(b)
            taken.add(int(s.text[b]))
            if len(out) == k:
                break
    return out


def _nearest(s: _Samples, embeddings: np.ndarray, negatives: int, min_gap: float, block: int = 512) -> list[list[int]]:
    """Per sample, the ``negatives`` most similar others (cosine) that pass, most similar first."""
    e = np.ascontiguousarray(embeddings, np.float32)
    out: list[list[int]] = []
    look = min(s.n, 8 * negatives + 32)
    for lo in range(0, s.n, block):
        sims = e[lo : lo + block] @ e.T
        for r in range(sims.shape[0]):
            a = lo + r
            row = sims[r]
            taken: set[int] = set()
            picked: list[int] = []
            top = np.argpartition(-row, look - 1)[:look] if look < s.n else np.arange(s.n)
            top = top[np.lexsort((top, -row[top]))]  # most similar first, ties by index
            for candidates in (top, np.lexsort((np.arange(s.n), -row))):
                for b in candidates:
                    b = int(b)
                    if b not in picked and s.passes(a, b, min_gap, taken):
                        picked.append(b)
                        taken.add(int(s.text[b]))
                        if len(picked) == negatives:
                            break
                if len(picked) == negatives or len(top) == s.n:
                    break
            out.append(picked)
    return out


def draw_partners(
    records: Sequence[Mapping[str, Any]],
    *,
    negatives: int = 1,
    hard: str = "none",
    min_gap: float = 5.0,
    seed: int = 0,
    embeddings: np.ndarray | None = None,
) -> tuple[list[list[int]], PairSummary]:
    """The partners of every aligned sample: the samples its negatives take a half from.

    Parameters
    ----------
    records : sequence of mappings
        The aligned samples, each with ``source``, ``start``, ``end`` (seconds) and ``text``
        (manifest records as dicts).
    negatives : int
        ``K``, the partners wanted per sample.
    hard : {"none", "same-source", "nearest"}
        How partners are picked (module docstring).
    min_gap : float
        Seconds a partner from the same source must lie away from the sample (0: only
        overlapping ones are refused).
    seed : int
        Seeds the random picks: the same records and seed give the same partners.
    embeddings : np.ndarray [shape=(n, d)], optional
        ``nearest``: one row per record, compared by dot product (unit rows: cosine).
        Default: the hashed n-gram embedding of the normalised texts.

    Returns
    -------
    partners : list of list of int
        Per record, the indices of its partners (at most ``negatives``, distinct normalised texts).
    summary : PairSummary

    Raises
    ------
    UsageError
        ``negatives`` below 1, an unknown ``hard``, a negative or non-finite ``min_gap``,
        ``embeddings`` of another length than ``records``.
    """
    check_pairing(negatives, hard, min_gap)
    s = _Samples(records)
    summary = PairSummary(positives=s.n)
    partners: list[list[int]]
    if hard == "nearest":
        if embeddings is None:
            from ..features.text import hashed_ngrams

            embeddings = hashed_ngrams(s.norm, dim=256)  # a measure of similarity, not a random pick
        if len(embeddings) != s.n:
            raise UsageError(f"nearest needs one embedding per record: {len(embeddings)} for {s.n}")
        partners = _nearest(s, embeddings, negatives, min_gap)
    else:
        rng = _rng(seed, f"partners|{hard}")
        everyone = np.arange(s.n)
        by_source = {int(c): np.flatnonzero(s.source == c) for c in np.unique(s.source)}
        partners = []
        for a in range(s.n):
            taken: set[int] = set()
            if hard == "same-source":
                picked = _pick_random(s, a, by_source[int(s.source[a])], negatives, min_gap, taken, rng)
                own = len(picked)
                if own < negatives:
                    picked += _pick_random(s, a, everyone, negatives - own, min_gap, taken, rng)
                    summary.fallback += len(picked) - own
            else:
                picked = _pick_random(s, a, everyone, negatives, min_gap, taken, rng)
            partners.append(picked)
    summary.negatives = sum(len(p) for p in partners)
    summary.short = sum(len(p) < negatives for p in partners)
    return partners, summary


def negative_record(
    anchor: Mapping[str, Any], partner: Mapping[str, Any], index: int, swap: str = "text"
) -> dict[str, Any]:
    """The manifest record of a negative: ``anchor`` with one half taken from ``partner``.

    ``swap="text"``: the anchor's media features with the partner's text (and ``text.*``
    tensors); ``swap="media"``: the anchor's text with the partner's media features.

    The record's ``id`` is ``<anchor id>/negative-<index>``; ``source``, ``start``,
    ``end`` are the anchor's; ``text`` is the text it carries; ``shard`` and ``row`` name
    where its media tensors are, ``text_from`` the record whose text tensors (``text.*``)
    it carries (:class:`mmalign.data.AlignedDataset` reads them there); ``label`` is 0,
    ``pair_of`` the anchor's id, ``media_from`` the record whose media it carries.

    Raises
    ------
    UsageError
        An unknown ``swap``.
    """
    if swap not in SWAPS:
        raise UsageError(f"unknown {{swap}} {swap!r}; choose one of {', '.join(SWAPS)}", names=["swap"])
    media, text = (anchor, partner) if swap == "text" else (partner, anchor)
    tensors = {n: v for n, v in media["tensors"].items() if not is_text_feature(n)}
    tensors.update({n: v for n, v in text["tensors"].items() if is_text_feature(n)})
    out: dict[str, Any] = {
        "id": f"{anchor['id']}/negative-{index}",
        "source": anchor["source"],
        "start": anchor["start"],
        "end": anchor["end"],
        "text": text.get("text"),
        "shard": media["shard"],
        "row": media["row"],
        "tensors": tensors,
    }
    if media.get("missing") is not None or text.get("missing") is not None:
        out["missing"] = [n for n in media.get("missing") or [] if not is_text_feature(n)] + [
            n for n in text.get("missing") or [] if is_text_feature(n)
        ]
    out.update(label=0, pair_of=anchor["id"], text_from=text["id"], media_from=media["id"])
    return out
