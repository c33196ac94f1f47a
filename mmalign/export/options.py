"""What decides an export's content: :class:`ExportOptions`, checked before any work.

:class:`ExportOptions`
    Grid, pooling, fusion, features and their parameters; :meth:`~ExportOptions.check`,
    and :meth:`~ExportOptions.to_dict` (the ``config`` of ``dataset.json``).
:data:`POOLS`, :data:`AUDIO_FEATURES`, :data:`VIDEO_FEATURES`, :data:`TEXT_FEATURES`
    The poolings on offer and the default feature sets (those of ``mmalign extract all``,
    less its per-cue table ``text.cues``, a sparse table of cue times rather than a
    sequence to pool).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .._compat import renamed_keywords
from ..errors import UsageError
from ..timeline import POOLINGS
from .grid import GRIDS
from .masks import MaskSpec, parse_mask

__all__ = ["ExportOptions", "POOLS", "AUDIO_FEATURES", "VIDEO_FEATURES", "TEXT_FEATURES"]

#: Poolings of a sample's frames; ``none`` keeps the frame sequence.
POOLS = POOLINGS + ("none",)
#: Default features per modality (``mmalign extract all``'s, less ``text.cues``).
AUDIO_FEATURES = ("logmel", "mfcc", "speech")
VIDEO_FEATURES = ("hist", "luma", "motion", "cut")
TEXT_FEATURES = ("activity", "embedding")

# Fields whose name in dataset.json's "config" is the one format 1 was written with, so an
# export made before the rename resumes (its config hash is unchanged).
_STORED_AS = {"grid_hop": "hop", "audio_features": "audio", "video_features": "video", "text_features": "text"}
# Fields added after format 1, with the value every earlier export had: left out of the
# config at that value, so those exports still resume and compare equal.
_ADDED = {"fmin": 0.0, "fmax": None, "video_stream": None, "width": 320, "embed": None, "pairs": "none", "mask": ()}
# The settings of matching pairs: in the config whenever pairs are made, left out otherwise.
_PAIR_FIELDS = ("negatives", "hard_negatives", "swap", "min_gap")
_PAIR_DEFAULTS = {"negatives": 1, "hard_negatives": "none", "swap": "text", "min_gap": 5.0}


@dataclass
class ExportOptions:
    """Everything that decides an export's content (stored in ``dataset.json``).

    Attributes
    ----------
    grid : {"cues", "frames", "windows"}
        One sample per subtitle cue, per ``grid_hop`` seconds, or per ``window`` seconds
        every ``stride`` seconds.
    grid_hop, window, stride : float, optional
        Seconds; ``grid_hop`` for ``frames``, ``window`` and ``stride`` for ``windows``.
    pool : str
        One of :data:`POOLS`.
    fuse : str
        One of :data:`mmalign.fusion.FUSIONS`; ``dim`` is the width of ``sum`` and
        ``compact-bilinear``, ``seed`` seeds them and the text hashing.
    sync : bool
        Re-time the subtitles to the speech first.
    audio_features, video_features, text_features : tuple of str
        Feature names per modality (empty: the modality is left out).
    sr, audio_hop, n_mels, fmin, fmax
        Audio: sample rate (Hz), seconds between frames, mel bands, and the lowest and
        highest mel frequency (Hz; ``fmax`` None: ``sr / 2``).
    fps, width, video_stream, embed
        Video: frames analysed per second, width they are scaled to (0: full size), the
        track (``None``: the default one), a TorchScript image model whose embedding of
        each analysed frame is one more feature (``video.embed``).
    text_hop, text_dim
        Text: seconds between frames, width of the hashed n-gram embedding.
    pairs : {"none", "matching"}
        ``matching``: every aligned sample (``"label": 1``) gets ``negatives`` negatives
        (``"label": 0``) that take their text (``swap="text"``) or their media features
        (``swap="media"``) from another sample, never one with the same normalised text
        or, in the same source, one less than ``min_gap`` seconds away (overlapping
        ones included); ``hard_negatives`` picks them at random (``none``), from the same
        source (``same-source``) or by the most similar text (``nearest``); ``seed`` seeds
        them. See :mod:`mmalign.export.pairs`. Needs grid ``cues`` and no fusion.
    mask : tuple of str
        ``MODALITY:RATE[:SPAN]`` each (``audio:0.15:10``): boolean span masks stored
        beside that modality's frame sequences (``pool="none"``), see
        :mod:`mmalign.export.masks`.

    The keywords ``hop``, ``audio``, ``video`` and ``text`` still work (deprecated) for
    ``grid_hop`` and the three feature lists.
    """

    grid: str = "cues"
    grid_hop: float | None = None
    window: float | None = None
    stride: float | None = None
    pool: str = "mean"
    fuse: str = "none"
    dim: int | None = None
    seed: int = 0
    sync: bool = False
    audio_features: tuple[str, ...] = AUDIO_FEATURES
    video_features: tuple[str, ...] = VIDEO_FEATURES
    text_features: tuple[str, ...] = TEXT_FEATURES
    sr: int = 16000
    audio_hop: float = 0.01
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    fps: float = 5.0
    text_hop: float = 0.1
    text_dim: int = 128
    video_stream: int | None = None
    width: int = 320
    embed: str | None = None
    pairs: str = "none"
    negatives: int = 1
    hard_negatives: str = "none"
    swap: str = "text"
    min_gap: float = 5.0
    mask: tuple[str, ...] = ()

    def check(self) -> None:
        """Refuse inconsistent settings with one line each.

        Raises
        ------
        UsageError
            An unknown grid, pooling or fusion; a grid without its lengths; a fusion of
            frame sequences, or of the wrong number of features; no feature at all.
        """
        if self.grid not in GRIDS:
            raise UsageError(f"unknown grid {self.grid!r}; choose one of {', '.join(GRIDS)}")
        if self.pool not in POOLS:
            raise UsageError(f"unknown pooling {self.pool!r}; choose one of {', '.join(POOLS)}")
        if self.grid == "frames" and not (self.grid_hop and self.grid_hop > 0):
            raise UsageError("{grid} frames needs {grid_hop} SECONDS", names=["grid", "grid_hop"])
        if self.grid == "windows" and not (self.window and self.window > 0 and self.stride and self.stride > 0):
            raise UsageError(
                "{grid} windows needs {window} SECONDS and {stride} SECONDS", names=["grid", "window", "stride"]
            )
        if self.fuse != "none" and self.pool == "none":
            raise UsageError(
                f"{{fuse}} {self.fuse} fuses pooled vectors: choose a {{pool}} other than none", names=["fuse", "pool"]
            )
        if not (self.audio_features or self.video_features or self.text_features):
            raise UsageError("nothing to export: every modality is switched off")
        if self.embed and not self.video_features:
            raise UsageError(
                "{embed} adds to the video features: name some with {video_features}", names=["embed", "video_features"]
            )
        from ..fusion import FUSIONS

        if self.fuse.replace("_", "-") not in FUSIONS:
            raise UsageError(f"unknown fusion {self.fuse!r}; choose one of {', '.join(FUSIONS)}")
        if self.fuse in ("sum", "compact-bilinear") and not self.dim:
            raise UsageError(f"{{fuse}} {self.fuse} needs {{dim}}", names=["fuse", "dim"])
        if self.dim and self.fuse not in ("sum", "compact-bilinear"):
            raise UsageError(
                f"{{dim}} is for {{fuse}} sum and compact-bilinear, not {self.fuse}", names=["dim", "fuse"]
            )
        # Checked here, before anything is decoded or written (the fusion would refuse later).
        features = self.feature_names()
        if self.fuse == "bilinear" and len(features) != 2:
            raise UsageError(
                f"{{fuse}} bilinear fuses exactly two features, got {len(features)} "
                f"({', '.join(features)}); choose two with {{audio_features}}, {{video_features}}, {{text_features}}",
                names=["fuse", "audio_features", "video_features", "text_features"],
            )
        if self.fuse == "compact-bilinear" and len(features) < 2:
            raise UsageError(
                f"{{fuse}} compact-bilinear needs at least two features, got {', '.join(features)}", names=["fuse"]
            )
        self._check_pairs()
        self.mask_specs()

    def _check_pairs(self) -> None:
        from .pairs import PAIRINGS, SWAPS, check_pairing

        if self.pairs not in PAIRINGS:
            raise UsageError(f"unknown {{pairs}} {self.pairs!r}; choose one of {', '.join(PAIRINGS)}", names=["pairs"])
        if self.pairs == "none":
            changed = [n for n in _PAIR_FIELDS if getattr(self, n) != _PAIR_DEFAULTS[n]]
            if changed:
                raise UsageError("{" + changed[0] + "} is for {pairs} matching", names=[changed[0], "pairs"])
            return
        check_pairing(self.negatives, self.hard_negatives, self.min_gap)
        if self.swap not in SWAPS:
            raise UsageError(f"unknown {{swap}} {self.swap!r}; choose one of {', '.join(SWAPS)}", names=["swap"])
        if self.grid != "cues":
            raise UsageError(
                "{pairs} matching pairs each cue's media with another cue's text: it needs {grid} cues",
                names=["pairs", "grid"],
            )
        if self.fuse != "none":
            raise UsageError(
                "{pairs} matching swaps one modality of a sample, which a fused vector no longer has apart: "
                "choose {fuse} none",
                names=["pairs", "fuse"],
            )
        if self.swap == "media" and not (self.audio_features or self.video_features):
            raise UsageError(
                "{swap} media swaps the audio and video features, and none is exported",
                names=["swap", "audio_features", "video_features"],
            )

    def mask_specs(self) -> list[MaskSpec]:
        """The masks asked for (:attr:`mask`), parsed and checked.

        Raises
        ------
        UsageError
            A malformed mask, two of one modality, a mask of a modality not exported, or
            a mask without frame sequences (``pool`` other than ``none``).
        """
        specs = [parse_mask(m) for m in self.mask]
        if not specs:
            return specs
        if self.pool != "none":
            raise UsageError("{mask} hides frames of frame sequences: it needs {pool} none", names=["mask", "pool"])
        seen: set[str] = set()
        on = {"audio": self.audio_features, "video": self.video_features, "text": self.text_features}
        for spec in specs:
            if spec.modality in seen:
                raise UsageError(f"{{mask}} names {spec.modality} twice", names=["mask"])
            seen.add(spec.modality)
            if not on[spec.modality]:
                raise UsageError(
                    f"{{mask}} {spec}: no {spec.modality} feature is exported",
                    names=["mask"],
                )
        return specs

    @property
    def format_version(self) -> int:
        """The export format these options write: 2 with pairs or masks, else 1 (what readers
        before them read)."""
        return 2 if self.pairs != "none" or self.mask else 1

    def feature_names(self) -> list[str]:
        """The features asked for, ``<modality>.<name>``: audio, video (with ``video.embed``
        when :attr:`embed` is set), then text."""
        return (
            [f"audio.{n}" for n in self.audio_features]
            + [f"video.{n}" for n in self.video_features]
            + (["video.embed"] if self.embed else [])
            + [f"text.{n}" for n in self.text_features]
        )

    def to_dict(self) -> dict[str, Any]:
        """The configuration as ``dataset.json`` records it (and :func:`~mmalign.export.config_hash` hashes).

        Keys keep the names of format 1 (``hop``, ``audio``, ``video``, ``text``), and the
        options added since are left out at the value earlier exports had, so the
        configuration of an earlier export of the same content is equal.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _ADDED and value == _ADDED[f.name]:
                continue
            if f.name in _PAIR_FIELDS and self.pairs == "none":
                continue
            if f.name == "mask":
                value = tuple(str(parse_mask(m)) for m in value)
            out[_STORED_AS.get(f.name, f.name)] = list(value) if isinstance(value, tuple) else value
        return out


# The names before one vocabulary (issue 19), for one release.
ExportOptions.__init__ = renamed_keywords(  # type: ignore[method-assign]
    hop="grid_hop", audio="audio_features", video="video_features", text="text_features"
)(ExportOptions.__init__)
