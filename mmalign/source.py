"""A source's features: what each kind of input file gives, decoded once, with provenance.

An input is a feature file (from ``mmalign extract``), a subtitle file or a media file
(:func:`kind_of`). This module turns one into timestamped :class:`~mmalign.timeline.FeatureSeq`
objects, for ``extract`` (every modality) and ``align`` (one sequence per side).

Kinds and names
    :func:`kind_of`, :func:`feature_names`, :data:`FEATURE_EXTS`
Features of one modality
    :func:`audio_sequences`, :func:`video_sequences`, :func:`text_sequences`
Every modality of a programme
    :func:`extract_all`
One sequence to align
    :func:`sequence_of`, :func:`common_feature`, :func:`alignment_inputs`

The heavy modules (the feature extractors, PyAV, librosa) are imported inside the
functions that need them: importing this module is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._compat import renamed_keywords
from .errors import InputError, UsageError
from .fileio import check_output

if TYPE_CHECKING:
    from .subtitles import Subtitles
    from .timeline import FeatureSeq

__all__ = [
    "FEATURE_EXTS",
    "FeatureChoiceError",
    "kind_of",
    "require_input",
    "feature_names",
    "audio_sequences",
    "video_sequences",
    "text_sequences",
    "extract_all",
    "sequence_of",
    "common_feature",
    "alignment_inputs",
]

#: Extensions of feature files (``mmalign extract`` output).
FEATURE_EXTS = frozenset({".safetensors", ".st", ".npz"})

Progress = Callable[[float, float], None]


class FeatureChoiceError(UsageError):
    """No single feature to align in a feature file: the caller must name one (``feature``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, names=["feature"])


def _no_progress(done: float, total: float) -> None:
    pass


def kind_of(path: str | os.PathLike[str]) -> str:
    """What an input file is, by its extension: ``"features"``, ``"subtitles"`` or ``"media"``."""
    from .align.sync import is_subtitle_path

    if Path(path).suffix.lower() in FEATURE_EXTS:
        return "features"
    return "subtitles" if is_subtitle_path(path) else "media"


def feature_names(value: str | Sequence[str], known: Collection[str], what: str) -> tuple[str, ...]:
    """Feature names from a comma-separated string (or a sequence), each checked against ``known``.

    Parameters
    ----------
    value : str or sequence of str
        ``"logmel, mfcc"`` or ``("logmel", "mfcc")``; repeats are dropped, order kept.
    known : collection of str
        The names on offer (e.g. :data:`mmalign.features.audio.AUDIO_FEATURES`).
    what : str
        What a name is, for the message (``"audio feature"``).

    Raises
    ------
    UsageError
        A name not in ``known``, or no name at all.
    """
    items = value.split(",") if isinstance(value, str) else value
    names = tuple(dict.fromkeys(v.strip() for v in items if v.strip()))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    return names


def require_input(path: Path, what: str) -> None:
    """Raise :class:`~mmalign.errors.InputError` ``"<path>: <what> not found"`` when ``path`` is missing."""
    if not path.exists():
        raise InputError(f"{path}: {what} not found")


@renamed_keywords(stream="audio_stream", workers="jobs")
def audio_sequences(
    media: Path,
    features: str | Sequence[str],
    *,
    sr: int = 16000,
    hop: float = 0.01,
    n_mels: int = 64,
    n_mfcc: int = 20,
    deltas: int = 0,
    fmin: float = 0.0,
    fmax: float | None = None,
    audio_stream: int | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> dict[str, FeatureSeq]:
    """Audio features of ``media`` (see :func:`mmalign.features.audio.audio_features`).

    ``features`` are names of :data:`~mmalign.features.audio.AUDIO_FEATURES`, comma-separated
    or as a sequence; ``hop`` is seconds between frames, ``deltas`` the MFCC delta orders.
    """
    from .features import audio

    feats = feature_names(features, audio.AUDIO_FEATURES, "audio feature")
    return audio.audio_features(
        media,
        feats,
        sr=sr,
        hop=hop,
        n_mels=n_mels,
        n_mfcc=n_mfcc,
        mfcc_deltas=deltas,
        fmin=fmin,
        fmax=fmax,
        audio_stream=audio_stream,
        jobs=jobs,
        progress=progress or _no_progress,
    )


@renamed_keywords(stream="video_stream")
def video_sequences(
    media: Path,
    features: str | Sequence[str],
    *,
    fps: float = 5.0,
    width: int = 320,
    video_stream: int | None = None,
    embed: Path | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    embed_size: int = 224,
    crop: bool = False,
    progress: Progress | None = None,
) -> dict[str, FeatureSeq]:
    """Video features of ``media`` at ``fps`` frames per second, and with ``embed`` (a
    TorchScript image model) an embedding per analysed frame; ``width`` 0 is full size.

    ``progress(done, total)`` follows the media clock (seconds analysed, of the duration).
    """
    from .features import video

    feats = feature_names(features, video.FEATURES, "video feature")
    seqs = video.extract(media, fps, features=feats, width=width or None, video_stream=video_stream, progress=progress)
    if embed is not None:
        require_input(embed, "model file")
        seq = video.embed(
            media,
            embed,
            fps,
            batch_size,
            device,
            size=embed_size,
            crop=crop,
            video_stream=video_stream,
            progress=progress,
        )
        seqs[seq.name] = seq
    return seqs


def text_sequences(
    subs_path: Path,
    features: str | Sequence[str],
    *,
    hop: float = 0.01,
    dim: int = 128,
    embed: Path | None = None,
    device: str = "cpu",
    duration: float | None = None,
) -> dict[str, FeatureSeq]:
    """Subtitle features of ``subs_path`` every ``hop`` seconds (``dim``: width of the hashed
    n-gram embedding; ``embed``: a TorchScript sentence model instead), up to ``duration``."""
    from . import subtitles as subtitles_mod
    from .features import text

    feats = feature_names(features, text.TEXT_FEATURES, "subtitle feature")
    encoder = None
    if embed is not None:
        require_input(embed, "model file")
        encoder = text.torchscript_encoder(embed, device=device)
    subs = subtitles_mod.read(subs_path)
    return text.text_features(subs, feats, hop=hop, duration=duration, dim=dim, encoder=encoder, source=subs_path)


@renamed_keywords(hop="audio_hop", workers="jobs")
def extract_all(
    media: Path,
    subs: Path | Mapping[str, Path] | None,
    folder: Path,
    *,
    stem: str | None = None,
    format: str = "safetensors",
    audio_features: str | Sequence[str] = "logmel,mfcc,speech",
    video_features: str | Sequence[str] = "hist,luma,motion,cut",
    text_features: str | Sequence[str] = "activity,embedding,cues",
    sr: int = 16000,
    audio_hop: float = 0.01,
    n_mels: int = 64,
    n_mfcc: int = 20,
    fps: float = 5.0,
    width: int = 320,
    text_hop: float = 0.01,
    audio_stream: int | None = None,
    video_stream: int | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
    stage: Callable[[str], None] | None = None,
) -> list[tuple[Path, dict[str, FeatureSeq]]]:
    """Every modality of one programme into ``folder``: ``<stem>.audio``, ``<stem>.video``
    (skipped when ``video_features`` is ``"none"`` or ``media`` has no video) and, with
    ``subs``, ``<stem>.text`` feature files, each stream decoded once. ``stem`` is the
    media file's own stem unless given.

    ``subs`` may map tags to subtitle files, for a programme with several:
    ``{"en": film.en.srt, "fr": film.fr.srt}`` writes ``<stem>.en.text`` and
    ``<stem>.fr.text`` (tag ``""``: ``<stem>.text``) beside the one audio and video file.

    All or nothing: each file goes to a temporary name in ``folder``; they are renamed only
    when every one is written, and removed (with ``folder``, when this call made it) on
    any failure. ``stage(label)`` announces each modality, ``progress(done, total)`` its
    work.

    Returns
    -------
    list of (Path, dict)
        Each file written and the sequences in it.

    Raises
    ------
    UsageError
        ``folder`` exists and is not a folder; a feature name unknown.
    InputError
        ``media`` or ``subs`` missing or unreadable.
    """
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder")
    require_input(media, "media file")
    texts: dict[str, Path] = {} if subs is None else dict(subs) if isinstance(subs, Mapping) else {"": Path(subs)}
    for path in texts.values():
        require_input(path, "subtitle file")
    from . import media as media_mod
    from .features.io import save_features

    stem = media.stem if stem is None else stem
    info = media_mod.probe(media)
    kinds: list[tuple[str, Path]] = [("audio", media)]
    skip_video = isinstance(video_features, str) and video_features.strip().lower() == "none"
    if not skip_video and any(st.kind == "video" for st in info.streams):
        kinds.append(("video", media))
    kinds += [(f"{tag}.text" if tag else "text", path) for tag, path in texts.items()]
    for kind, _src in kinds:  # before any work: no output may land on an input
        check_output(folder / f"{stem}.{kind}.{format}", [media, *texts.values()])
    made_dir = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    written: list[tuple[Path, dict[str, FeatureSeq]]] = []
    complete = False
    try:
        for kind, src in kinds:
            out = folder / f"{stem}.{kind}.{format}"
            if stage is not None:
                stage(f"{kind.split('.')[-1]} features")
            if kind == "audio":
                seqs = audio_sequences(
                    media,
                    audio_features,
                    sr=sr,
                    hop=audio_hop,
                    n_mels=n_mels,
                    n_mfcc=n_mfcc,
                    audio_stream=audio_stream,
                    jobs=jobs,
                    progress=progress,
                )
            elif kind == "video":
                seqs = video_sequences(
                    media, video_features, fps=fps, width=width, video_stream=video_stream, progress=progress
                )
            else:
                seqs = text_sequences(src, text_features, hop=text_hop, duration=info.duration)
            tmp = folder / f".{out.name}.{os.urandom(4).hex()}.tmp"
            staged.append((tmp, out))
            save_features(tmp, seqs, format=format, source=src)
            written.append((out, seqs))
        for tmp, out in staged:
            os.replace(tmp, out)
        complete = True
    finally:
        if not complete:
            for tmp, _ in staged:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            if made_dir:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    pass
    return written


@renamed_keywords(workers="jobs")
def sequence_of(
    path: Path,
    feature: str | None,
    other_kind: str,
    *,
    hop: float = 0.02,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> tuple[FeatureSeq, Subtitles | None]:
    """The sequence to align from one input, and the subtitles behind it (``None`` unless a subtitle file).

    A feature file gives ``feature`` (or its only one); a subtitle file its cue activity
    every ``hop`` seconds; a media file its speech probability when ``other_kind`` is
    ``"subtitles"``, else its MFCCs (timbre against another recording).

    Raises
    ------
    FeatureChoiceError
        A feature file with several features and no ``feature``.
    UsageError
        A feature file without ``feature``.
    """
    kind = kind_of(path)
    if kind == "features":
        from .features.io import load_features

        seqs = load_features(path)
        if feature is None:
            if len(seqs) != 1:
                raise FeatureChoiceError(f"{path} holds {', '.join(seqs)}: choose one with {{feature}}")
            return next(iter(seqs.values())), None
        if feature not in seqs:
            raise UsageError(f"{path} has no feature {feature} (it has {', '.join(seqs)})")
        return seqs[feature], None
    if kind == "subtitles":
        from . import subtitles as subtitles_mod
        from .features.text import text_features

        subs = subtitles_mod.read(path)
        return text_features(subs, ("activity",), hop=hop)["text.activity"], subs
    from .features.audio import audio_features

    # speech against subtitles; timbre (MFCC) against another recording
    name = "speech" if other_kind == "subtitles" else "mfcc"
    return audio_features(path, (name,), hop=hop, jobs=jobs, progress=progress or _no_progress)[f"audio.{name}"], None


def common_feature(a: Path, b: Path) -> str | None:
    """The feature to align in two feature files: ``None`` when each holds one, else the first both hold.

    Raises
    ------
    FeatureChoiceError
        Several features on a side and none in common.
    """
    from .features.io import read_metadata

    names_a = read_metadata(a).get("features", [])
    names_b = read_metadata(b).get("features", [])
    common = [n for n in names_a if n in names_b]
    if len(names_a) > 1 or len(names_b) > 1:
        if not common:
            raise FeatureChoiceError(f"{a} and {b} share no feature; choose one with {{feature}}")
        return str(common[0])
    return None


@renamed_keywords(workers="jobs")
def alignment_inputs(
    a: Path,
    b: Path,
    *,
    feature: str | None = None,
    hop: float = 0.02,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> tuple[FeatureSeq, Subtitles | None, FeatureSeq, Subtitles | None]:
    """The two sequences to align from two inputs of any kind, and the subtitles behind each.

    Picks the feature of two feature files (:func:`common_feature`) unless ``feature`` is
    given, and the features of media and subtitle files by what the other side is
    (:func:`sequence_of`).

    Returns
    -------
    (xa, subs_a, xb, subs_b)

    Raises
    ------
    InputError
        A missing input, or one without frames.
    UsageError
        Sequences of different widths; no feature to choose.
    """
    for path in (a, b):
        require_input(path, "input file")
    kind_a, kind_b = kind_of(a), kind_of(b)
    if feature is None and kind_a == kind_b == "features":
        feature = common_feature(a, b)
    xa, subs_a = sequence_of(a, feature, kind_b, hop=hop, jobs=jobs, progress=progress)
    xb, subs_b = sequence_of(b, feature, kind_a, hop=hop, jobs=jobs, progress=progress)
    from .align.sequences import check_pair

    check_pair(xa, xb)
    n, m = len(xa), len(xb)
    if n == 0 or m == 0:
        raise InputError(f"{a if n == 0 else b}: no frames to align")
    return xa, subs_a, xb, subs_b
