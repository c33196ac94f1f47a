"""The sync pipeline: re-time subtitles to a reference (media speech or other subtitles).

::

    media ──speech_features──► speech_activity ─┐
    reference subtitles ──cue_activity──────────┴─► estimate_linear ──► TimeMap ──► retimed Subtitles
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import subtitles as subtitles_mod
from .._compat import renamed_keywords
from ..errors import InputError, NotConfidentError, UsageError
from ..features import audio as audio_features
from ..features import vad
from ..features.text import cue_activity
from ..fileio import Pathlike
from ..parallel import one_blas_thread
from ..subtitles import Subtitles
from ..timeline import FeatureSeq, TimeMap
from .offset import LinearFit, estimate_linear
from .scoring import MARGIN_CENTER

if TYPE_CHECKING:  # annotations only: numpy.typing costs start-up time
    import concurrent.futures

    import numpy.typing as npt

    from .cue_words import Reader, WordEvidence

__all__ = [
    "SyncResult",
    "TimingCheck",
    "check_timing",
    "sync",
    "reference_activity",
    "is_subtitle_path",
    "cue_confidences",
    "mean_activity",
    "spoken",
    "dtw_guide",
    "words_confidence",
    "DEFAULT_MIN_CONFIDENCE",
    "DETECTORS",
]

#: Below this confidence ``mmalign sync`` refuses to write (exit code 4) unless forced.
DEFAULT_MIN_CONFIDENCE = 0.5

#: How speech is found in media: ``"fast"`` (signal features only), ``"both"`` (the fast
#: detector averaged with the Silero VAD model), ``"auto"`` (fast, then both when the
#: fast result is below :data:`DEFAULT_MIN_CONFIDENCE` or puts more than a quarter of
#: the cues where it hears little speech).
DETECTORS = ("auto", "fast", "both")
_SUBTITLE_EXTS = {"." + f for f in subtitles_mod.SUPPORTED_FORMATS}
log = logging.getLogger(__name__)


def is_subtitle_path(path: Pathlike) -> bool:
    """Whether ``path`` names a subtitle file (by its extension)."""
    return Path(path).suffix.lower() in _SUBTITLE_EXTS


@dataclass
class SyncResult:
    """What :func:`sync` found.

    Attributes
    ----------
    subtitles : Subtitles
        The re-timed subtitles (the input object is left untouched).
    timemap : TimeMap
        Maps the input subtitles' timeline to the reference's.
    fit : LinearFit
        Scale, offset, scores and confidence of the global fit.
    confidence : float
        0–1: the global fit's, or with several pieces their average weighted by cues;
        lowered when fewer than half the spoken cues land on speech (a mean activity of
        at least 0.25 inside the re-timed cue).
    reference : str
        The reference's path (``"<subtitles>"`` for an in-memory one).
    reference_kind : {"audio", "subtitles"}
    cue_confidences : np.ndarray
        0–1 per cue (file order): its piece's confidence, lowered when the cue lands
        where the reference has little speech (see :func:`cue_confidences`).
    original : Subtitles
        The subtitles as given.
    activity : FeatureSeq
        The reference's activity (speech probability, or cue activity of reference
        subtitles) on the reference timeline: what the cues were aligned to.
    seconds : dict
        Wall time of each stage (``speech_model`` when the Silero model ran).
    refined : np.ndarray of bool (N, 2), optional
        Per cue, whether its start / end was moved onto a reference cue boundary.
    detector : str
        What found the speech: ``"fast"``, ``"fast+silero"``, or ``"subtitles"`` for a
        subtitle reference.
    spoken : np.ndarray of bool
        Per cue, whether it is spoken (carries speech) and so was evidence for the map
        (sound descriptions and lyrics are not; see :func:`spoken`). Not given or empty:
        every cue.
    max_offset : float
        The largest shift that was considered, seconds.
    words : WordEvidence, optional
        What the word pass found (None when it did not run: ``words=False``, a subtitle
        reference, no language to read the cues in).
    """

    subtitles: Subtitles
    timemap: TimeMap
    fit: LinearFit
    confidence: float
    reference: str
    reference_kind: str
    cue_confidences: np.ndarray
    original: Subtitles
    activity: FeatureSeq
    seconds: dict[str, float] = field(default_factory=dict)
    refined: np.ndarray | None = None
    detector: str = "fast"
    spoken: np.ndarray = field(default_factory=lambda: np.ones(0, bool))
    max_offset: float = 300.0
    words: WordEvidence | None = None

    def __post_init__(self) -> None:
        if len(self.spoken) == 0:
            self.spoken = np.ones(len(self.original.cues), bool)

    @property
    def speech(self) -> np.ndarray:
        """Deprecated name of :attr:`spoken`."""
        import warnings

        from .._compat import DEPRECATED_IN, REMOVED_IN

        warnings.warn(
            f"SyncResult.speech is deprecated since {DEPRECATED_IN} and goes in {REMOVED_IN}; use SyncResult.spoken",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.spoken

    def to_check(self) -> np.ndarray:
        """Indices (file order) of the spoken cues below :data:`DEFAULT_MIN_CONFIDENCE`:
        those that land where the reference has little speech, or in a weak piece (the
        :meth:`gone` ones aside).  In a confident result these are the lines worth checking
        by hand."""
        return np.flatnonzero(self.spoken & ~self._gone_mask() & (self.cue_confidences < DEFAULT_MIN_CONFIDENCE))

    def gone(self) -> np.ndarray:
        """Indices (file order) of the cues of a cut: a stretch of the subtitles' programme that
        the reference lacks (a cut scene whose lines stay in the subtitles).  The map collapses
        the stretch onto the cut, so they are shown for no time there (start = end)."""
        return np.flatnonzero(self._gone_mask())

    def _gone_mask(self) -> np.ndarray:
        return self.timemap.collapsed(self.original.starts)

    def moves(self) -> list[dict[str, Any]]:
        """Per cue, in file order: where it went and how sure we are.

        Each item has ``index`` (0-based position in the file), ``id`` (the cue's
        identifier, or None), ``start`` and ``end`` (new times, s), ``shift`` (new start
        minus old start, s), ``confidence``, ``refined`` (whether the start or the end
        was moved onto a reference cue boundary), and ``speech`` (whether the cue is
        spoken, :attr:`spoken`, and so was evidence for the map; sound descriptions and
        lyrics follow it; the key keeps its name, a stable ``--json`` field).
        """
        out = []
        refined = self.refined if self.refined is not None else np.zeros((len(self.original.cues), 2), bool)
        spoken = self.spoken
        words = self._words_per_cue()
        for i, (old, new, conf) in enumerate(zip(self.original.cues, self.subtitles.cues, self.cue_confidences)):
            out.append(
                {
                    "index": i,
                    "id": old.identifier,
                    "start": round(new.start, 3),
                    "end": round(new.end, 3),
                    "shift": round(new.start - old.start, 3),
                    "confidence": round(float(conf), 3),
                    "refined": bool(refined[i].any()),
                    "speech": bool(spoken[i]),
                    "words": words[i],
                }
            )
        return out

    def _words_per_cue(self) -> list[dict[str, bool] | None]:
        """Per cue (file order): None when its words were not read, else whether they agree and moved it."""
        out: list[dict[str, bool] | None] = [None] * len(self.original.cues)
        if self.words is None:
            return out
        for k, i in enumerate(np.flatnonzero(self.spoken)):
            if self.words.read[k]:
                agree = self.words.agree[k]
                out[i] = {"agree": bool(agree == 1), "moved": bool(self.words.moved[k])}
        return out

    def _disowned_cues(self) -> tuple[int, int] | None:
        """The first and last cue (1-based, in the file) of the run the words disown, if any."""
        if self.words is None or self.words.disowned is None:
            return None
        idx = np.flatnonzero(self.spoken)
        lo, hi, _ = self.words.disowned
        return int(idx[lo]) + 1, int(idx[hi - 1]) + 1

    def _words_dict(self) -> dict[str, Any]:
        assert self.words is not None
        run = self._disowned_cues()  # cue numbers in the file, not among the spoken ones
        return {**self.words.to_dict(), "disowned": None if run is None else list(run)}

    def doubt(self, name: Callable[[str], str] = str) -> str:
        """The main reason for doubt about this result, in a few words (refusal messages).

        The first that applies: the cues lie further from the reference than
        ``max_offset``; too few of the spoken cues land on speech (most of them outside
        the reference, or on it); too few cues for the length of the reference; a run of
        cues at an end whose words are elsewhere; half the cues on little speech and words
        that do not agree (:func:`words_confidence`); a piece that is not confident;
        another placement that fits about as well; else a best placement that hardly
        stands out.

        Parameters
        ----------
        name : callable(str) -> str
            How a parameter is named in the text: as the keyword (``max_offset``, the
            default), or as a front end calls it (the command line passes
            :func:`mmalign.errors.as_flag`: ``--max-offset``).
        """
        spoken = self.spoken
        n = int(spoken.sum())
        t0, t1 = self.activity.t0, self.activity.t0 + self.activity.duration
        first, last = float(self.original.starts.min()), float(self.original.ends.max())
        if first - self.max_offset >= t1 or last + self.max_offset <= t0:  # no shift within reach overlaps
            return (
                f"the cues ({first:.0f}-{last:.0f} s) are more than the largest shift considered "
                f"({self.max_offset:g} s, {name('max_offset')}) away from the {t1 - t0:.0f} s of reference"
            )
        spoken = spoken & ~self._gone_mask()  # a cut's cues are on no speech by design
        n = int(spoken.sum())
        on = int(_on_speech(self.activity, self.subtitles.starts[spoken], self.subtitles.ends[spoken]).sum())
        fit = self.fit
        if on < _MIN_SUPPORTED_SHARE * n:
            outside = int(np.sum((self.subtitles.ends[spoken] <= t0) | (self.subtitles.starts[spoken] >= t1)))
            if outside > n - on - outside:  # most of the unsupported ones are not even on the media
                return f"{outside} of the {n} spoken cues fall outside the {t1 - t0:.0f} s of reference"
            return f"only {on} of the {n} spoken cues land on speech"
        if fit.evidence < 0.5:
            cues = "1 cue is" if n == 1 else f"{n} cues are"
            return f"{cues} too few to place on {self.activity.duration:.0f} s of reference"
        run = self._disowned_cues()
        if run is not None:
            return f"the words of cues {run[0]}-{run[1]} are not where the map puts them (a break or a cut it missed)"
        words = self.words
        unsupported = int(np.sum(self.cue_confidences[spoken] < DEFAULT_MIN_CONFIDENCE))
        if words is not None and _words_count_against(words.llr, unsupported / n if n else 1.0):
            return (
                f"{unsupported} of the {n} spoken cues land on little speech, and the words of only "
                f"{int(np.nansum(words.agree))} of the {int(np.isfinite(words.agree).sum())} judged agree"
            )
        pieces = self.timemap.pieces()
        weak = [p for p in pieces if p["confidence"] is not None and p["confidence"] < DEFAULT_MIN_CONFIDENCE]
        if len(pieces) > 1 and weak:
            return f"{len(weak)} of its {len(pieces)} pieces are not confident"
        if fit.rival is not None and fit.margin < MARGIN_CENTER:
            return (
                f"another placement fits about as well, offset {fit.rival['offset']:+.1f} s "
                f"at scale {fit.rival['scale']:.4f}"
            )
        return f"the best placement hardly stands out from the others (peak z {fit.peak_z:.1f})"

    def require(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> SyncResult:
        """This result, when its confidence reaches ``min_confidence``; else refuse it.

        Parameters
        ----------
        min_confidence : float
            0-1: the lowest confidence accepted (default :data:`DEFAULT_MIN_CONFIDENCE`).

        Returns
        -------
        SyncResult
            ``self``, so that ``sync(...).require(0.5)`` reads as one step.

        Raises
        ------
        NotConfidentError
            Below ``min_confidence``; its message gives the confidence and :meth:`doubt`
            (parameters as ``{name}``, see :class:`mmalign.errors.MmalignError`), its
            ``result`` is this result (to write it anyway, or to draw it).
        """
        if self.confidence >= min_confidence:
            return self
        raise NotConfidentError(
            f"not confident in the result (confidence {self.confidence:.2f} < {min_confidence}): "
            f"{self.doubt(lambda parameter: '{' + parameter + '}')}. Nothing written; check that the subtitles "
            "belong to this media",
            result=self,
            names=["max_offset"],
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``mmalign sync --json`` prints, less the output path)."""
        fit = self.fit
        return {
            "offset": round(fit.offset, 4),
            "scale": fit.scale,
            "confidence": round(self.confidence, 4),
            "cues": len(self.subtitles.cues),
            "speech_cues": int(self.spoken.sum()),
            "reference": self.reference,
            "reference_kind": self.reference_kind,
            "detector": self.detector,
            "score": round(fit.score, 4),
            "peak_z": round(fit.peak_z, 2),
            "exact_framerate_ratio": fit.exact_ratio,
            "pieces": self.timemap.pieces(),
            "words": None if self.words is None else self._words_dict(),
            "moves": self.moves(),
            "cues_to_check": self.to_check().tolist(),
            "gone_cues": self.gone().tolist(),
            "skipped": self.subtitles.skipped,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


#: Seconds of no activity left before a reference cue that starts where another ends:
#: the starts of back-to-back cues are the only timing evidence such a file has.
_ONSET_GAP = 0.1


@renamed_keywords(workers="jobs")
def reference_activity(
    reference: Pathlike | Subtitles,
    *,
    audio_stream: int | None = None,
    jobs: int | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> tuple[FeatureSeq, str]:
    """The activity signal of a reference: speech probability of media, or cue activity of subtitles.

    Returns the :class:`FeatureSeq` and the reference kind (``"audio"`` or ``"subtitles"``).
    """
    hop = audio_features.SYNC_HOP_LENGTH / audio_features.SYNC_SR
    if not isinstance(reference, Subtitles) and is_subtitle_path(reference):
        reference = subtitles_mod.read(reference)
    if isinstance(reference, Subtitles):
        return cue_activity(spoken(reference), hop=hop, gap=_ONSET_GAP), "subtitles"
    feats = audio_features.speech_features(reference, audio_stream=audio_stream, jobs=jobs, progress=progress)
    return audio_features.speech_activity(feats), "audio"


@renamed_keywords(workers="jobs")
@one_blas_thread
def sync(
    reference: Pathlike | Subtitles,
    subs: Pathlike | Subtitles,
    *,
    audio_stream: int | None = None,
    max_offset: float = 300.0,
    splits: bool = True,
    jobs: int | None = None,
    progress: Callable[[float, float], None] | None = None,
    activity: FeatureSeq | None = None,
    refine: bool = True,
    detector: str = "auto",
    stage: Callable[[str], None] | None = None,
    words: bool = True,
    language: str | None = None,
    aligner: str = "dtw",
    model: Pathlike | None = None,
) -> SyncResult:
    """Re-time subtitles to a reference.

    Parameters
    ----------
    reference : str, os.PathLike or Subtitles
        A media file (any container FFmpeg reads; its speech is the reference) or a
        subtitle file / :class:`Subtitles` with correct timing.
    subs : str, os.PathLike or Subtitles
        The subtitles to re-time.
    audio_stream : int, optional
        Which audio stream of the media (0 = first); default: its default stream.
    max_offset : float
        Largest shift considered, in seconds.
    splits : bool
        Let the offset change along the file (ad breaks, cut scenes), each piece
        keeping the global scale; the cues of a cut that the reference lacks collapse
        onto it (:meth:`SyncResult.gone`).
    jobs : int, optional
        Decoding processes (default: one per CPU).
    progress : callable(done_seconds, total_seconds), optional
        Progress of decoding.
    activity : FeatureSeq, optional
        The reference's speech activity (``"audio.speech"``, 0–1 per frame) when the
        caller already has it, e.g. from :func:`mmalign.features.audio.audio_features`;
        the media is then not decoded again.
    refine : bool
        With a subtitle reference, move each cue boundary onto the nearest reference cue
        boundary within 0.5 s (:func:`mmalign.align.refine.snap_to_reference`).  With
        media, cues keep the timing of their piece.
    detector : {"auto", "fast", "both"}
        How speech is found in media (see :data:`DETECTORS`).  The fast detector reads
        signal features at several hundred times real time; the Silero model
        (:mod:`mmalign.features.vad`) costs about 20 s of CPU time per hour of audio and
        is far less fooled by music, jingles and speech over a music bed.  ``"auto"``
        spends that time only when the fast result is not confident, or puts more than a
        quarter of the cues where the fast detector hears little speech (a song, a music
        bed), and then keeps the second result (its confidence included).
    stage : callable(name), optional
        Called with ``"speech model"`` when the Silero model's pass starts; its decoding
        then reports through ``progress`` from zero again.
    words : bool
        With media, read the spoken cues' words (:mod:`mmalign.align.cue_words`): a sample
        of them, read aloud by eSpeak NG and matched to the recording at their mapped
        places, judges the map (its log-odds enter the confidence, the file's and each
        cue's); when an unsure map has a rival placement, the one the words support better
        is kept; and when the per-cue timing is sloppy every cue is read and those whose
        words are clearly elsewhere within a second move there. Only stretches around the
        cues are decoded again.
    language : str, optional
        Language of the cues for the word pass (:func:`mmalign.speech.languages`);
        default: detected from their text.  A text that gives no language skips the pass.
    aligner : {"dtw", "combined"}
        Who places the cues the word pass re-times (sloppy per-cue timing): ``"dtw"``, the
        forced alignment of :mod:`mmalign.align.words`; ``"combined"``, that alignment with
        the attention aligner's frame embeddings joined to its features (``model`` of
        :func:`~mmalign.align.words.force_align`; needs torch). The map and the confidence
        are the same either way.
    model : str or os.PathLike, optional
        The attention aligner's weights with ``"combined"`` (default: the shipped ones).

    Returns
    -------
    SyncResult
        Nothing is written; use ``result.subtitles.write(path)``.
    """
    t_start = time.perf_counter()
    if not isinstance(subs, Subtitles):
        subs = subtitles_mod.read(subs)
    t_read = time.perf_counter()
    if not isinstance(reference, Subtitles) and activity is None and is_subtitle_path(reference):
        name = os.fspath(reference)
        reference = subtitles_mod.read(reference)  # read once: for the activity and the refinement
    else:
        name = "<subtitles>" if isinstance(reference, Subtitles) else os.fspath(reference)
    if detector not in DETECTORS:
        raise UsageError(f"unknown speech detector {detector!r}; choose from {', '.join(DETECTORS)}")
    learned = _learned_model(aligner, model)  # no torch, or no weights: refused before any work
    cepstra: tuple[np.ndarray, float, float] | None = None
    prepared = None
    if activity is None and words and not isinstance(reference, Subtitles):
        prepared = _prepare_words(reference, subs, language, audio_stream)
        # one decoding for the speech activity and the word pass's cepstra
        feats = audio_features.speech_features(
            reference, audio_stream=audio_stream, jobs=jobs, progress=progress, cepstra=True
        )
        activity, kind = audio_features.speech_activity(feats), "audio"
        cepstra = (feats.values[:, 3:].astype(np.float16), feats.t0, feats.hop)  # half the memory
        del feats
    elif activity is None:
        activity, kind = reference_activity(reference, audio_stream=audio_stream, jobs=jobs, progress=progress)
    else:
        kind = "subtitles" if activity.modality == "text" else "audio"
    ref: Pathlike | Subtitles | None = reference
    del reference
    ref_bounds = None
    if isinstance(ref, Subtitles):  # only its cue bounds are needed from here on: let a huge file go
        ref_bounds = (ref.starts, ref.ends)
        ref = None
    t_ref = time.perf_counter()
    is_spoken = _spoken_mask(subs)  # nothing but sound cues: they are the evidence
    evidence = _within_reach(spoken(subs, is_spoken), activity, max_offset)
    fit, timemap, confidence = _align(activity, evidence, max_offset, splits)
    used = "subtitles" if kind == "subtitles" else "fast"
    seconds = {}
    media_path = kind == "audio" and ref_bounds is None
    if media_path and (
        detector == "both"
        or (detector == "auto" and vad.available() and _unsure(activity, timemap, evidence, confidence))
    ):
        t_model = time.perf_counter()
        if stage is not None:
            stage("speech model")
        try:
            neural = vad.neural_activity(ref, audio_stream=audio_stream, jobs=jobs, progress=progress)
        except (OSError, RuntimeError) as exc:  # the model's runtime cannot load on this machine
            if detector == "both":
                raise
            log.warning("the Silero speech model could not run (%s); keeping the fast detector's result", exc)
        else:
            activity = vad.combine_activity(activity, neural)
            seconds["speech_model"] = time.perf_counter() - t_model
            fit, timemap, confidence = _align(activity, evidence, max_offset, splits)
            used = "fast+silero"
    retimed = subs.map_times(timemap)
    gone = timemap.collapsed(subs.starts)  # the cues of a cut: on no speech, and not snapped, by design
    refined = np.zeros((len(subs.cues), 2), bool)
    if refine and ref_bounds is not None:
        from .refine import snap_to_reference

        snapped = snap_to_reference(retimed.starts, retimed.ends, *ref_bounds)
        retimed = retimed.with_times(
            np.where(gone, retimed.starts, snapped.starts), np.where(gone, retimed.ends, snapped.ends)
        )
        refined = snapped.moved & ~gone[:, None]
    per_cue = cue_confidences(
        activity, timemap, subs.starts, retimed.starts, retimed.ends, default=fit.confidence, spoken=is_spoken
    )
    present = is_spoken & ~gone
    confidence *= _support_factor(_on_speech(activity, retimed.starts[present], retimed.ends[present]))
    word_ev = None
    if words and media_path and ref is not None and (cepstra is not None or os.path.isfile(ref)):
        t_words = time.perf_counter()
        reader = prepared.result() if prepared is not None else _reader(ref, subs, is_spoken, language, audio_stream)
        if reader is not None:
            reader.model = learned
        found = (
            None
            if reader is None
            else _word_pass(subs, is_spoken, timemap, fit, confidence, activity, reader, cepstra, max_offset)
        )
        if found is not None:
            fit, timemap, retimed, confidence, per_cue, word_ev = found
            seconds["words"] = time.perf_counter() - t_words
            gone = timemap.collapsed(subs.starts)  # the words may have taken another map
    if gone.any():  # a cut's cues are shown for no time at it (the map keeps the end of one that runs past it)
        retimed = retimed.with_times(retimed.starts, np.where(gone, retimed.starts, retimed.ends))
    t_end = time.perf_counter()
    seconds = {
        "read_subtitles": t_read - t_start,
        "reference": t_ref - t_read,
        "align": t_end - t_ref - seconds.get("speech_model", 0.0) - seconds.get("words", 0.0),
        **seconds,
    }
    return SyncResult(
        retimed,
        timemap,
        fit,
        confidence,
        name,
        kind,
        per_cue,
        subs,
        activity,
        seconds,
        refined,
        used,
        is_spoken,
        max_offset,
        word_ev,
    )


#: Who places the cues the word pass re-times (:func:`sync`'s ``aligner``).
SYNC_ALIGNERS = ("dtw", "combined")


def _learned_model(aligner: str, model: Pathlike | None) -> Any:
    """``Reader.model`` for ``aligner``: None (the DTW alone), or the attention aligner with its weights."""
    if aligner not in SYNC_ALIGNERS:
        raise UsageError(f"{{aligner}} must be one of {', '.join(SYNC_ALIGNERS)}, not {aligner!r}", names=["aligner"])
    if aligner == "dtw":
        if model is not None:
            raise UsageError(
                "{model} applies to the attention aligner ({aligner} combined)", names=["model", "aligner"]
            )
        return None
    if model is not None and not os.path.isfile(model):
        raise InputError(f"{os.fspath(model)}: aligner weights not found")
    from .transcript import attention_aligner

    attention_aligner()  # torch: imported here, refused at once without it
    from .attention import default_model_path, load_model

    return load_model(default_model_path() if model is None else model)


def _spoken_mask(subs: Subtitles) -> np.ndarray:
    """Which cues are evidence: the spoken ones (all of them when none is)."""
    mask = subs.speech_mask()
    if not mask.any():
        mask[:] = True
    return mask


def _reader(
    ref: Pathlike, subs: Subtitles, is_spoken: np.ndarray, language: str | None, audio_stream: int | None
) -> Reader | None:
    """The word pass's reader (:func:`mmalign.align.cue_words.prepare`); None when the cues give no language."""
    from .cue_words import prepare

    reader = prepare(
        ref, [c.text for c, k in zip(subs.cues, is_spoken) if k], language=language, audio_stream=audio_stream
    )
    if reader is None:
        log.info("the word pass is skipped: the cues' text gives no language")
    return reader


def _prepare_words(
    ref: Pathlike, subs: Subtitles, language: str | None, audio_stream: int | None
) -> concurrent.futures.Future[Reader | None]:
    """:func:`_reader` on a thread of its own: the language and the first readings while the media decodes."""
    import concurrent.futures

    if language is not None:
        from .. import speech

        speech.resolve_language(language)  # a language eSpeak NG does not speak is a usage error, before any work
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mmalign-words")
    future = pool.submit(_reader, ref, subs, _spoken_mask(subs), language, audio_stream)
    pool.shutdown(wait=False)
    return future


def _word_pass(
    subs: Subtitles,
    is_spoken: np.ndarray,
    timemap: TimeMap,
    fit: LinearFit,
    confidence: float,
    activity: FeatureSeq,
    reader: Reader,
    cepstra: tuple[np.ndarray, float, float] | None,
    max_offset: float,
) -> tuple[LinearFit, TimeMap, Subtitles, float, np.ndarray, WordEvidence]:
    """The word pass of :func:`sync` (``words=True``), with the reader of :func:`_reader`."""
    from .cue_words import RUN_AGREE, aligned_placement, combine, find_placement, log_odds, word_evidence
    from .scoring import Piece, framerate_ratios
    from .splits import pieces_map

    idx = np.flatnonzero(is_spoken)
    end = activity.t0 + activity.duration  # the recording's length
    texts = [subs.cues[i].text for i in idx]
    src_starts, src_ends = subs.starts[idx], subs.ends[idx]
    if cepstra is not None:
        reader.use_cepstra(cepstra[0], t0=cepstra[1], hop=cepstra[2])

    def read(tm: TimeMap, retime: bool, sloppy: bool | None = None) -> WordEvidence:
        s, e = tm.apply_spans(src_starts, src_ends)
        gone = tm.collapsed(src_starts)  # a cue of a cut stretch: its words are nowhere to read
        said = [("" if g else t) for t, g in zip(texts, gone, strict=True)] if gone.any() else texts
        return word_evidence(
            reader.audio, said, s, e, language=reader.language, retime=retime, reader=reader, sloppy=sloppy
        )

    evidence = read(timemap, True)
    if fit.rival is not None and combine(confidence, evidence.llr) < DEFAULT_MIN_CONFIDENCE:
        # an unsure map with a rival placement: keep the one whose words are where it puts them
        rival = TimeMap.linear(float(fit.rival["scale"]), float(fit.rival["offset"]), confidence=fit.confidence)
        other = read(rival, True)
        if other.llr > evidence.llr + _RIVAL_LOG_ODDS:
            log.info("the words put the cues at the rival placement (offset %+.3f s)", fit.rival["offset"])
            was = {"scale": fit.scale, "offset": fit.offset, "score": fit.score}
            fit = replace(fit, scale=fit.rival["scale"], offset=fit.rival["offset"], rival=was)
            timemap, evidence = rival, other
    if combine(confidence, evidence.llr) < DEFAULT_MIN_CONFIDENCE:
        # still unsure: where do a few cues' words say the cues are?
        found = find_placement(
            reader, texts, src_starts, duration=end, max_offset=max_offset, scales=framerate_ratios()
        )
        if found is not None and found[2] >= _SEARCH_VOTES:
            scale, offset, _ = found
            # the anchors' places are as sharp as their readings: settle the offset on the sample's words
            trials = [(read(TimeMap.linear(scale, offset + d), False).llr, d) for d in _SEARCH_STEPS]
            offset += max(trials)[1]
            searched = TimeMap.linear(scale, offset, confidence=fit.confidence)
            other = read(searched, True)
            log.debug("words' placement %+.3f s at %.6f: log-odds %.1f", offset, scale, other.llr)
            agree = other.agree[np.isfinite(other.agree)]
            if (
                other.llr >= _SEARCH_LOG_ODDS
                and float(np.mean(agree)) >= _SEARCH_AGREE
                and other.llr > evidence.llr + _RIVAL_LOG_ODDS
            ):
                log.info("the words put the cues at offset %+.3f s, scale %.6f", offset, scale)
                was = {"scale": fit.scale, "offset": fit.offset, "score": fit.score}
                fit = replace(fit, scale=scale, offset=offset, rival=was)
                timemap, evidence = searched, other
    aligned_at: np.ndarray | None = None  # where the forced alignment found each cue, when its placement is taken
    if combine(confidence, evidence.llr) < DEFAULT_MIN_CONFIDENCE:
        # still unsure (a break inside talk, a programme's jingle and unsubtitled talk): where does
        # a forced alignment of all the text to the whole recording put the cues?
        placed = aligned_placement(reader, texts, src_starts, duration=end, scales=framerate_ratios())
        if placed is not None:
            scale, runs, where = placed
            # a cue between runs (or before the first) goes with the run before (after) it; the words settle it
            firsts = [0] + [lo for lo, _, _ in runs[1:]]
            lasts = firsts[1:] + [len(texts)]
            pieces = [Piece(a, b, off, fit.confidence) for a, b, (_, _, off) in zip(firsts, lasts, runs, strict=True)]
            aligned = pieces_map(pieces, src_starts, src_ends, scale)
            aligned = _settle_by_words(reader, texts, src_starts, src_ends, aligned, end, max_offset)
            other = read(aligned, True)
            agree = other.agree[np.isfinite(other.agree)]
            log.debug(
                "aligned placement %s at %.6f: log-odds %.1f",
                [(p.first, p.end, round(p.offset, 2)) for p in pieces],
                scale,
                other.llr,
            )
            if (
                len(agree)
                and combine(confidence, other.llr) >= DEFAULT_MIN_CONFIDENCE
                and float(np.mean(agree)) >= _SEARCH_AGREE
                and other.disowned is None
                and other.llr > evidence.llr + _RIVAL_LOG_ODDS
            ):
                main = max(pieces, key=lambda p: p.end - p.first)
                log.info(
                    "a forced alignment of the text puts the cues in %d piece(s), offset %+.3f s at scale %.6f",
                    len(pieces),
                    main.offset,
                    scale,
                )
                was = {"scale": fit.scale, "offset": fit.offset, "score": fit.score}
                fit = replace(fit, scale=scale, offset=main.offset, rival=was)
                timemap, evidence, aligned_at = aligned, other, where
    if combine(confidence, evidence.llr) >= DEFAULT_MIN_CONFIDENCE:
        # a map trusted as it is: are cues at its ends, or next to its boundaries, on the wrong side?
        # (an untrusted one is not made trusted by moving some of its cues to where their words are)
        settled = _settle_by_words(reader, texts, src_starts, src_ends, timemap, end, max_offset)
        if settled is not timemap:
            # the timing is as sloppy (or exact) as it was under the map before: settling moved a few cues
            timemap, evidence = settled, read(settled, True, evidence.sloppy)
        if evidence.disowned is not None:
            # a run at an end whose words are not where the map puts them: where are they? (the
            # search above stops where their best match is their own place, which other talk, an
            # ad's, can be.) Taken only where the words then own every cue.
            lo, hi, _ = evidence.disowned
            side = "head" if lo == 0 else "tail"
            again = _settle_by_words(reader, texts, src_starts, src_ends, timemap, end, max_offset, side)
            if again is not timemap:
                other = read(again, True, evidence.sloppy)
                if other.disowned is None and other.llr >= evidence.llr:
                    log.info(
                        "cues %d-%d: their words are elsewhere; the map follows them", idx[lo] + 1, idx[hi - 1] + 1
                    )
                    timemap, evidence = again, other
    retimed = subs.map_times(timemap)
    starts, ends = retimed.starts.copy(), retimed.ends.copy()
    starts[idx], ends[idx] = evidence.starts, evidence.ends
    retimed = retimed.with_times(starts, ends)
    per_cue = cue_confidences(activity, timemap, subs.starts, starts, ends, default=fit.confidence, spoken=is_spoken)
    present = idx[~timemap.collapsed(src_starts)]
    unsupported = float(np.mean(per_cue[present] < DEFAULT_MIN_CONFIDENCE)) if len(present) else 0.0
    per_cue_llr = np.zeros(len(per_cue))
    agree = evidence.agree
    per_cue_llr[idx] = np.where(agree == 1, log_odds(np.ones(1)), np.where(agree == 0, log_odds(np.zeros(1)), 0.0))
    per_cue = np.array([combine(c, max(evidence.llr, 0.0) + d) if d > 0 else c for c, d in zip(per_cue, per_cue_llr)])
    overall = words_confidence(confidence, evidence.llr, unsupported)
    if evidence.disowned is not None:
        # the words of a run of cues at an end are not where the map puts them
        lo, hi, z = evidence.disowned
        log.info("cues %d-%d: their words are not where the map puts them (z %.1f)", idx[lo] + 1, idx[hi - 1] + 1, z)
        overall = min(overall, evidence.cap)
        per_cue[idx[lo:hi]] = np.minimum(per_cue[idx[lo:hi]], evidence.cap)
    if aligned_at is not None:
        # a cue that the forced alignment did not find where it now is stands on its one reading
        # alone (the cues before an ad with talk of its own can read as well on the ad): worth a look
        unconfirmed = idx[~(np.abs(aligned_at - evidence.starts) <= RUN_AGREE)]
        per_cue[unconfirmed] = np.minimum(per_cue[unconfirmed], confidence)
    return fit, timemap, retimed, overall, per_cue, evidence


def _settle_by_words(
    reader: Reader,
    texts: list[str],
    src_starts: np.ndarray,
    src_ends: np.ndarray,
    timemap: TimeMap,
    duration: float,
    max_offset: float,
    disowned: str | None = None,
) -> TimeMap:
    """The map with a piece for each run of cues at an end of the file that its words put elsewhere
    (:func:`mmalign.align.cue_words.edge_runs`), then each boundary between its pieces settled by the
    cues' words (:func:`mmalign.align.cue_words.settle_pieces`); ``timemap`` itself when nothing moves.
    ``disowned`` (``"head"`` or ``"tail"``): only that end is searched, past the cues' own places.

    Both work on the spoken cues in order, under a map whose cue-holding pieces share one scale
    (a cue moves by the difference of two offsets); any other map is given back as it is.
    """
    from .cue_words import EDGE_REACH, edge_runs, settle_pieces
    from .splits import edge_piece, regroup

    if len(src_starts) < 2 or np.any(np.diff(src_starts) < 0):
        return timemap
    scales = np.unique(timemap.scales[timemap.piece_index(src_starts)])
    if len(scales) != 1 or scales[0] <= 0:
        return timemap
    scale = float(scales[0])
    s, e = timemap.apply_spans(src_starts, src_ends)
    runs = edge_runs(reader, texts, s, e, duration=duration, reach=min(max_offset, EDGE_REACH), disowned=disowned)
    if disowned is not None and not runs:
        return timemap
    for lo, hi, shift in runs:
        p = int(timemap.piece_index(src_starts[lo : lo + 1])[0])
        offset = float(timemap.offsets[p]) + shift
        log.info("cues %d-%d are %+.2f s from where the map put them: their words are there", lo + 1, hi, shift)
        timemap = edge_piece(timemap, src_starts, src_ends, scale, lo, hi, offset, float(timemap.confidences[p]))
    piece = timemap.piece_index(src_starts)
    if len(np.unique(piece)) < 2:
        return timemap
    s, e = timemap.apply_spans(src_starts, src_ends)
    settled = settle_pieces(reader, texts, s, e, piece, timemap.offsets)
    if np.array_equal(settled, piece):
        return timemap
    for i in np.flatnonzero(settled != piece):
        log.info("cue %d reads better under the next piece's map: it goes there", i + 1)
    return regroup(timemap, src_starts, src_ends, scale, settled)


#: Share of the spoken cues that the speech activity leaves unsupported (their own confidence
#: below :data:`DEFAULT_MIN_CONFIDENCE`) from which words that do not agree count against a map.
_UNSUPPORTED_SHARE = 0.5


def words_confidence(confidence: float, llr: float, unsupported: float) -> float:
    """A map's confidence from the speech activity's (``confidence``) and the words' log-odds (``llr``).

    Words that agree raise it (:func:`mmalign.align.cue_words.combine`). Words that do not
    agree take nothing away from a map that puts the cues on speech: subtitles translated
    into another language, or singing the reading cannot match, say nothing about the map.
    But where at least :data:`_UNSUPPORTED_SHARE` of the spoken cues (``unsupported``, 0-1)
    land on little speech as well, nothing speaks for the map but a fit of a few cues, and
    the words' log-odds count against it too: subtitles of another programme, fitted in two
    pieces to another programme's talk, look like that.
    """
    from .cue_words import combine, shift_log_odds

    if not _words_count_against(llr, unsupported):
        return combine(confidence, llr)
    return shift_log_odds(min(max(confidence, 1e-6), 1 - 1e-6), llr)


def _words_count_against(llr: float, unsupported: float) -> bool:
    """Whether the words' log-odds ``llr`` lower a map that leaves ``unsupported`` (0-1) of
    the spoken cues on little speech (:func:`words_confidence`)."""
    return llr < 0 and unsupported >= _UNSUPPORTED_SHARE


#: Log-odds by which a rival placement's words must beat the chosen map's to replace it.
_RIVAL_LOG_ODDS = 3.0
#: A placement found from the words alone (:func:`mmalign.align.cue_words.find_placement`)
#: needs this many anchors agreeing on it, these log-odds from the cues read there, and this
#: share of them agreeing: a map right for only part of the file (a break) is not taken.
_SEARCH_VOTES = 3
_SEARCH_LOG_ODDS = 6.0
_SEARCH_AGREE = 0.8
#: Offsets (s) around a placement found from the words that are tried with the sample's words.
_SEARCH_STEPS = (-0.4, -0.2, 0.0, 0.2, 0.4)


def _within_reach(evidence: Subtitles, activity: FeatureSeq, max_offset: float) -> Subtitles:
    """The cues that some considered map can put on the reference; the others are left out with a warning.

    A cue that starts later than 1.5 times ``(reference end + max_offset) / smallest scale``
    lands far beyond the reference under every candidate: it carries no evidence, and a cue at
    999:00:00 would otherwise size the search's arrays.  The work is then sized by the
    reference's duration, never by a cue's timestamp.
    """
    from .scoring import framerate_ratios

    if not evidence.cues:
        return evidence
    # no map of the search puts a later cue on the reference (half as much again, a margin for
    # the drift correction; twice made a 24 h reference's search exceed the frame cap)
    reach = 1.5 * (activity.t0 + activity.duration + max_offset) / min(framerate_ratios())
    far = evidence.starts > reach
    if not far.any():
        return evidence
    if far.all():  # nothing can land: fit the first stretch (as long as the reach) to report why
        far = evidence.starts > evidence.starts.min() + reach
        if not far.any():
            return evidence
    log.warning(
        "%d of %d cues start after %.0f s, beyond the reach of the %.0f s of reference; they are left out "
        "of the fit and follow its map",
        int(far.sum()),
        len(far),
        reach,
        activity.duration,
    )
    return replace(evidence, cues=[c for c, f in zip(evidence.cues, far) if not f])


def spoken(subs: Subtitles, mask: np.ndarray | None = None) -> Subtitles:
    """The spoken cues, those that carry speech (:meth:`Subtitles.speech_mask`, or ``mask`` when given):
    the evidence a sync uses.

    Sound descriptions and lyrics (``[door slams]``, ``♪ ... ♪``) sit where there is no
    speech, by design; they follow the map found from the spoken cues.  A file with no
    spoken cue at all is returned whole.
    """
    mask = subs.speech_mask() if mask is None else np.asarray(mask, bool)
    if mask.all() or not mask.any():
        return subs
    return replace(subs, cues=[c for c, keep in zip(subs.cues, mask) if keep])


#: Largest shift (seconds) :func:`dtw_guide` considers, as ``mmalign sync``'s default:
#: the split search's memory grows with it.
_GUIDE_MAX_OFFSET = 300.0


def dtw_guide(
    a: FeatureSeq, b: FeatureSeq, subs_a: Subtitles | None = None, subs_b: Subtitles | None = None
) -> tuple[TimeMap, float] | None:
    """A map from ``a``'s timeline to ``b``'s found by the sync pipeline, to guide DTW.

    DTW on activity signals (cue activity, speech probability) is ambiguous: inside a
    stretch of equal activity on both sides every path costs the same, and dense speech
    fits dense cues at many places, so an unguided path can wander by tens of seconds.
    The sync pipeline (global fit with framerate ratios, then splits) places the cues
    of one side on the other's activity by their whole pattern; DTW then only refines
    near that map.

    Parameters
    ----------
    a, b : FeatureSeq
        The two sequences to align (``a`` onto ``b``).
    subs_a, subs_b : Subtitles, optional
        The cues behind ``a`` or ``b`` when that side is a subtitle file.

    Returns
    -------
    (TimeMap, float) or None
        The map and its confidence (0-1), or None when neither side is subtitles or the
        other side is not a one-column activity.
    """
    if subs_a is not None:
        subject, invert = subs_a, False
        ref = reference_activity(subs_b)[0] if subs_b is not None else b
    elif subs_b is not None:
        subject, invert, ref = subs_b, True, a
    else:
        return None
    if ref.values.shape[1] != 1 or len(ref) == 0 or not subject.cues:
        return None
    mask = subject.speech_mask()
    evidence = spoken(subject, mask if mask.any() else None)
    from ..features.text import timeline_end

    # any placement on either timeline (the subject's sized like its activity, within MAX_TIMELINE)
    reach = max(ref.t0 + ref.duration, timeline_end(evidence.starts, evidence.ends), 1.0)
    near = evidence.starts < reach  # the subject's own timeline, bounded like its activity
    if not near.all():
        evidence = replace(evidence, cues=[c for c, k in zip(evidence.cues, near) if k])
    fit, timemap, confidence = _align(ref, evidence, min(reach, _GUIDE_MAX_OFFSET), True)
    return (timemap.invert() if invert else timemap), float(confidence)


#: A confident map that puts more than this share of the cues where the fast detector
#: hears little speech (singing, speech over a music bed) still gets the model's look.
_OFF_SPEECH_SHARE = 0.25


def _unsure(activity: FeatureSeq, timemap: TimeMap, subs: Subtitles, confidence: float) -> bool:
    """Whether a result from the fast detector deserves a second look (``detector="auto"``)."""
    if confidence < DEFAULT_MIN_CONFIDENCE:
        return True
    per_cue = cue_confidences(
        activity, timemap, subs.starts, *timemap.apply_spans(subs.starts, subs.ends), default=confidence
    )
    return float(np.mean(per_cue < DEFAULT_MIN_CONFIDENCE)) > _OFF_SPEECH_SHARE


#: A map should leave at least this share of the cues on speech (a mean activity of at
#: least half :data:`FULL_COVERAGE` inside the re-timed cue); below it, its confidence
#: falls with the square of the share (a third of the cues on speech: at most 0.44).
_MIN_SUPPORTED_SHARE = 0.5


def _on_speech(activity: FeatureSeq, starts: npt.ArrayLike, ends: npt.ArrayLike) -> np.ndarray:
    """Which re-timed cues land on speech: a mean activity of at least half :data:`FULL_COVERAGE`."""
    return mean_activity(activity, starts, ends) >= FULL_COVERAGE / 2


def _support_factor(on_speech: np.ndarray) -> float:
    """Confidence factor of a map from which of its re-timed spoken cues land on speech.

    However clearly a handful of cues fits, a map that leaves most of the others where
    the reference has no speech is no answer for the file: unrelated subtitles on a song,
    where a few long cues find a place among the music, look like that.
    """
    if len(on_speech) == 0:
        return 1.0
    return min(1.0, float(np.mean(on_speech)) / _MIN_SUPPORTED_SHARE) ** 2


def _align(activity: FeatureSeq, subs: Subtitles, max_offset: float, splits: bool) -> tuple[LinearFit, TimeMap, float]:
    """The global fit, the (piecewise) map and its confidence, for one reference activity."""
    from .splits import estimate_piecewise, rescue_ends, settle_boundaries

    fit = estimate_linear(activity, subs.starts, subs.ends, max_offset=max_offset)
    timemap = (
        estimate_piecewise(activity, subs.starts, subs.ends, fit, max_offset=max_offset) if splits else fit.timemap
    )

    def weighted(timemap: TimeMap) -> float:  # the pieces' confidences, weighted by their cues
        if timemap.is_linear:
            return fit.confidence
        per_cue = timemap.confidences[timemap.piece_index(subs.starts)]
        return float(np.nanmean(per_cue)) if np.isfinite(per_cue).any() else fit.confidence

    confidence = weighted(timemap)
    if splits and confidence >= DEFAULT_MIN_CONFIDENCE:  # a confident map: are cues at its ends left behind?
        on_speech = lambda s, e: _on_speech(activity, s, e)  # noqa: E731
        timemap = rescue_ends(activity, subs.starts, subs.ends, timemap, fit.scale, on_speech, max_offset=max_offset)
        timemap = settle_boundaries(subs.starts, subs.ends, timemap, fit.scale, on_speech)
        confidence = weighted(timemap)
    return fit, timemap, confidence


#: A cue whose mapped interval holds at least this mean activity counts as fully on speech.
FULL_COVERAGE = 0.5


@renamed_keywords(speech="spoken")
def cue_confidences(
    activity: FeatureSeq,
    timemap: TimeMap,
    sources: npt.ArrayLike,
    starts: npt.ArrayLike,
    ends: npt.ArrayLike,
    *,
    default: float = np.nan,
    spoken: npt.ArrayLike | None = None,
) -> np.ndarray:
    """Confidence of each re-timed cue.

    The confidence of the cue's piece of ``timemap``, scaled down when the cue lands
    where the reference has little activity: ``piece * min(1, coverage / 0.5)``, with
    ``coverage`` the mean activity (0–1) inside the re-timed cue.

    Parameters
    ----------
    activity : FeatureSeq
        Reference activity (0–1) on the reference timeline.
    timemap : TimeMap
        The map that placed the cues; its piece confidences.
    sources : array-like of float
        Cue start times before the map (they pick the piece).
    starts, ends : array-like of float
        Cue times after the map.
    default : float
        Used for pieces without a confidence.
    spoken : array-like of bool, optional
        Which cues are spoken (default: all); the others (sound descriptions,
        lyrics) are not expected on speech and keep their piece's confidence.

    Returns
    -------
    np.ndarray of float64
    """
    sources = np.asarray(sources, np.float64)
    if timemap.confidences is None:
        piece = np.full(len(sources), default)
    else:
        piece = np.asarray(timemap.confidences, np.float64)[timemap.piece_index(sources)]
        piece = np.where(np.isfinite(piece), piece, default)
    cover = mean_activity(activity, starts, ends)
    if spoken is not None:
        cover = np.where(np.asarray(spoken, bool), cover, FULL_COVERAGE)
    out: np.ndarray = np.clip(piece * np.minimum(1.0, cover / FULL_COVERAGE), 0.0, 1.0)
    return out


def mean_activity(activity: FeatureSeq, starts: npt.ArrayLike, ends: npt.ArrayLike) -> np.ndarray:
    """Mean of an activity's first column over each interval (0 outside its frames)."""
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(np.maximum(np.asarray(ends, np.float64), starts))  # asarray: typed as an array
    a = activity.values[:, 0]
    c = np.concatenate([[0.0], np.cumsum(a, dtype=np.float64)])
    # frame k covers [t0 + (k - 1/2) hop, t0 + (k + 1/2) hop)
    i0 = np.clip(np.floor((starts - activity.t0) / activity.hop + 0.5).astype(np.int64), 0, len(a))
    i1 = np.clip(np.floor((ends - activity.t0) / activity.hop + 0.5).astype(np.int64), 0, len(a))
    width = np.maximum(np.floor((ends - starts) / activity.hop + 0.5), 1.0)
    out: np.ndarray = np.clip((c[i1] - c[i0]) / width, 0.0, 1.0)
    return out


@dataclass(frozen=True)
class TimingCheck:
    """Whether subtitles were already in sync: how far :func:`sync` moved their spoken cues.

    Attributes
    ----------
    in_sync : bool
        No spoken cue moved by more than ``tolerance``.
    tolerance : float
        Seconds a cue may move and still count as in sync.
    cues : int
        Spoken cues checked (sound descriptions and lyrics follow them and are not counted).
    off : int
        Spoken cues that moved by more than ``tolerance``.
    median_shift, max_shift : float
        The median shift of the spoken cues, and the largest one (signed), seconds.
    first_off : float or None
        Start time, in the checked file, of the first cue that moved by more than
        ``tolerance``.
    """

    in_sync: bool
    tolerance: float
    cues: int
    off: int
    median_shift: float
    max_shift: float
    first_off: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (``mmalign sync --check --json``)."""
        return {
            "in_sync": self.in_sync,
            "tolerance": self.tolerance,
            "cues_checked": self.cues,
            "cues_off": self.off,
            "median_shift": round(self.median_shift, 3),
            "max_shift": round(self.max_shift, 3),
            "first_off": None if self.first_off is None else round(self.first_off, 3),
        }

    def sentence(self) -> str:
        """One line: in sync, or by how much and where not."""
        if self.in_sync:
            return (
                f"in sync: {self.cues} spoken cues within {self.tolerance:g} s (largest shift {self.max_shift:+.3f} s)"
            )
        assert self.first_off is not None
        h, rest = divmod(self.first_off, 3600)
        m, s = divmod(rest, 60)
        return (
            f"out of sync: {self.off} of {self.cues} spoken cues are off by more than {self.tolerance:g} s "
            f"(median {self.median_shift:+.3f} s, largest {self.max_shift:+.3f} s), "
            f"the first at {int(h):02d}:{int(m):02d}:{s:06.3f}"
        )


def check_timing(result: SyncResult, tolerance: float = 0.2) -> TimingCheck:
    """Compare subtitles with their synced version: were they in sync already?

    Parameters
    ----------
    result : SyncResult
        What :func:`sync` found for the subtitles (check its confidence first, e.g. with
        :meth:`SyncResult.require`: an unsure result says nothing about the timing).
    tolerance : float
        Seconds a spoken cue may move and still count as in sync.

    Returns
    -------
    TimingCheck
    """
    if not tolerance >= 0:
        raise UsageError(f"{{tolerance}} must be 0 or more seconds, not {tolerance}", names=["tolerance"])
    spoken = np.flatnonzero(result.spoken)
    if len(spoken) == 0:
        spoken = np.arange(len(result.original.cues))
    old = np.array([result.original.cues[i].start for i in spoken], np.float64)
    new = np.array([result.subtitles.cues[i].start for i in spoken], np.float64)
    shift = new - old
    if len(shift) == 0:
        return TimingCheck(True, tolerance, 0, 0, 0.0, 0.0, None)
    off = np.abs(shift) > tolerance + 1e-9
    worst = int(np.argmax(np.abs(shift)))
    return TimingCheck(
        in_sync=not off.any(),
        tolerance=float(tolerance),
        cues=len(shift),
        off=int(off.sum()),
        median_shift=float(np.median(shift)),
        max_shift=float(shift[worst]),
        first_off=float(old[np.flatnonzero(off)[0]]) if off.any() else None,
    )
