"""Word evidence for ``mmalign sync``: each cue's words read aloud and found near its mapped place.

After the sync has a piecewise map from speech activity, each spoken cue's text is read
aloud by eSpeak NG (:mod:`mmalign.speech`) and the reading is matched, by an open-ended
dynamic time warping, to the recording in a window around where the map put the cue.
Where the cue's words are found (and how well they match) is the evidence; whether it is
used is decided by all the cues together, so that word evidence never makes a right map
worse:

- the map is kept unless the readings say otherwise: a cue moves only when its own reading
  is strong, clearly better than the reading at its mapped place, and its move is of the
  size the neighbouring cues' readings show (their robust spread of residuals);
- where the cues' timing is evidently exact (the residuals' spread is small), nobody moves;
  a long file is first read on a sample of its cues, and read whole only when the sample
  says the timing is sloppy;
- sloppy cues are then placed by a forced alignment of all their texts together
  (:func:`mmalign.align.words.force_align`, run by run of cues on the stretch of recording
  their mapped places span), which places a cue better than its own reading does; a cue the
  alignment puts more than the margin away keeps its reading's place;
- a run of cues at either end of the file that the map left behind (a break or a cut near
  an end moves too few cues to pay for a piece of their own) is found by searching its
  cues' words beyond their places, and gets a piece of its own;
- each boundary of a piecewise map is settled by reading the cues next to it under the
  neighbouring piece's map;
- each cue gets a confidence from its reading, and the file a confidence from all of them.

Reading
    read_cues          cue texts at places in a recording → :class:`CueReadings`
    match_reading      one reading against one stretch of features → (start, end, score)

Sync step
    find_placement     a linear map from a few cues' words searched over the whole recording
    edge_runs          runs of cues at the file's ends whose words lie together elsewhere
    settle_pieces      each boundary of a piecewise map settled by the cues' words
    prepare            the reader of a sync's word pass, made while the media decodes
    word_evidence      the re-timing a sync's word pass makes → :class:`WordEvidence`

Types
    Reader             one recording's features and the readings of its cues (reused between calls)
    CueReadings        per cue: found start/end, score there and at the mapped place
    WordEvidence       new cue times, per-cue word confidence, what was read and moved

Notes
-----
Front end: the sync's own (:func:`mmalign.features.audio.speech_features` with
``cepstra=True``: 32 mel bands from 60 Hz at 8 kHz, 32 ms windows, 10 ms hop, in dB,
floored 60 dB below the loudest band of each decoded block, 13 cepstra), so that the
recording is decoded once; frames averaged in pairs (20 ms), the stretch's mean taken off
(on the recording, the mean of the frames that are not steady sound: a tone or digital
silence inside a stretch stays far from speech instead of becoming its middle), and
deltas. The readings get the same front end. A reading held to its place agrees with the
map when the place is sound that is not steady, and the reading matches it better than
unrelated frames and better than another cue's reading there (:func:`_agrees`). The matching is a plain numpy DTW (one
vectorised pass per synthetic frame, inside the band of the cues' windows) so that a
sync whose timing is exact never loads Numba; the windows are small (a cue and a second
on each side). Only sloppy timing runs the forced alignment (Numba, and the stretches
decoded again at 16 kHz for its own front end).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UsageError
from ..fileio import Pathlike
from ..timeline import FeatureSeq

__all__ = [
    "CueReadings",
    "Reader",
    "WordEvidence",
    "aligned_placement",
    "consistent_runs",
    "edge_runs",
    "find_placement",
    "match_reading",
    "prepare",
    "read_cues",
    "settle_pieces",
    "shift_log_odds",
    "word_evidence",
]

log = logging.getLogger(__name__)

_SR = 8000  # the sync's own decoding (features.audio.SYNC_SR): its cepstra are reused
_HOP = 80  # 10 ms frames, as the sync decodes them; averaged in pairs for the matching
FRAME = 2 * _HOP / _SR  # 20 ms: the accuracy asked for is 0.1-0.25 s, a quarter of the work of 10 ms
_N_FFT = 256
_N_MELS = 32
_FMIN = 60.0
_PAD = 8  # frames of the reading's silence kept on each side: pauses between cues find their match
_REWARD = 0.5  # per recording frame covered, in units of the median unrelated-pair cost (as words.py)


# --------------------------------------------------------------------------- front end


#: A cue with more to say than this (characters, cleaned) is not read: no subtitle line is that
#: long, and reading a 10 MB "line" aloud would take minutes and gigabytes.
MAX_CUE_CHARS = 500


def _clean(text: str) -> str:
    """The cue's words as read (:func:`mmalign.speech.clean_text`); empty for a text too long to be a cue."""
    from .. import speech

    if len(text) > 4 * MAX_CUE_CHARS:
        return ""
    cleaned = speech.clean_text(text)
    return cleaned if len(cleaned) <= MAX_CUE_CHARS else ""


def _finish(cep: np.ndarray, steady: np.ndarray | None = None) -> np.ndarray:
    """Cepstra at 10 ms → the matched features: pairs of frames averaged (20 ms), the stretch's mean
    taken off (their scale is kept: the loudness contour, c0, and its changes mark where words start
    and stop), and their deltas (float32, (n, 26)).

    With ``steady`` (the recording's frames that are steady sound, :func:`_steady`) the mean is
    that of the other frames, when they last :data:`_MEAN_LEAST` s at least: a tone or digital
    silence filling much of a stretch, taken into its mean, lies near the middle of everything,
    and the readings were found inside a 36 s tone.
    """
    n = len(cep) // 2
    if n == 0:
        return np.zeros((0, 2 * cep.shape[1]), np.float32)
    x = cep[: 2 * n].reshape(n, 2, -1).mean(axis=1)
    moving = np.ones(n, bool) if steady is None else ~steady[: 2 * n].reshape(n, 2).all(axis=1)
    x -= x[moving].mean(axis=0) if moving.sum() * FRAME >= _MEAN_LEAST else x.mean(axis=0)
    delta = np.gradient(x, axis=0) if n > 1 else np.zeros_like(x)
    return np.ascontiguousarray(np.concatenate([x, delta], axis=1), np.float32)


#: Seconds of frames that are not steady that a stretch's mean is taken from (else: from all of them).
_MEAN_LEAST = 1.0


def _steady(cep: np.ndarray) -> np.ndarray:
    """Which 10 ms frames of cepstra (:func:`mmalign.features.audio.cepstra_of_logmel`) are steady
    sound (:func:`mmalign.features.audio.steady_frames`, as in the forced alignment's front end),
    from the log-mel as the cepstra keep it (the DCT basis is orthogonal)."""
    from ..features.audio import band_change, dct_basis, steady_frames

    basis = dct_basis(_N_MELS, cep.shape[1])
    change = np.zeros(len(cep), np.float32)
    change[1:] = band_change(cep @ (basis / (basis * basis).sum(axis=0)).T)
    return steady_frames(change, _HOP / _SR)


def _cepstra_of(y: np.ndarray) -> np.ndarray:
    """Mono samples at 8 kHz → the sync's cepstra (10 ms frames, (n, 13))."""
    from ..features.audio import cepstra_of_logmel, logmel_array

    if len(y) < _N_FFT:
        return np.zeros((0, 13), np.float32)
    return cepstra_of_logmel(logmel_array(y, sr=_SR, hop_length=_HOP, n_fft=_N_FFT, n_mels=_N_MELS, fmin=_FMIN))


def _features(y: np.ndarray) -> np.ndarray:
    """Mono samples at 8 kHz (a reading) → the matched features (the sync's front end, :func:`_finish`)."""
    return _finish(_cepstra_of(y))


def _chance(x: np.ndarray, y: np.ndarray) -> float:
    """Median cost of unrelated frame pairs (a fixed sample of pairs): the unit of the DTW weights."""
    rng = np.random.default_rng(0)
    i = rng.integers(0, len(x), 2000)
    j = rng.integers(0, len(y), 2000)
    return float(np.median(np.sqrt(((x[i] - y[j]) ** 2).sum(axis=1)))) or 1.0


def match_reading(
    x: np.ndarray,
    y: np.ndarray,
    *,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
    reward: float = _REWARD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Where a reading lies in a stretch of recording: an open-ended DTW inside a band.

    ``D[0, j] = C[0, j] - r`` for any ``j`` (open begin), then
    ``D[i, j] = C[i, j] + min(D[i-1, j-1] - r, D[i-1, j], D[i, j-1] - r)``: every step onto
    a new frame of ``y`` earns ``r`` (``reward`` times the median cost of the pairs), so the
    path has no reason to squeeze the recording; it ends at the cheapest cell of the last
    row (open end). Row ``i`` may use the columns ``lo[i] <= j < hi[i]``. Each row is one
    vectorised pass: a run of steps to the left is a running minimum of
    ``D - cumsum(C - r)``.

    Parameters
    ----------
    x : np.ndarray [shape=(n, d)]
        Features of the reading (all of it is matched).
    y : np.ndarray [shape=(m, d)]
        Features of the recording's stretch.
    lo, hi : np.ndarray [shape=(n,)] of int, optional
        The band: per row of ``x``, the first and one past the last column allowed
        (default: all of ``y``).
    reward : float
        In units of the median pair cost.

    Returns
    -------
    first, last : np.ndarray [shape=(n,)] of int
        Per row of ``x``, the first and last column of ``y`` on the path (-1 off the path:
        when no path fits in the band).
    cost : np.ndarray [shape=(n,)] of float
        Per row, the mean cost of its cells on the path, in units of the median pair cost.
    chance : float
        The median pair cost.
    """
    n = len(x)
    none = np.full(n, -1, np.int64)
    found = _dp(x, y, lo, hi, reward)
    if found is None:
        return none, none, np.full(n, np.nan), 1.0
    state, row = found
    first, last, cost = _trace(state, int(np.argmin(row)))
    return first, last, cost, state.chance


def _dp(
    x: np.ndarray, y: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None, reward: float
) -> tuple[_Path, np.ndarray] | None:
    """The DTW of :func:`match_reading`: what :func:`_trace` needs, and the last row's costs (None: no path)."""
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return None
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    yy = (y64 * y64).sum(axis=1)
    chance = _chance(x64, y64)
    if lo is None or hi is None:
        lo, hi = np.zeros(n, np.int64), np.full(n, m, np.int64)
    lo = np.clip(np.minimum.accumulate(np.asarray(lo, np.int64)[::-1])[::-1], 0, m)  # non-decreasing
    hi = np.clip(np.maximum.accumulate(np.asarray(hi, np.int64)), 0, m)
    hi[:-1] = np.maximum(hi[:-1], lo[1:] + 1)  # each row reaches the next: a gap is crossed in the row before it
    hi = np.minimum(hi, m)
    if np.any(hi <= lo):
        return None

    def row_costs(i: int, a0: int, a1: int) -> np.ndarray:
        xi = x64[i]
        d2 = xi @ xi + yy[a0:a1] - 2.0 * (y64[a0:a1] @ xi)
        out: np.ndarray = np.sqrt(np.maximum(d2, 0.0))
        return out

    r = reward * chance
    d = np.full(m + 1, np.inf)  # D of the previous row; index j + 1, index 0 is column -1
    ks: list[np.ndarray] = []  # per row, per cell of its band: where its run of left steps began
    diags: list[np.ndarray] = []  # per row, per cell: whether that run came diagonally (else from above)
    costs: list[np.ndarray] = []
    a0, a1 = int(lo[0]), int(hi[0])
    ci = row_costs(0, a0, a1)
    d[a0 + 1 : a1 + 1] = ci - r
    ks.append(np.arange(a0, a1))
    diags.append(np.zeros(a1 - a0, bool))
    costs.append(ci)
    prev = (a0, a1)
    for i in range(1, n):
        a0, a1 = int(lo[i]), int(hi[i])
        cols = np.arange(a0, a1)
        ci = row_costs(i, a0, a1)
        diag = d[a0:a1] - r  # D[i-1, j-1]
        up = d[a0 + 1 : a1 + 1]  # D[i-1, j]
        take_diag = diag < up
        a = ci + np.where(take_diag, diag, up)
        p = np.cumsum(ci - r)
        v = a - p
        run = np.minimum.accumulate(v)
        k = np.maximum.accumulate(np.where(v <= run, cols, a0))  # argmin of v[:j+1], latest on ties
        d[prev[0] + 1 : prev[1] + 1] = np.inf
        d[a0 + 1 : a1 + 1] = run + p
        ks.append(k)
        diags.append(take_diag)
        costs.append(ci)
        prev = (a0, a1)
    row = d[1:]
    if not np.isfinite(row).any():
        return None
    return _Path(lo, ks, diags, costs, chance), row


@dataclass
class _Path:
    """What :func:`_trace` needs of a finished DTW: per row its band start, run starts, diagonal flags, costs."""

    lo: np.ndarray
    ks: list[np.ndarray]
    diags: list[np.ndarray]
    costs: list[np.ndarray]
    chance: float


def _trace(state: _Path, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The path that ends at column ``j`` of the last row: per row its first and last column, mean cost."""
    n = len(state.ks)
    first, last = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    total = np.zeros(n)
    for i in range(n - 1, -1, -1):
        a0 = int(state.lo[i])
        run_start = int(state.ks[i][j - a0])
        first[i], last[i] = run_start, j
        total[i] = state.costs[i][run_start - a0 : j - a0 + 1].sum()
        if i == 0:
            break
        j = run_start - 1 if state.diags[i][run_start - a0] else run_start
    return first, last, total / (last - first + 1) / state.chance


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class CueReadings:
    """What :func:`read_cues` found, one entry per cue (NaN where a cue was not read).

    Attributes
    ----------
    start, end : np.ndarray of float
        Where the cue's words were found within the margin, seconds on the recording.
    score : np.ndarray of float
        How well they match there: ``1 - mean cost / median cost`` of the reading's frames
        (0: no better than unrelated frames).
    score_at : np.ndarray of float
        The same reading's score held to the place it was asked for (within ``tight``).
        NaN where the recording starts or ends inside that place (a clip cut mid-line): the
        reading cannot be held there whole.
    score_null : np.ndarray of float
        Another cue's reading held to this cue's place (the cue ``n // 2`` further on among
        those read): what a reading scores where its words are not, to judge ``score_at``
        by.  NaN with fewer than two cues read, and where ``score_at`` is.
    read : np.ndarray of bool
        Whether the cue was read (it has words, and a stretch of recording to read them in).
    sounding : np.ndarray of float
        Share (0-1) of the place asked for that is sound and not steady (not silence, not a
        tone: :func:`_steady`); NaN where the cue was not read.
    """

    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    score_at: np.ndarray
    score_null: np.ndarray
    read: np.ndarray
    sounding: np.ndarray


class Reader:
    """Synthesised readings (cached by text) and stretches of one recording's features.

    The recording's features come from ``cepstra`` (10 ms frames of
    :func:`mmalign.features.audio.cepstra_of_logmel`, from the sync's own decoding) when
    given; else the stretches are decoded (a media file) or cut (samples).
    """

    def __init__(
        self,
        audio: Pathlike | np.ndarray,
        *,
        sr: int = _SR,
        language: str,
        audio_stream: int | None,
        cepstra: FeatureSeq | None = None,
    ):
        self.audio = audio
        self.language = language
        self.audio_stream = audio_stream
        self._cepstra: tuple[np.ndarray, float, float] | None = None
        if cepstra is not None:
            self.use_cepstra(cepstra.values, t0=cepstra.t0, hop=cepstra.hop)
        self.readings: dict[str, tuple[np.ndarray, int, int]] = {}  # features, silent rows before, after
        #: an attention aligner whose frame embeddings join the forced alignment's features
        #: (``model`` of :func:`mmalign.align.words.force_align`); None: the DTW's own
        self.model: Any = None
        if isinstance(audio, np.ndarray) and sr != _SR:
            import soxr

            self.audio = soxr.resample(np.asarray(audio, np.float32), sr, _SR).astype(np.float32)

    def use_cepstra(self, values: np.ndarray, *, t0: float, hop: float) -> None:
        """Take the recording's features from these cepstra (10 ms frames, kept as float16: 26 bytes a frame).

        Parameters
        ----------
        values : np.ndarray [shape=(n_frames, 13)]
            :func:`mmalign.features.audio.cepstra_of_logmel` of the recording's frames.
        t0, hop : float
            Time of the first frame and between frames, seconds.
        """
        self._cepstra = (np.asarray(values, np.float16), float(t0), float(hop))

    def synthesise(self, texts: Sequence[str]) -> None:
        """Read the texts not read yet (in chunks: bounded memory), keeping their features only."""
        from .. import speech

        todo = [t for t in dict.fromkeys(texts) if t and t not in self.readings]
        for k in range(0, len(todo), 100):
            chunk = todo[k : k + 100]
            syn = speech.synthesize_segments(chunk, language=self.language, sr=_SR, gap=0.3)
            # a faint, fixed noise floor: digital silence has no spectrum to normalise
            noise = np.random.default_rng(k).standard_normal(len(syn.audio)).astype(np.float32) * np.float32(1e-4)
            feats = _features(syn.audio + noise)
            for text, seg in zip(chunk, syn.segments):
                i0, i1 = int(seg.start / FRAME), min(int(np.ceil(seg.end / FRAME)), len(feats))
                if i1 - i0 >= 3:  # with up to _PAD frames of the silence around it
                    a, b = max(0, i0 - _PAD), min(len(feats), i1 + _PAD)
                    self.readings[text] = (feats[a:b], i0 - a, b - i1)

    def _span(self, t0: float, t1: float) -> tuple[np.ndarray, float]:
        """The recording's cepstra (10 ms) between ``t0`` and ``t1`` (s) and the time of their first frame."""
        from .. import media

        t0 = max(0.0, t0)
        if self._cepstra is not None:
            values, first, hop = self._cepstra
            i0 = max(0, int(round((t0 - first) / hop)))
            i1 = max(i0, int(round((t1 - first) / hop)))
            return values[i0:i1].astype(np.float32), first + i0 * hop
        if isinstance(self.audio, np.ndarray):
            i0, i1 = int(round(t0 * _SR)), int(round(t1 * _SR))
            y, start = self.audio[i0:i1], i0 / _SR
        else:
            y, start = media.load_audio(self.audio, _SR, stream=self.audio_stream, start=t0, end=t1)
        return _cepstra_of(y), start

    def stretch(self, t0: float, t1: float) -> tuple[np.ndarray, float]:
        """Features of the recording between ``t0`` and ``t1`` (s) and the time of their first frame."""
        feats, start, _ = self.stretch_and_sound(t0, t1)
        return feats, start

    def stretch_and_sound(self, t0: float, t1: float) -> tuple[np.ndarray, float, np.ndarray]:
        """:meth:`stretch`, and which of its 10 ms frames are sound that is not steady (:func:`_steady`)."""
        cep, start = self._span(t0, t1)
        steady = _steady(cep)
        return _finish(cep, steady), start, ~steady


def _blocks(lo: np.ndarray, hi: np.ndarray, longest: float) -> list[list[int]]:
    """Consecutive cues read together: windows that overlap or nearly touch, up to ``longest`` s."""
    out: list[list[int]] = []
    a = b = -np.inf
    for i in range(len(lo)):
        if out and lo[i] <= b + 0.5 and max(b, hi[i]) - a <= longest:
            out[-1].append(i)
            b = max(b, hi[i])
        else:
            out.append([i])
            a, b = lo[i], hi[i]
    return out


#: Seconds of recording read in one DTW at most (a block of neighbouring cues).
_LONGEST_BLOCK = 30.0


def _read_block(
    rd: Reader,
    readings: list[tuple[np.ndarray, int, int]],
    others: list[tuple[np.ndarray, int, int]] | None,
    lo: np.ndarray,
    hi: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    tight: float,
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """One block of neighbouring cues, decoded once: their readings end to end in the band of their
    windows, then held to their places, then (``others``) the null readings held to the same places
    (start, end, score of each); and the share of each place that is sound that is not steady."""
    feats, t_first, sound = rd.stretch_and_sound(float(lo.min()), float(hi.max()))
    # a cue the recording starts or ends inside of (a clip cut mid-sentence) cannot be read
    # whole where it is shown: its held readings are no evidence either way
    cut = (starts < t_first - FRAME) | (ends > t_first + (len(feats) + 1) * FRAME)
    out = [_match_inside(feats, t_first, readings, lo, hi)]
    for texts in (readings, others):
        if texts is None:
            nan = np.full(len(readings), np.nan)
            out.append((nan, nan, nan))
            continue
        start, end, score = _match_inside(feats, t_first, texts, starts - tight, ends + tight)
        out.append((np.where(cut, np.nan, start), np.where(cut, np.nan, end), np.where(cut, np.nan, score)))
    frame0 = np.clip(np.round((starts - t_first) / (_HOP / _SR)), 0, len(sound)).astype(np.int64)
    frame1 = np.clip(np.round((ends - t_first) / (_HOP / _SR)), 0, len(sound)).astype(np.int64)
    share = np.array([float(np.mean(sound[a:b])) if b > a else 0.0 for a, b in zip(frame0, frame1)])
    return out, share


def _match_inside(
    feats: np.ndarray, t_first: float, readings: list[tuple[np.ndarray, int, int]], a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_match_block` of the readings whose ``[a, b]`` reaches into the stretch; NaN for the others.

    A reading held wholly before or after the recording (subtitles that run past the end of
    the media) is not matched: end to end with it, no path fits, and none would be read.
    """
    inside = (b > t_first + FRAME) & (a < t_first + (len(feats) - 1) * FRAME)
    nan = np.full(len(readings), np.nan)
    if inside.all():
        return _match_block(feats, t_first, readings, a, b)
    if not inside.any():
        return nan, nan.copy(), nan.copy()
    keep = np.flatnonzero(inside)
    found = _match_block(feats, t_first, [readings[k] for k in keep], a[keep], b[keep])
    out = []
    for values in found:
        full = nan.copy()
        full[keep] = values
        out.append(full)
    return out[0], out[1], out[2]


def _match_block(
    feats: np.ndarray, t_first: float, readings: list[tuple[np.ndarray, int, int]], a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, end and score of each reading, matched end to end with each held to its ``[a, b]`` (s)."""
    x = np.concatenate([r[0] for r in readings])
    sizes = [len(r[0]) for r in readings]
    rows = np.repeat(np.arange(len(readings)), sizes)
    edges = np.cumsum([0] + sizes)
    first_row = edges[:-1] + np.array([r[1] for r in readings])  # the words, without the silence around
    last_row = edges[1:] - 1 - np.array([r[2] for r in readings])
    j0 = np.clip(np.round((a - t_first) / FRAME), 0, len(feats)).astype(np.int64)
    j1 = np.clip(np.round((b - t_first) / FRAME) + 1, 0, len(feats)).astype(np.int64)
    first, last, cost, _ = match_reading(x, feats, lo=j0[rows], hi=j1[rows])
    ok = first[first_row] >= 0
    start = np.where(ok, t_first + first[first_row] * FRAME, np.nan)
    end = np.where(ok, t_first + (last[last_row] + 1) * FRAME, np.nan)
    score = np.array([1.0 - np.mean(cost[f : e + 1]) if k else np.nan for f, e, k in zip(first_row, last_row, ok)])
    return start, end, score


def read_cues(
    audio: Pathlike | np.ndarray,
    texts: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    language: str,
    margin: float = 1.0,
    tight: float = 0.1,
    sr: int = _SR,
    audio_stream: int | None = None,
    reader: Reader | None = None,
) -> CueReadings:
    """Read each cue's words aloud and find them in the recording near a given place.

    Neighbouring cues whose windows overlap are read together, their readings end to end,
    so that they constrain each other: each cue's words are searched within ``margin``
    of its own place, and the cues keep their order.

    Parameters
    ----------
    audio : str, os.PathLike or np.ndarray [shape=(n,)]
        The recording: a media file (only the stretches around the cues are decoded) or
        mono samples at ``sr``.
    texts : sequence of str
        The cues' texts, in time order (cleaned here with
        :func:`mmalign.speech.clean_text`; a cue with nothing to say, or more than
        :data:`MAX_CUE_CHARS` to say, is not read).
    starts, ends : np.ndarray of float
        Where each cue is expected, seconds on the recording.
    language : str
        Language code for eSpeak NG.
    margin : float
        Seconds searched on each side of the expected place.
    tight : float
        Seconds of slack of the reading held to the expected place (``score_at``).
    sr : int
        Sample rate of ``audio`` when it is an array.
    audio_stream : int, optional
        Audio stream of a media file.
    reader : Reader, optional
        The recording's features and the readings made so far (reused; else made here).

    Returns
    -------
    CueReadings

    Raises
    ------
    UsageError
        Arrays of different lengths, a bad ``margin`` or ``tight``, a language eSpeak NG
        does not speak.
    """

    starts = np.asarray(starts, np.float64)
    ends = np.maximum(np.asarray(ends, np.float64), starts)
    if len(texts) != len(starts) or len(starts) != len(ends):
        raise UsageError("{texts}, {starts} and {ends} must have one entry per cue", names=["texts", "starts", "ends"])
    if not margin > 0 or not tight >= 0:
        raise UsageError("{margin} must be > 0 and {tight} >= 0 seconds", names=["margin", "tight"])
    rd = reader or Reader(audio, sr=sr, language=language, audio_stream=audio_stream)
    cleaned = [_clean(t) for t in texts]
    rd.synthesise(cleaned)
    n = len(texts)
    keys = ("start", "end", "score", "score_at", "score_null", "sounding")
    out = {k: np.full(n, np.nan) for k in keys}
    idx = np.array([i for i in range(n) if cleaned[i] in rd.readings], np.int64)
    other = np.roll(idx, len(idx) // 2) if len(idx) >= 2 else None
    lo, hi = starts - margin, ends + margin
    for block in _blocks(lo[idx], hi[idx], _LONGEST_BLOCK):
        ii = idx[block]
        nulls = None if other is None else [rd.readings[cleaned[i]] for i in other[block]]
        ((s0, e0, q0), (_, _, q1), (_, _, q2)), sounding = _read_block(
            rd, [rd.readings[cleaned[i]] for i in ii], nulls, lo[ii], hi[ii], starts[ii], ends[ii], tight
        )
        out["start"][ii], out["end"][ii], out["score"][ii] = s0, e0, q0
        out["score_at"][ii], out["score_null"][ii], out["sounding"][ii] = q1, q2, sounding
    return CueReadings(
        out["start"],
        out["end"],
        out["score"],
        out["score_at"],
        out["score_null"],
        np.isfinite(out["start"]),
        out["sounding"],
    )


# --------------------------------------------------------------------------- the sync's word pass

#: How often a cue's reading at its place beats another cue's reading there, when the place
#: is right (0.93-1.0 on the corpus's speech, 0.7 on its song) and when it is not (one in
#: two: the null). Each cue read adds ``log(P_RIGHT / 0.5)`` or ``log((1 - P_RIGHT) / 0.5)``
#: to the log-odds that the map is right.
P_RIGHT = 0.8
#: Cues read to judge a map; a longer file is read on a sample spread along it.
SAMPLE_CUES = 24
#: The largest sample the timing is judged on before every cue is read (the sample doubles
#: while it leans sloppy).
JUDGE_CUES = 4 * SAMPLE_CUES
#: A reading found away from the map's place must score this much better than held to it to move the cue.
_GAIN = 0.02
#: How often a reading gains :data:`_SLOPPY_GAIN` seconds of match away from its mapped place
#: (:func:`_gained_seconds`) when the timing is exact (the corpus's dense speech: 0.03; a
#: two-hour programme of the corpus's recordings, read in one language: 0.032) and when each
#: cue is off by about 0.25 s (the corpus's dense speech: 0.16).
_SLOPPY_GAIN = 0.08
_P_EXACT, _P_SLOPPY = 0.04, 0.17
#: Log-odds (exact against sloppy, from those counts) from which the timing is called sloppy.
_SLOPPY_LOG_ODDS = 2.0


#: The forced alignment's own error on a cue start, as a Laplace distribution of this scale
#: (seconds; the mean error within a second on the corpus's speech clips, 0.12 s) with this
#: share of misplacements spread evenly over the margin; and the sloppy timing it is told apart
#: from: each cue off by a normal error of this standard deviation besides. Judged this way
#: (rather than by counting starts more than 0.3 s away), 15 cues drawn from a clip's forced
#: alignment tell sloppy timing about three times in four instead of one in two, and take
#: exact timing for sloppy less often (at most 3 % of the time on each clip, against up to 9 %).
_FA_ERROR = 0.12
_FA_MISPLACED = 0.05
_SLOPPY_SD = 0.25
#: How the forced alignment's error scale follows how well its reading matches the recording
#: (the median over the cues of each segment's score, :func:`mmalign.align.words.force_align`):
#: :data:`_FA_ERROR` up to the first score, down to the second error from the second score on,
#: linearly between. The corpus's human speech reads 0.18-0.21 (mean error within a second
#: 0.09-0.13 s; its song 0.10-0.12, 0.3 s); eSpeak voices other than the reading's, in rooms
#: and noise (``benchmarks/heldout_corpus.py``), 0.31-0.58 (0.003-0.035 s). Held to 0.12 s
#: there, the displacement of 30 cues off by 0.25 s each could not outweigh that error, and
#: four files in eighteen kept their sloppy timing.
_FA_ERROR_BY_SCORE = ((0.2, _FA_ERROR), (0.3, 0.03))


def _fa_error(scores: np.ndarray) -> float:
    """The forced alignment's error scale (Laplace, seconds) for a file whose cues' segment
    scores are ``scores`` (NaN: not found), by :data:`_FA_ERROR_BY_SCORE`."""
    found = np.asarray(scores, np.float64)
    found = found[np.isfinite(found)]
    if len(found) == 0:
        return _FA_ERROR
    (s0, e0), (s1, e1) = _FA_ERROR_BY_SCORE
    return float(np.interp(np.median(found), [s0, s1], [e0, e1]))


def _binomial_log_odds(k: float, n: float, p: float, p_null: float) -> float:
    """Log-odds of a hypothesis under which each of ``n`` cues shows a sign with chance ``p``,
    against one under which it does with ``p_null``, when ``k`` of them show it."""
    a = np.log(p / p_null)
    b = np.log((1 - p) / (1 - p_null))
    return float(k * a + (n - k) * b)


def _gained_seconds(rd: Reader, texts: Sequence[str], sub: CueReadings) -> np.ndarray:
    """Per cue, how much better its reading matches away from its place than held to it, in seconds of reading.

    The score is a mean over the reading's frames, so a cue misplaced by some fraction of a
    second loses less of it the longer the cue; times the reading's spoken length, the gain
    is about the same for a short cue as for a long one moved as far. NaN where not read.
    """
    spoken = np.full(len(texts), np.nan)
    for k, text in enumerate(texts):
        reading = rd.readings.get(_clean(text))
        if reading is not None:
            spoken[k] = (len(reading[0]) - reading[1] - reading[2]) * FRAME
    return (sub.score - sub.score_at) * spoken


def _sloppiness(gain: np.ndarray) -> float:
    """Log-odds that the per-cue timing is sloppy, from the readings' gains away from their places
    (:func:`_gained_seconds`; NaN: a cue not judged, which counts neither way)."""
    gain = gain[np.isfinite(gain)]
    return _binomial_log_odds(float(np.sum(gain > _SLOPPY_GAIN)), float(len(gain)), _P_SLOPPY, _P_EXACT)


def _displacement(shift: np.ndarray, margin: float, fa_error: float = _FA_ERROR) -> float:
    """Log-odds that the per-cue timing is sloppy, from where a forced alignment puts the cues.

    ``shift`` is the forced start less the given one, per cue (NaN: not found). Each cue
    weighs how likely its shift is under sloppy timing (the alignment's error plus a normal
    error of :data:`_SLOPPY_SD`) against exact timing (the alignment's error alone: Laplace
    of scale ``fa_error``, :func:`_fa_error`; :data:`_FA_MISPLACED`). A cue found more than
    ``margin`` away is the alignment's failure (a jingle, an ad), not the timing's, and says nothing.
    """
    d = np.abs(shift[np.isfinite(shift)])
    d = d[d <= margin]
    floor = _FA_MISPLACED / (2 * margin)
    exact = (1 - _FA_MISPLACED) * np.exp(-d / fa_error) / (2 * fa_error) + floor
    sloppy = (1 - _FA_MISPLACED) * _laplace_plus_normal(d, fa_error, _SLOPPY_SD) + floor
    return float(np.sum(np.log(sloppy / exact)))


def _laplace_plus_normal(d: np.ndarray, b: float, s: float) -> np.ndarray:
    """Density at ``d`` of a Laplace error of scale ``b`` plus an independent normal one of standard
    deviation ``s`` (their convolution, in closed form; in logs, so nothing overflows far out)."""
    from scipy.special import log_ndtr

    k = s * s / b
    both = np.logaddexp(-d / b + log_ndtr((d - k) / s), d / b + log_ndtr(-(d + k) / s))
    return np.exp(s * s / (2 * b * b) - np.log(2 * b) + both)


@dataclass(frozen=True)
class WordEvidence:
    """What the word pass of a sync found (:func:`word_evidence`).

    Attributes
    ----------
    starts, ends : np.ndarray of float
        The cues' times after the pass (the given ones where nothing moved).
    moved : np.ndarray of bool
        Which cues were re-timed onto their words.
    read : np.ndarray of bool
        Which cues were read.
    agree : np.ndarray of float
        Per cue read: 1 when its reading at its place beats another cue's reading there, 0 when
        not; NaN where not read.
    llr : float
        Log-odds that the map is right, from the readings (``P_RIGHT`` against chance).
    sloppy : bool
        Whether the per-cue timing looked sloppy (cues were then re-timed one by one).
    language : str
    seconds : float
        Wall time of the pass.
    disowned : (int, int, float) or None
        Cues ``lo:hi`` at an end of the file whose words are not where the map puts them,
        and how clearly (:func:`disowned_run`); None when no such run.
    """

    starts: np.ndarray
    ends: np.ndarray
    moved: np.ndarray
    read: np.ndarray
    agree: np.ndarray
    llr: float
    sloppy: bool
    language: str
    seconds: float = 0.0
    disowned: tuple[int, int, float] | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (``mmalign sync --json``: ``words``)."""
        return {
            "language": self.language,
            "read": int(self.read.sum()),
            "agree": int(np.nansum(self.agree)),
            "log_odds": round(self.llr, 2),
            "sloppy": self.sloppy,
            "moved": int(self.moved.sum()),
        }

    @property
    def cap(self) -> float:
        """The most confidence the map keeps: a disowned run's z above :data:`DISOWNED_Z` is
        the log-odds against it (1.0 without one)."""
        return 1.0 if self.disowned is None else float(1.0 / (1.0 + np.exp(self.disowned[2] - DISOWNED_Z)))


def log_odds(agree: np.ndarray) -> float:
    """Log-odds that the cues are where they were read, from which readings beat the null (1) or not (0)."""
    a = agree[np.isfinite(agree)]
    return _binomial_log_odds(float(a.sum()), float(len(a)), P_RIGHT, 0.5)


#: A run of cues at an end of the file is disowned by its words when, held to their places, its
#: readings beat another cue's reading held there by at most this share of what the other cues'
#: readings do (the words are no more there than any others: a break or a cut the map missed
#: left them on other talk, or in a pause)...
DISOWNED_SHARE = 0.25
#: ... by this many standard errors less than the others (their spread, over the run's size)...
DISOWNED_Z = 4.0
#: ... with this many cues of the run judged at least.
DISOWNED_LEAST = 4


def disowned_run(contrast: np.ndarray) -> tuple[int, int, float] | None:
    """The run of cues at an end of a file whose words are not where the map puts them.

    A map from speech activity can be right for most of a file and wrong for the cues after
    a break that holds talk of its own (an ad), or before a cut: those cues land on speech
    all the same. Their readings then do no better at their places than another cue's
    reading does, while the other cues' readings clearly do. Each run of at least
    :data:`DISOWNED_LEAST` judged cues from either end, up to half of them, is compared with
    the others: theirs must be above 0 by :data:`DISOWNED_Z` standard errors (their words are
    clearly where the map puts them), and the run's mean contrast at most
    :data:`DISOWNED_SHARE` of theirs and below it by :data:`DISOWNED_Z` standard errors (the
    others' spread, over the run's size: the bar measures itself on each file, whatever its
    sound). Subtitles in another language, or songs, have no such contrast anywhere, and no
    run is disowned.

    Parameters
    ----------
    contrast : np.ndarray of float
        Per cue in time order, ``score_at - score_null`` of its reading
        (:class:`CueReadings`); NaN where not judged.

    Returns
    -------
    (lo, hi, z) or None
        The cues ``lo:hi`` (``lo == 0`` or ``hi == len(contrast)``) and the run's z; the
        clearest such run, or None.
    """
    judged = np.flatnonzero(np.isfinite(contrast))
    c = contrast[judged].astype(np.float64)
    n = len(c)
    size = np.arange(DISOWNED_LEAST, n // 2 + 1)
    if len(size) == 0:
        return None
    s1 = np.concatenate([[0.0], np.cumsum(c)])
    s2 = np.concatenate([[0.0], np.cumsum(c * c)])
    best: tuple[int, int, float] | None = None
    # the run first (s1[size]: the first cues) or last (the others first); O(n) for any length
    for run_sum, run_sq, lo, hi in (
        (s1[size], s2[size], np.zeros_like(size), judged[size - 1] + 1),
        (s1[n] - s1[n - size], s2[n] - s2[n - size], judged[n - size], np.full_like(size, len(contrast))),
    ):
        k = n - size  # the others
        others = (s1[n] - run_sum) / k
        spread = np.sqrt(np.maximum((s2[n] - run_sq - k * others * others) / (k - 1), 0.0)) + 1e-9
        run = run_sum / size
        z = (others - run) / (spread / np.sqrt(size))
        # the others' words clearly there, the run's no more than a share of theirs
        ok = (others >= DISOWNED_Z * spread / np.sqrt(k)) & (run <= DISOWNED_SHARE * others) & (z >= DISOWNED_Z)
        if ok.any():
            j = int(np.argmax(np.where(ok, z, -np.inf)))
            if best is None or z[j] > best[2]:
                best = (int(lo[j]), int(hi[j]), float(z[j]))
    return best


def combine(confidence: float, llr: float) -> float:
    """A confidence (0-1) raised by the words' log-odds when they are positive.

    Words that do not agree take nothing away: subtitles in another language than the
    speech (a translation), or speech the reading cannot match (singing, a music bed), say
    nothing about the map.  Words that are found elsewhere are a rival map's evidence
    (see :func:`mmalign.align.sync.sync`), not a veto of this one.
    """
    c = min(max(confidence, 0.0), 1.0)
    if llr <= 0 or c >= 1.0:
        return c
    return shift_log_odds(max(c, 1e-3), llr)


def shift_log_odds(confidence: float, llr: float) -> float:
    """``confidence`` (strictly between 0 and 1) moved by ``llr`` on the log-odds scale."""
    z = math.log(confidence) - math.log1p(-confidence) + llr
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    return math.exp(z) / (1.0 + math.exp(z))


def _sample(n: int, size: int) -> np.ndarray:
    """``size`` indices spread evenly over ``range(n)`` (all of them when ``n <= size``)."""
    if n <= size:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, size)).astype(np.int64))


def detect_language(texts: Sequence[str]) -> str | None:
    """The language of the cues' texts (cleaned), or None when there is nothing to judge by."""
    from .. import speech

    parts: list[str] = []
    size = 0
    for x in texts:  # enough text to judge by, however many cues there are
        t = _clean(x)
        if t:
            parts.append(t)
            size += len(t) + 1
            if size >= 20000:
                break
    text = " ".join(parts)[:20000]
    try:
        return speech.detect_language(text)
    except UsageError:
        return None
    finally:
        _release_language_model()


def _release_language_model() -> None:
    """Let py3langid's model (about 80 MB) go: a sync detects one language, then decodes and reads.

    py3langid keeps its identifier in a module global and loads it again on its next use.
    """
    import sys

    langid = sys.modules.get("py3langid.langid")
    if langid is not None and getattr(langid, "IDENTIFIER", None) is not None:
        setattr(langid, "IDENTIFIER", None)  # noqa: B010 - a module global, not an attribute of ours


def prepare(
    audio: Pathlike | np.ndarray,
    texts: Sequence[str],
    *,
    language: str | None = None,
    sr: int = _SR,
    audio_stream: int | None = None,
) -> Reader | None:
    """The reader of a sync's word pass, made before the map is known (while the media decodes).

    Detects the language when not given, and reads aloud the cues :func:`word_evidence`
    reads first (its sample). None when the texts give no language.

    Parameters
    ----------
    audio : str, os.PathLike or np.ndarray [shape=(n,)]
        The recording.
    texts : sequence of str
        The spoken cues' texts, in time order.
    language : str, optional
        Language code; default: detected from the texts.
    sr : int
        Sample rate of ``audio`` when it is an array.
    audio_stream : int, optional
        Audio stream of a media file.

    Returns
    -------
    Reader or None
    """

    language = language or detect_language(texts)
    if language is None:
        return None
    reader = Reader(audio, sr=sr, language=language, audio_stream=audio_stream)
    reader.synthesise([_clean(texts[i]) for i in _sample(len(texts), SAMPLE_CUES)])
    return reader


#: A cue held where less than this share of the recording is sound that is not steady (silence,
#: a tone) is not where its words are, whatever its reading scores there.
_SOUNDING = 0.25


def _agrees(readings: CueReadings) -> np.ndarray:
    """Which cues' readings, held to their places, agree with the map: at least :data:`_SOUNDING`
    of the place is sound that is not steady, and the reading matches it better than unrelated
    frames do (a positive score) and better than another cue's reading held there. Held to a
    tone or to silence, every reading matches badly, and the one that is less bad says nothing."""
    return np.asarray(
        (readings.sounding >= _SOUNDING) & (readings.score_at > readings.score_null) & (readings.score_at > 0)
    )


def word_evidence(
    audio: Pathlike | np.ndarray,
    texts: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    language: str,
    sr: int = _SR,
    audio_stream: int | None = None,
    margin: float = 1.0,
    retime: bool = True,
    reader: Reader | None = None,
    sloppy: bool | None = None,
) -> WordEvidence:
    """Judge a sync's map by its cues' words, and re-time the cues where their timing is sloppy.

    A sample of the cues (all of them, up to :data:`SAMPLE_CUES`) is read at the mapped
    places (:func:`read_cues`). Each reading held to its place either beats another cue's
    reading held there or not; together they give the log-odds that the map is right
    (:func:`log_odds`). When these say the words are there at all (positive log-odds) and
    the readings that gain clearly (:data:`_SLOPPY_GAIN` seconds of match,
    :func:`_gained_seconds`) elsewhere within ``margin`` than at their place are more than
    exact timing explains (:func:`_sloppiness`: log-odds of at least
    :data:`_SLOPPY_LOG_ODDS`; a sample that leans that way at all is judged again on twice as
    many cues, up to :data:`JUDGE_CUES`), the timing is sloppy. A cue shown early, in the
    pause before its words, reads as well there as on them (the pause takes the slack), so in
    a file of at most ``2 * SAMPLE_CUES`` cues where some reading would move (:data:`_GAIN`),
    the forced alignment judges instead: the timing is sloppy when the given starts lie
    farther from its starts than its own error explains (:func:`_displacement`). A verdict
    given (``sloppy``) is kept. An end run of cues whose readings do no better at their
    places than other cues' readings, where the others clearly do, is reported
    (:func:`disowned_run`). When sloppy, every cue is read, and each cue
    whose own reading is clearly better away from its place (and better than another cue's
    reading at its place) moves there (its neighbours' readings bound it: they are matched
    together, in order); then every cue that a forced alignment of all the cues' texts
    (:func:`_force_aligned`) finds within ``margin`` of its place moves there instead. The
    others, and every cue of a file whose timing is exact, keep the given times.

    Parameters
    ----------
    audio : str, os.PathLike or np.ndarray [shape=(n,)]
        The recording (a media file, or samples at ``sr``).
    texts : sequence of str
        The spoken cues' texts, in time order.
    starts, ends : np.ndarray of float
        Where the map put them, seconds on the recording.
    language : str
        Language code for eSpeak NG.
    sr : int
        Sample rate of ``audio`` when it is an array.
    audio_stream : int, optional
        Audio stream of a media file.
    margin : float
        Largest move of a cue, seconds.
    retime : bool
        Whether cues may move (else the pass only judges the map).
    reader : Reader, optional
        The recording's features and the readings made so far (reused; else made here).
    sloppy : bool, optional
        Whether the timing is sloppy, as an earlier pass over the same cues under another map
        found (:attr:`WordEvidence.sloppy`): the timing is the file's, not the map's, so a map
        changed near a few cues does not judge it again. Default: judged here.

    Returns
    -------
    WordEvidence
    """
    import time

    t0 = time.perf_counter()
    starts = np.asarray(starts, np.float64)
    ends = np.asarray(ends, np.float64)
    n = len(starts)
    rd = reader or Reader(audio, sr=sr, language=language, audio_stream=audio_stream)

    def judge(pick: np.ndarray) -> tuple[CueReadings, float]:
        picked = [texts[i] for i in pick]
        sub = read_cues(audio, picked, starts[pick], ends[pick], language=language, margin=margin, reader=rd)
        return sub, _sloppiness(_gained_seconds(rd, picked, sub)[sub.read])

    pick = _sample(n, SAMPLE_CUES)
    sub, slop = judge(pick)
    ok = sub.read & np.isfinite(sub.score_null)
    readable = log_odds(_agrees(sub)[ok].astype(float)) > 0  # the words are here at all
    forced: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    by_readings = sloppy is None  # else the verdict of an earlier pass is kept
    if by_readings:
        while readable and retime and slop > 0 and len(pick) < min(n, JUDGE_CUES):
            # a sample that leans sloppy is judged again on twice as many cues: a long file whose
            # timing is exact is read whole only as often as a large sample calls it sloppy
            pick = np.union1d(pick, _sample(n, 2 * len(pick)))
            sub, slop = judge(pick)
        sloppy = bool(readable and slop >= _SLOPPY_LOG_ODDS)
        if readable and retime and not sloppy and n <= 2 * SAMPLE_CUES and np.any((sub.score - sub.score_at) > _GAIN):
            # a short file, and a cue would move: a cue shown early, in the pause before its words
            # (or on the end of the line before), reads about as well there as on them, so the
            # readings see only the late half of sloppy cues; the forced alignment sees both
            forced = _force_aligned(rd, texts, starts, ends, longest=_LONGEST_BLOCK)
            # how far the alignment itself errs follows how well its reading matches (a learned
            # model's columns change that scale, so with one the error stays the corpus's)
            error = _FA_ERROR if rd.model is not None else _fa_error(forced[2])
            sloppy = _displacement(forced[0] - starts, margin, error) >= _SLOPPY_LOG_ODDS
            by_readings = False
    if sloppy and retime and len(pick) < n:  # read them all now (judged again on all of them)
        pick = np.arange(n)
        sub, slop = judge(pick)
        if by_readings:
            sloppy = slop >= _SLOPPY_LOG_ODDS
    gain = sub.score - sub.score_at
    agree = np.full(n, np.nan)
    read = np.zeros(n, bool)
    read[pick] = sub.read
    ok = sub.read & np.isfinite(sub.score_null)
    agree[pick[ok]] = _agrees(sub)[ok].astype(float)
    new_starts, new_ends = starts.copy(), ends.copy()
    moved = np.zeros(n, bool)
    if sloppy and retime:
        move = sub.read & (gain > _GAIN) & ~(sub.score <= sub.score_null)  # and better than other words there
        new_starts[pick[move]] = sub.start[move]
        new_ends[pick[move]] = np.maximum(sub.end[move], sub.start[move] + FRAME)
        moved[pick[move]] = True
        # the whole text read against the recording places each cue better than its own reading does
        fa_starts, fa_ends, _ = forced if forced is not None else _force_aligned(rd, texts, starts, ends)
        near = np.isfinite(fa_starts) & (np.abs(fa_starts - starts) <= margin)
        new_starts[near] = fa_starts[near]
        # a cue stays up while its words are spoken; a later end is the subtitler's own linger,
        # kept up to the next cue's start
        spoken_to = np.maximum(fa_ends[near], fa_starts[near] + FRAME)
        following = np.append(new_starts[1:], np.inf)[near]
        new_ends[near] = np.maximum(np.minimum(np.maximum(ends[near], spoken_to), following), spoken_to)
        moved |= near
    contrast = np.full(n, np.nan)
    contrast[pick[ok]] = (sub.score_at - sub.score_null)[ok]
    return WordEvidence(
        new_starts,
        new_ends,
        moved,
        read,
        agree,
        log_odds(agree),
        bool(sloppy),
        language,
        time.perf_counter() - t0,
        disowned_run(contrast),
    )


#: Seconds of recording forced-aligned at once when sloppy cues are re-timed (memory stays bounded).
_ALIGN_STRETCH = 600.0
#: Seconds of recording kept on each side of a run of cues' mapped places for the forced alignment.
_ALIGN_PAD = 2.0


def _runs(starts: np.ndarray, ends: np.ndarray, longest: float) -> list[tuple[int, int]]:
    """Consecutive cues, ``[i, j)``, whose mapped places span at most ``longest`` seconds (one cue at least)."""
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(starts):
        j = i + 1
        while j < len(starts) and max(ends[i : j + 1].max(), starts[j]) - starts[i] <= longest:
            j += 1
        out.append((i, j))
        i = j
    return out


def _force_aligned(
    rd: Reader, texts: Sequence[str], starts: np.ndarray, ends: np.ndarray, *, longest: float = _ALIGN_STRETCH
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where a forced alignment of the cues' texts (:func:`mmalign.align.words.force_align`) puts each cue:
    starts, ends and the segments' scores.

    The cues are aligned run by run (``longest`` seconds of recording at most), each
    run against the stretch its mapped places span and :data:`_ALIGN_PAD` seconds on each side,
    so an unsubtitled intro or a long programme costs nothing more. NaN where a cue is not found
    (or has nothing to say: a cue too long to be read is not read here either). With
    ``rd.model`` (an attention aligner) the alignment reads its frame embeddings too.
    """
    from .. import media
    from .words import force_align

    n = len(texts)
    found_s, found_e, score = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    cleaned = [_clean(t) for t in texts]
    for i, j in _runs(starts, ends, longest):
        if not any(cleaned[i:j]):
            continue
        a = max(0.0, float(starts[i]) - _ALIGN_PAD)
        b = float(np.max(ends[i:j])) + _ALIGN_PAD
        if isinstance(rd.audio, np.ndarray):
            y, t0, sr = rd.audio[int(a * _SR) : int(np.ceil(b * _SR))], int(a * _SR) / _SR, _SR
        else:
            y, t0 = media.load_audio(rd.audio, 16000, stream=rd.audio_stream, start=a, end=b)
            sr = 16000
        if len(y) < sr // 10:
            continue
        y = np.asarray(y, np.float32)
        fa = force_align(y, cleaned[i:j], language=rd.language, sr=sr, model=rd.model)
        for k, seg in enumerate(fa.segments):
            if seg.start is not None and seg.end is not None:
                found_s[i + k], found_e[i + k], score[i + k] = t0 + seg.start, t0 + seg.end, seg.score
    return found_s, found_e, score


# --------------------------------------------------------------------------- placement from the words

#: Cues whose words are searched over the whole reachable recording (the longest of each stretch).
ANCHORS = 8
#: Places kept per anchor (the best ends of its reading, at least a second apart).
_PLACES = 3
#: Seconds within which anchors' offsets agree.
_AGREE = 0.4


def _places(x: np.ndarray, y: np.ndarray, top: int, row: int = 0) -> list[tuple[int, int, float]]:
    """The ``top`` best places of reading ``x`` in ``y``, a second apart: the column of ``x[row]`` (the
    first word, past the reading's silence), the last column, and the score."""
    found = _dp(x, y, None, None, _REWARD)
    if found is None:
        return []
    state, last_row = found
    order = np.argsort(last_row)
    gap = int(round(1.0 / FRAME))
    ends: list[int] = []
    for j in order:
        if not np.isfinite(last_row[j]) or len(ends) == top:
            break
        if all(abs(int(j) - e) >= gap for e in ends):
            ends.append(int(j))
    out = []
    for j in ends:
        first, last, cost = _trace(state, j)
        out.append((int(first[min(row, len(first) - 1)]), int(last[-1]), float(1.0 - np.mean(cost))))
    return out


def find_placement(
    reader: Reader,
    texts: Sequence[str],
    starts: np.ndarray,
    *,
    duration: float,
    max_offset: float,
    scales: Sequence[float],
) -> tuple[float, float, int] | None:
    """A linear map found from the words alone: where a few cues' readings are, and the shift they agree on.

    Up to :data:`ANCHORS` cues (the longest text of each stretch of the file) are read and
    searched over all the recording that a shift within ``max_offset`` can reach; each keeps
    its best few places. Every anchor place and scale gives an offset; the offset most
    anchors agree on (within :data:`_AGREE` s) is the answer.

    Parameters
    ----------
    reader : Reader
        The recording (its features) and the readings.
    texts : sequence of str
        The spoken cues' texts, in time order.
    starts : np.ndarray of float
        Their start times as given (the subtitles' timeline), seconds.
    duration : float
        Length of the recording, seconds.
    max_offset : float
        Largest shift considered, seconds.
    scales : sequence of float
        The scales (framerate ratios) considered.

    Returns
    -------
    (scale, offset, votes) or None
        The map ``t' = scale * t + offset`` and how many anchors agree on it; None when no
        two anchors agree.
    """

    cleaned = [_clean(t) for t in texts]
    n = len(texts)
    if n == 0 or duration <= 0:
        return None
    parts = np.array_split(np.arange(n), min(ANCHORS, n))
    anchors = [int(max(p, key=lambda i: len(cleaned[i]))) for p in parts if len(p)]
    reader.synthesise([cleaned[i] for i in anchors])
    anchors = [i for i in anchors if cleaned[i] in reader.readings]
    lo_s, hi_s = min(scales), max(scales)
    votes: list[tuple[float, float, int, float]] = []  # scale, offset, anchor, score
    for k in anchors:
        x = reader.readings[cleaned[k]][0]
        t0 = max(0.0, lo_s * starts[k] - max_offset)
        t1 = min(duration, hi_s * starts[k] + max_offset + 30.0)
        if t1 - t0 < 1.0:
            continue
        feats, t_first = reader.stretch(t0, t1)
        pad = reader.readings[cleaned[k]][1]
        for first, _, score in _places(x, feats, _PLACES, row=pad):
            place = t_first + first * FRAME
            votes += [(sc, place - sc * starts[k], k, score) for sc in scales]
    best: tuple[int, float, float, float] | None = None  # votes, score, scale, offset
    for sc, off, _, _ in votes:
        near = [(k, q, o) for s2, o, k, q in votes if s2 == sc and abs(o - off) <= _AGREE]
        agree = {k for k, _, _ in near}
        if len(agree) < 2:
            continue
        score = sum(max(q for kk, q, _ in near if kk == k) for k in agree)
        offset = float(np.median([o for _, _, o in near]))
        if best is None or (len(agree), score) > (best[0], best[1]):
            best = (len(agree), score, sc, offset)
    if best is None:
        return None
    return best[2], best[3], best[0]


#: Seconds within which the offsets of consecutive cues that a forced alignment places agree
#: (its own error on real speech is about 0.12 s, :data:`_FA_ERROR`; a cue's place inside the
#: reading, half a second of slack besides).
RUN_AGREE = 0.5
#: Seconds by which a later scale's runs must be tighter (mean distance of their cues from their
#: offsets) than an earlier one's holding as many cues to win: a scale is not taken on noise.
_TIGHTER = 0.02
#: Cues a run of agreeing offsets needs to make a piece of a placement from the alignment.
_RUN_LEAST = 3
#: The longest recording aligned whole to place an unsure file's cues, seconds (the alignment
#: reads all of it at once; a longer file keeps the placements found without it).
ALIGNED_LONGEST = 1800.0
#: Characters of cue text a second of recording may hold for it to be aligned whole (speech
#: says about 15 a second): more text than anyone says there is not this recording's, and
#: reading it all aloud would cost without bound (a hostile subtitle file of many megabytes).
ALIGNED_CHARS_PER_SECOND = 40.0


def consistent_runs(
    starts: np.ndarray,
    found: np.ndarray,
    scales: Sequence[float],
    *,
    agree: float = RUN_AGREE,
    least: int = _RUN_LEAST,
) -> tuple[float, list[tuple[int, int, float]]]:
    """Runs of consecutive cues that a placement puts at one offset, at the scale where they hold the most cues.

    Parameters
    ----------
    starts : np.ndarray of float
        The cues' start times as given (the subtitles' timeline), seconds, in order.
    found : np.ndarray of float
        Where each cue was found on the recording (a forced alignment), seconds; NaN where not.
    scales : sequence of float
        The scales (framerate ratios) considered, likeliest first: where two hold as many
        cues, the later wins only when its runs are tighter by :data:`_TIGHTER` seconds.
    agree : float
        Seconds within which a cue's offset must lie of its run's median offset.
    least : int
        Cues a run must hold to count.

    Returns
    -------
    (scale, runs)
        ``runs``: ``(first, end, offset)`` per run, cues ``first .. end - 1`` (a cue not found
        or not agreeing inside that span is not one of them: it breaks no run), in order.
    """
    starts = np.asarray(starts, np.float64)
    found = np.asarray(found, np.float64)
    at = np.flatnonzero(np.isfinite(found))
    best: tuple[int, float, float, list[tuple[int, int, float]]] | None = None  # held, spread, scale, runs
    for scale in scales:
        d = found[at] - scale * starts[at]
        groups: list[list[int]] = []
        for j in range(len(at)):
            if groups and abs(d[j] - float(np.median(d[groups[-1]]))) <= agree:
                groups[-1].append(j)
            elif groups and j + 1 < len(at) and abs(d[j + 1] - float(np.median(d[groups[-1]]))) <= agree:
                continue  # one cue found elsewhere, with the run going on after it: it ends nothing
            else:
                groups.append([j])
        kept = [g for g in groups if len(g) >= least]
        runs = [(int(at[g[0]]), int(at[g[-1]]) + 1, float(np.median(d[g]))) for g in kept]
        held = sum(len(g) for g in kept)
        # a wrong scale drifts inside its runs: among scales that hold as many cues, the tighter wins
        spread = float(np.mean(np.concatenate([np.abs(d[g] - r[2]) for g, r in zip(kept, runs)]))) if kept else 0.0
        if best is None or held > best[0] or (held == best[0] and spread < best[1] - _TIGHTER):
            best = (held, spread, float(scale), runs)
    if best is None:  # no scale given
        return 1.0, []
    return best[2], best[3]


def aligned_placement(
    reader: Reader, texts: Sequence[str], starts: np.ndarray, *, duration: float, scales: Sequence[float]
) -> tuple[float, list[tuple[int, int, float]], np.ndarray] | None:
    """A piecewise placement of the cues from a forced alignment of all their text to the whole recording.

    Where speech activity cannot place a file (talk on both sides of an ad break, a radio
    programme's jingle and unsubtitled talk) the words still can: the alignment
    (:func:`mmalign.align.words.force_align`) finds each cue's text in order and skips what is
    not in it. Runs of consecutive cues at one offset (:func:`consistent_runs`) become the
    pieces; the cues between them, and a cue the alignment put elsewhere, are left to the
    words of the cues on each side (:func:`settle_pieces`, :func:`edge_runs`).

    Parameters
    ----------
    reader : Reader
        The recording and the readings.
    texts : sequence of str
        The spoken cues' texts, in time order.
    starts : np.ndarray of float
        Their start times as given, seconds.
    duration : float
        Length of the recording, seconds (at most :data:`ALIGNED_LONGEST`).
    scales : sequence of float
        The scales considered.

    Returns
    -------
    (scale, runs, found) or None
        As :func:`consistent_runs`, and where the alignment found each cue (NaN: not
        found); None when the recording is too long, the text too long for it
        (:data:`ALIGNED_CHARS_PER_SECOND`), or no run holds :data:`_RUN_LEAST` cues.
    """
    n = len(texts)
    if n < _RUN_LEAST or not 0 < duration <= ALIGNED_LONGEST:
        return None
    if sum(len(t) for t in texts) > ALIGNED_CHARS_PER_SECOND * duration:
        return None
    found, _, _ = _force_aligned(reader, texts, np.zeros(n), np.full(n, duration), longest=np.inf)
    scale, runs = consistent_runs(starts, found, scales)
    return (scale, runs, found) if runs else None


# --------------------------------------------------------------------------- the ends of a file

#: Cues at each end of a file that a run left behind by a break near that end may hold at most.
EDGE_CUES = 6
#: Seconds beyond a run's mapped places searched for its words (an ad break, an intro, a cut).
EDGE_REACH = 180.0
#: Seconds a run must move to count as left behind by a break (less is the per-cue timing's business).
_EDGE_MOVE = 1.0
#: Staying neighbours of a run whose forced alignment measures the subtitler's lead.
_STAY = 4
#: Seconds around a run's shift (as its readings' starts give it) on which the shift is settled.
_SETTLE = np.arange(-1.5, 1.51, 0.25)
_SETTLE_FINE = np.arange(-0.1, 0.11, 0.05)
#: Seconds a held reading is nudged by when places are compared (a subtitler's lead, a cue's lingering end).
_NUDGE = np.array([-0.25, -0.125, 0.0, 0.125, 0.25])


def edge_runs(
    reader: Reader,
    texts: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    duration: float,
    reach: float = EDGE_REACH,
    disowned: str | None = None,
) -> list[tuple[int, int, float]]:
    """Runs of cues at either end of a file that a map left behind: their words lie together elsewhere.

    A break or a cut near the start or the end of a file moves only a few cues, too few
    to pay for a piece of their own in the map from speech activity, and where the break
    holds speech of its own (an ad), the cues left behind land on speech all the same.
    Their words are not there, though. At each end, the two outermost cues' readings,
    together, are searched from the last neighbour that may stay (:data:`EDGE_CUES` cues
    in, a third of the cues at most) to ``reach`` seconds beyond their places (the
    recording's ends bound it). Where they are best found at their places, the map is
    right there. Where they are found at least :data:`_EDGE_MOVE` s away, in order with
    the cues that stay, the shift is kept only if both cues' readings, held to their
    places shifted, read better there than each other's reading does, and stand out from
    it there more than at their mapped places (:func:`_reads_better`). The run then takes in
    each next cue whose reading stands out more shifted too (:func:`_moves`): that settles
    the boundary.

    Parameters
    ----------
    reader : Reader
        The recording (its features) and the readings.
    texts : sequence of str
        The spoken cues' texts, in time order.
    starts, ends : np.ndarray of float
        Where the map puts them, seconds on the recording.
    duration : float
        Length of the recording, seconds.
    reach : float
        Seconds searched beyond the mapped places.
    disowned : {"head", "tail"}, optional
        Only that end is searched, and their best place being their own does not end the
        search: the words of a run there are known not to be where the map puts them
        (:attr:`WordEvidence.disowned`; other talk, an ad's, can match readings as well as
        their own words).

    Returns
    -------
    list of (lo, hi, shift)
        The cues ``lo:hi`` (``lo == 0`` or ``hi == len(texts)``, two cues at least) and the
        seconds to add to their times; at most one run per end, none when the map leaves
        nobody behind.
    """
    starts = np.asarray(starts, np.float64)
    ends = np.maximum(np.asarray(ends, np.float64), starts)
    n = len(texts)
    m = min(EDGE_CUES, n // 3)
    if m < 2 or duration <= 0:
        return []
    cleaned = [_clean(t) for t in texts]
    out: list[tuple[int, int, float]] = []

    def _lead(some: list[str], s: np.ndarray, e: np.ndarray) -> float:
        """Median seconds from the cues' starts to where a forced alignment of their words puts them."""
        found, _, _ = _force_aligned(reader, some, s, e)
        lead = (found - s)[np.isfinite(found)]
        lead = lead[np.abs(lead) <= 0.5]  # farther, the alignment missed the cue (the grid is 0.25 s fine)
        return float(np.median(lead)) if len(lead) else 0.0

    sayable = [i for i in range(n) if cleaned[i]]
    for tail in (True, False):
        if disowned is not None and tail != (disowned == "tail"):
            continue
        # the two cues nearest the end that say something, their words together (a last "..." goes with them)
        pair = sayable[-2:] if tail else sayable[:2]
        if len(pair) < 2 or (pair[0] < n - m if tail else pair[1] >= m):
            continue
        reader.synthesise([cleaned[i] for i in pair])
        if not all(cleaned[i] in reader.readings for i in pair):
            continue
        (x0, pad, _), (x1, _, after) = (reader.readings[cleaned[i]] for i in pair)
        x = np.concatenate([x0[pad:], x1[: len(x1) - after]])
        if tail:  # from the last neighbour that may stay (a cut) to beyond the places (a break)
            t0, t1 = float(ends[n - m - 1]), min(duration, float(ends[-1]) + reach)
        else:
            t0, t1 = max(0.0, float(starts[0]) - reach), float(starts[m])
        if t1 - t0 < 2.0:
            continue
        feats, t_first = reader.stretch(t0, t1)
        lo, hi = (pair[0], n) if tail else (0, pair[1] + 1)
        found = _edge_shift(reader, texts, starts, ends, pair, x, feats, t_first, tail, disowned is not None)
        if found is not None:
            # the boundary: the neighbours whose words are there too go with the run
            while tail and lo > n - m and _extends(reader, texts, starts, ends, lo - 1, found, tail=True):
                lo -= 1
            while not tail and hi < m and _extends(reader, texts, starts, ends, hi, found, tail=False):
                hi += 1
            # held readings score alike wherever they lie inside a cue that lasts past its words: the
            # shift is settled by where a forced alignment starts the run's words against its cues'
            # starts, as against the staying neighbours' (whose places are right: a subtitler's lead).
            # Four of them: the nearest may be on the wrong side of a break too (the settling of the
            # pieces moves it later), and a median of two is then half wrong
            run = list(range(lo, hi))
            stay = list(range(max(lo - _STAY, 0), lo) if tail else range(hi, min(hi + _STAY, n)))
            found += _lead([texts[i] for i in run], starts[run] + found, ends[run] + found) - _lead(
                [texts[i] for i in stay], starts[stay], ends[stay]
            )
            out.append((lo, hi, float(found)))
    return out


def _edge_shift(
    reader: Reader,
    texts: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
    pair: list[int],
    x: np.ndarray,
    feats: np.ndarray,
    t_first: float,
    tail: bool,
    past_own: bool = False,
) -> float | None:
    """The shift of :func:`edge_runs`' two outermost cues (``pair`` of all the cues, reading ``x``) to
    where their words are in ``feats`` (the stretch searched, its first frame at ``t_first``); None where
    they are at their places or read no better anywhere else. The pair keeps its order with the cue
    next to it, which stays.

    Each of the best places (:func:`_spans`) is tried from where the reading starts in it, then from
    where it ends less its length: a path may stretch its first word over a long pause before it (a
    lead-in of silence), and the shift from its start is then seconds early, farther than
    :func:`_reads_better` settles. A best place that is their own ends the search, unless
    ``past_own``: then the next places are tried. After the best places by cost come the best
    by cost relative to each frame's distance from the whole reading (``relative`` of
    :func:`_spans`): words said over music are far from every frame of a reading, and the
    first ranking can miss them. Of the shifts at which the pair reads better, the one where
    their words stand out most from another cue's reading is kept.
    """

    def places() -> Iterator[tuple[int, int]]:
        best = _spans(x, feats, _PLACES)
        yield from best
        # only once the best place is not their own: the relative ranking costs a pass more
        gap = round(1.0 / FRAME)
        yield from (p for p in _spans(x, feats, _PLACES, relative=True) if all(abs(p[0] - f) >= gap for f, _ in best))

    kept: tuple[float, float] | None = None
    for first, last in places():
        shifts = [t_first + a * FRAME - float(starts[pair[0]]) for a in dict.fromkeys((first, last - len(x) + 1))]
        if abs(shifts[0]) < _EDGE_MOVE:
            if past_own:
                continue
            break  # their words are where the map put them (or a shift found before it stands)
        for shift in shifts:
            if abs(shift) < _EDGE_MOVE:
                continue
            if tail and starts[pair[0]] + shift < ends[pair[0] - 1]:
                continue  # the run may not move before the cue that stays
            if not tail and ends[pair[1]] + shift > starts[pair[1] + 1]:
                continue
            found = _reads_better(reader, [texts[i] for i in pair], starts[pair], ends[pair], shift)
            if found is not None and abs(found[0]) >= _EDGE_MOVE and (kept is None or found[1] > kept[1]):
                kept = found
    return None if kept is None else kept[0]


def _extends(
    rd: Reader, texts: Sequence[str], starts: np.ndarray, ends: np.ndarray, i: int, shift: float, *, tail: bool
) -> bool:
    """Whether cue ``i``, next to a run at the file's end (``tail``) or start, reads better shifted with the
    run than at its place, and keeps its order with its other neighbour, which stays."""
    if tail and shift < 0 and i > 0 and starts[i] + shift < ends[i - 1]:
        return False
    if not tail and shift > 0 and i + 1 < len(starts) and ends[i] + shift > starts[i + 1]:
        return False
    return _moves(rd, texts, starts, ends, i, shift)


def _spans(x: np.ndarray, y: np.ndarray, top: int, relative: bool = False) -> list[tuple[int, int]]:
    """The columns where reading ``x`` starts and ends in ``y`` at its ``top`` best places, starts at
    least a second apart.

    The open-ended DTW of :func:`match_reading`, keeping for every end column where its path
    starts and how many cells it has; a place's quality is its path's mean cell cost, among
    the paths that cover half to twice the reading's length (a total with rewards favours
    paths that stretch over any quiet stretch, which a mean does not). ``relative``: each
    frame's costs are in units of its median cost against all of the reading's frames (a
    voice over music is far from every frame of a reading, its own words less so).
    """
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return []
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    yy = (y64 * y64).sum(axis=1)
    cols = np.arange(m)
    if relative:
        unit = np.empty(m)
        xx = (x64 * x64).sum(axis=1)[:, None]
        for c0 in range(0, m, 2048):  # a block of columns at a time: bounded memory
            block = np.sqrt(np.maximum(xx + yy[c0 : c0 + 2048] - 2.0 * (x64 @ y64[c0 : c0 + 2048].T), 0.0))
            unit[c0 : c0 + 2048] = np.maximum(np.median(block, axis=0), 1e-9)
        r = _REWARD
    else:
        unit = np.ones(m)
        r = _REWARD * _chance(x64, y64)

    def row_costs(i: int) -> np.ndarray:
        out: np.ndarray = np.sqrt(np.maximum(x64[i] @ x64[i] + yy - 2.0 * (y64 @ x64[i]), 0.0)) / unit
        return out

    d = row_costs(0) - r
    start, cells = cols.copy(), np.ones(m, np.int64)
    inf = np.array([np.inf])
    for i in range(1, n):
        ci = row_costs(i)
        diag = np.concatenate([inf, d[:-1]]) - r
        take_diag = diag < d
        a = ci + np.where(take_diag, diag, d)
        sa = np.where(take_diag, np.concatenate([[0], start[:-1]]), start)
        na = np.where(take_diag, np.concatenate([[0], cells[:-1]]), cells) + 1
        p = np.cumsum(ci - r)
        v = a - p
        run = np.minimum.accumulate(v)
        k = np.maximum.accumulate(np.where(v <= run, cols, 0))
        d = run + p
        start, cells = sa[k], na[k] + (cols - k)
    covered = cols - start + 1
    mean = (d + r * covered) / np.maximum(cells, 1)
    ok = np.isfinite(mean) & (covered >= n / 2) & (covered <= 2 * n)
    gap = int(round(1.0 / FRAME))
    out: list[tuple[int, int]] = []
    for j in np.flatnonzero(ok)[np.argsort(mean[ok], kind="stable")]:
        if len(out) == top:
            break
        if all(abs(int(start[j]) - f) >= gap for f, _ in out):
            out.append((int(start[j]), int(j)))
    return out


def _settle(
    rd: Reader, texts: list[str], starts: np.ndarray, ends: np.ndarray, around: float
) -> tuple[float, CueReadings] | None:
    """The shift near ``around`` at which the cues' readings, held to their places, score best together
    (the grid :data:`_SETTLE`, then a finer one around its best), and the readings there."""

    def held(d: float) -> CueReadings:
        return read_cues(rd.audio, texts, starts + d, ends + d, language=rd.language, margin=0.5, reader=rd)

    best: tuple[float, CueReadings] | None = None
    for grid in (_SETTLE, _SETTLE_FINE):
        centre = around if best is None else best[0]
        for d in centre + grid:
            r = held(float(d))
            if (
                r.read.all()
                and np.isfinite(r.score_at).all()
                and (best is None or np.mean(r.score_at) > np.mean(best[1].score_at))
            ):
                best = (float(d), r)
    return best


def _reads_better(
    rd: Reader, texts: list[str], starts: np.ndarray, ends: np.ndarray, shift: float
) -> tuple[float, float] | None:
    """The shift, settled on the cues' words, and how much their readings held there beat another cue's
    reading held there (``score_at`` less ``score_null``, on average), if every cue's reading does beat
    it there, and by :data:`_GAIN` more than at their places; else None.

    The contrast, not the score itself, is compared: other talk (an ad's) reads better under any
    reading than a cue's own words said over music do, and a cue's own words stand out from
    another cue's reading where they are said, over music or not.

    A shift found from where a reading starts is as sharp as that start (a path may stretch its first
    word over a pause: a second or so); it is settled where the readings held to their places score
    best together (:func:`_settle`).
    """
    settled = _settle(rd, texts, starts, ends, shift)
    here = read_cues(rd.audio, texts, starts, ends, language=rd.language, margin=0.5, reader=rd)
    if settled is None or not here.read.all():
        return None
    shift, there = settled
    gain = float(np.mean(there.score_at - there.score_null))
    ok = np.all(there.score_at > there.score_null) and gain > float(np.mean(here.score_at - here.score_null)) + _GAIN
    return (float(shift), gain) if ok else None


def _held(rd: Reader, text: str, start: float, end: float) -> float:
    """A cue's reading held to ``[start, end]`` (s), at its best on the nudges :data:`_NUDGE`: every place
    compared gets as many tries, so that none is favoured by them. NaN where it is not read."""
    best = np.nan
    for d in _NUDGE:
        s, e = np.array([start + d]), np.array([end + d])
        r = read_cues(rd.audio, [text], s, e, language=rd.language, margin=0.5, reader=rd)
        if r.read[0] and np.isfinite(r.score_at[0]) and not r.score_at[0] <= best:
            best = float(r.score_at[0])
    return best


def _moves(rd: Reader, texts: Sequence[str], starts: np.ndarray, ends: np.ndarray, i: int, shift: float) -> bool:
    """Whether cue ``i``'s reading held to its place shifted by ``shift`` (another piece's map) beats a far
    cue's reading held there, and by :data:`_GAIN` more than it does at its place (:func:`_held`; the
    contrast, as :func:`_reads_better` compares)."""
    other = (i + len(texts) // 2) % len(texts)
    if other == i:
        return False
    s, e = float(starts[i]), float(ends[i])
    there = _held(rd, texts[i], s + shift, e + shift) - _held(rd, texts[other], s + shift, e + shift)
    here = _held(rd, texts[i], s, e) - _held(rd, texts[other], s, e)
    return bool(there > 0 and there > here + _GAIN)


def settle_pieces(
    reader: Reader,
    texts: Sequence[str],
    starts: np.ndarray,
    ends: np.ndarray,
    piece: np.ndarray,
    offsets: np.ndarray,
) -> np.ndarray:
    """Per cue, the piece of a piecewise map whose place its words are at: each boundary settled by reading.

    Where a map changes its offset (a break, a cut), activity alone may put the boundary a few
    cues off, or make a piece of its own from cues of both sides (an ad with speech between two
    stretches of talk). At each boundary, the cues before it are read, from the boundary back, at
    the place the next piece's offset gives them: each that reads better there than at its place
    (by :data:`_GAIN`), better than a far cue's reading there, better than at the place the
    piece on its own piece's other side would give it, and whose words stand out more from the
    far cue's reading there than at its place (by :data:`_GAIN`; else it reads alike under both:
    other talk can read better under any reading than a cue's own words over music), goes to
    the next piece, as far as the cues keep doing so (no more than :data:`EDGE_CUES` in a row
    that read alike under both maps are carried along); where none does, the cues after the
    boundary are read at the previous piece's place the same way. A cue goes only where it
    keeps its order with the neighbour that stays.

    Parameters
    ----------
    reader : Reader
        The recording (its features) and the readings.
    texts : sequence of str
        The spoken cues' texts, in time order.
    starts, ends : np.ndarray of float
        Where the map puts them, seconds on the recording.
    piece : np.ndarray of int
        Per cue, its piece (non-decreasing).
    offsets : np.ndarray of float
        Per piece, its offset (every piece at the same scale: a cue moves by the difference).

    Returns
    -------
    np.ndarray of int
        Per cue, its piece after the settling (a piece may be left with none).
    """
    starts = np.asarray(starts, np.float64)
    ends = np.maximum(np.asarray(ends, np.float64), starts)
    piece = np.asarray(piece, np.int64)
    out = piece.copy()
    n = len(piece)
    cleaned = [_clean(t) for t in texts]
    reader.synthesise(cleaned)
    order = sorted(set(piece.tolist()))
    after = dict(zip(order, order[1:]))
    before = dict(zip(order[1:], order))
    scores: dict[tuple[int, int, float], float] = {}

    def held(text: int, i: int, shift: float) -> float:
        """Cue ``text``'s reading held to cue ``i``'s place, shifted (:func:`_held`, cached)."""
        key = (text, i, round(shift, 6))
        if key not in scores:
            scores[key] = _held(reader, texts[text], float(starts[i] + shift), float(ends[i] + shift))
        return scores[key]

    def verdict(i: int, dest: int) -> int:
        """1 where cue ``i`` reads better under piece ``dest``'s map than under its own (by :data:`_GAIN`),
        than a far cue's reading there, and than under the piece on its own's other side; -1 where it
        reads better under its own by as much (or has no reading); 0 where the two are alike."""
        own = int(piece[i])
        other = (i + n // 2) % n
        if cleaned[i] not in reader.readings or other == i:
            return -1
        shift = float(offsets[dest] - offsets[own])
        there, here = held(i, i, shift), held(i, i, 0.0)
        if not there > here - _GAIN:
            return -1
        if not (there > here + _GAIN and there > held(other, i, shift)):
            return 0
        alt = before.get(own) if dest == after.get(own) else after.get(own)
        if alt is not None and held(i, i, float(offsets[alt] - offsets[own])) > there:
            return -1
        # other talk can read better under any reading than a cue's own words over music: the
        # cue's words must also stand out more there from a far cue's reading than at its place
        return 1 if there - held(other, i, shift) > here - held(other, i, 0.0) + _GAIN else 0

    def cross(cues: range, src: int, dest: int, shift: float) -> int:
        """Move the cues (from the boundary outwards) that go to ``dest``; a cue that reads alike under
        both maps goes along with one further out that goes (the order is kept). Nothing moves where
        the outermost would then pass the neighbour that stays. How many moved."""
        pending: list[int] = []
        moved: list[int] = []
        for i in cues:
            # as far as the words keep saying so, but not over more than EDGE_CUES alike ones
            if out[i] != src or len(pending) >= EDGE_CUES:
                break
            v = verdict(i, dest)
            if v < 0:
                break
            pending.append(i)
            if v > 0:
                moved += pending
                pending = []
        if not moved:
            return 0
        last = moved[-1]
        stay = last + (cues.step if isinstance(cues, range) else 1)
        if 0 <= stay < n and out[stay] == src:
            if (shift < 0 and stay < last and starts[last] + shift < ends[stay]) or (
                shift > 0 and stay > last and ends[last] + shift > starts[stay]
            ):
                return 0
        out[moved] = dest
        return len(moved)

    for k in (int(c) + 1 for c in np.flatnonzero(np.diff(piece))):  # cue k opens a new piece
        p, q = int(piece[k - 1]), int(piece[k])
        shift = float(offsets[q] - offsets[p])
        if not cross(range(k - 1, -1, -1), p, q, shift):
            cross(range(k, n), q, p, -shift)
    return out
