"""The supervised attention aligner: a small torch model that learns where text is spoken.

A text encoder (eSpeak NG phonemes → embeddings → 1-D convolutions) and an audio encoder
(log-mel frames → 1-D convolutions) map both sides into one space; the soft alignment of a
frame is the softmax, over the text's tokens, of their scaled negative squared L2 distances
to it. Training maximises the total probability of every monotonic alignment (the
forward-sum loss of Badlani et al., "One TTS Alignment To Rule Them All", 2021, computed by
CTC with a blank), with an optional beta-binomial prior that favours the diagonal early on.
At inference the hard monotonic path through the attention log-probabilities (a Numba
kernel, monotonic alignment search) gives each token its frames, hence word and segment times.

Model
    AlignerConfig         sizes and front end of a model (stored with its weights)
    AttentionAligner      the torch module: ``forward(tokens, mels, ...)`` → attention log-probabilities
    forward_sum_loss      the CTC-style monotonic alignment loss
    beta_binomial_prior   the log attention prior of one (frames, tokens) pair
    save_model, load_model    weights in safetensors, the config and calibration (JSON) in its metadata

Inference
    attention_align       a recording and its segments → :class:`~mmalign.align.words.ForcedAlignment`
    hard_path             the most probable monotonic path: token index per frame
    word_times            word starts and ends from a path (the junction convention below)
    tokenize              eSpeak phonemes → token ids, with each word's token range
    embed_audio           a recording → the audio encoder's queries per frame (a learned feature;
                          :func:`mmalign.align.words.force_align` joins them to its DTW's features)
    frame_embeddings      the same from log-mel dB frames
    logmel_frames         the model's front end (log-mel, 10 ms frames, per-band normalised)

Notes
-----
Tokens: index 0 is a boundary token, placed before the first word, between words and after
the last one, which takes the silence (and the jingle, the untranscribed talk) there; every
phoneme (IPA, stress marks dropped) is hashed into ``1 .. n_tokens - 1``, so one table serves
every language eSpeak speaks. Each token gets at least one frame (10 ms).

Junctions: the forward-sum loss makes the model give every boundary token frames, also where
two words are spoken without a pause; it learns to take them from both words (on synthetic
speech, about 25 ms of each). Read as it is, the path would place every word start after the
first late and every word end before the last early. So a boundary token between two words
is read as reaching ``junction`` seconds into each: the word after it starts ``junction``
before the token's end, the word before it ends ``junction`` after its start, and where the
token is shorter than ``2 * junction`` the two words meet in its middle. The model's
``junction`` is fitted on held-out synthetic speech after training
(:func:`mmalign.train.calibrate`) and stored with its weights; 0 reads the path as it is.
Read so, word starts still come out a little late (on synthetic speech about 12 ms, a
frame: 10 % of them more than 50 ms late, 1 % more than 50 ms early): the model's ``lead``,
the median of the held-out starts' errors fitted with the junction, is taken off every
word start.

Memory: aligned in one piece, the attention matrix is frames × tokens (float32, and as much
again for the path search); a recording whose matrix exceeds :data:`MAX_CELLS` (about 800
MB in all) is refused: give it a guide, whose windows keep memory bounded whatever the
length. This module imports torch at import time; nothing in the command line's import
path imports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Union

import numpy as np
import torch
from numba import njit
from torch import nn

from ..errors import InputError, UsageError
from .words import AlignedSegment, AlignedWord, ForcedAlignment

__all__ = [
    "GUIDE_CONTEXT",
    "GUIDE_PAD",
    "MAX_CELLS",
    "AlignerConfig",
    "AttentionAligner",
    "Tokens",
    "attention_align",
    "beta_binomial_prior",
    "default_model_path",
    "embed_audio",
    "forward_sum_loss",
    "frame_embeddings",
    "hard_path",
    "load_model",
    "logmel_frames",
    "save_model",
    "tokenize",
    "word_times",
]

Pathlike = Union[str, "os.PathLike[str]"]

SR = 16000  #: analysis sample rate
HOP = 0.01  #: seconds between frames
_N_FFT = 512
_FMIN, _FMAX = 20.0, 7600.0
_FLOOR_DB = 80.0  # dB below the loudest frames
MAX_CELLS = 100_000_000  #: largest attention matrix (frames × tokens) aligned in one piece
_BLOCK = 2048  # frames scored at once at inference
GUIDE_PAD = 1.0  #: seconds of recording read on each side of a guided window
GUIDE_CONTEXT = 1  #: neighbouring segments read on each side of a segment in a guided window
GUIDE_NORM_SECONDS = 10.0  #: stretch over which a guided recording's log-mel is normalised
_CHUNK_FRAMES = 30000  # frames the audio encoder reads at once in a guided alignment
DEFAULT_WEIGHTS = "aligner.safetensors"  #: the shipped weights, beside this module
_META_KEY = "mmalign.aligner"
_CALIBRATION_KEY = "mmalign.calibration"
_STRESS = str.maketrans("", "", "ˈˌ'")


# --------------------------------------------------------------------------- config and model


@dataclass(frozen=True)
class AlignerConfig:
    """Sizes and front end of an :class:`AttentionAligner` (stored in its weights file).

    Attributes
    ----------
    n_tokens : int
        Token table size: 0 is the word boundary, phonemes hash into the rest.
    n_mels : int
        Log-mel bands of the audio front end (10 ms frames at 16 kHz).
    dim : int
        Width of both encoders.
    attn_dim : int
        Width of the space in which frames and tokens are compared.
    text_layers, audio_layers : int
        Convolution layers of each encoder.
    kernel : int
        Convolution kernel width (odd).
    temperature : float
        Scale of the negative squared distances before the softmax.
    n_cepstra : int
        0: the audio encoder reads the normalised log-mel as it is. Otherwise it reads that
        many cepstra of it (a fixed DCT-II, :func:`mmalign.features.audio.dct_basis`): the
        spectral envelope without its fine detail. On synthetic validation speech it learns
        faster and places more word starts within 50 ms than the log-mel. Weights written
        before this field existed read as 0.
    """

    n_tokens: int = 512
    n_mels: int = 80
    dim: int = 192
    attn_dim: int = 80
    text_layers: int = 3
    audio_layers: int = 4
    kernel: int = 5
    temperature: float = 0.02
    n_cepstra: int = 20

    def to_json(self) -> str:
        """The config as a JSON object."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AlignerConfig:
        """The config of a JSON object written by :meth:`to_json` (unknown keys refused).

        Raises
        ------
        InputError
            Not a JSON object of this config's fields.
        """
        try:
            raw = json.loads(text)
            known = {f.name for f in fields(cls)}
            if not isinstance(raw, dict) or set(raw) - known:
                raise ValueError(f"unknown fields {sorted(set(raw) - known) if isinstance(raw, dict) else raw!r}")
            raw.setdefault("n_cepstra", 0)  # written before the cepstral front end: the log-mel
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise InputError(f"not an attention aligner config: {exc}") from exc


class AttentionAligner(nn.Module):
    """Text and audio encoders whose distances give a soft monotonic-alignable attention.

    Parameters
    ----------
    config : AlignerConfig
        Sizes; the default has about 1.5 M parameters.

    Attributes
    ----------
    calibration : dict
        How to read its paths, fitted after training and stored with the weights:
        ``junction`` (seconds, see the module notes; 0 when absent) and where it was fitted.
    """

    def __init__(self, config: AlignerConfig | None = None) -> None:
        super().__init__()
        self.calibration: dict[str, Any] = {}
        self.config = config = config or AlignerConfig()
        k, d = config.kernel, config.dim
        if k % 2 != 1 or min(config.text_layers, config.audio_layers, d, config.attn_dim, config.n_tokens - 1) < 1:
            raise UsageError(f"bad aligner config: {config}")
        if not 0 <= config.n_cepstra <= config.n_mels:
            raise UsageError(f"bad aligner config: {config}")
        width = config.n_cepstra or config.n_mels
        if config.n_cepstra:
            from ..features.audio import dct_basis

            # fixed, not learned, and not stored: the config says which
            basis = torch.from_numpy(dct_basis(config.n_mels, config.n_cepstra))
            self.register_buffer("dct", basis, persistent=False)
        self.embed = nn.Embedding(config.n_tokens, d)
        self.text = nn.ModuleList(nn.Conv1d(d, d, k, padding=k // 2) for _ in range(config.text_layers))
        self.text_out = nn.Conv1d(d, config.attn_dim, 1)
        self.audio = nn.ModuleList(
            nn.Conv1d(width if i == 0 else d, d, k, padding=k // 2) for i in range(config.audio_layers)
        )
        self.audio_out = nn.Conv1d(d, config.attn_dim, 1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, N)`` → keys ``(B, N, attn_dim)``."""
        h = self.embed(tokens).transpose(1, 2)
        for conv in self.text:
            h = torch.relu(conv(h))
        return self.text_out(h).transpose(1, 2)

    def encode_audio(self, mels: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``(B, T, n_mels)`` → queries ``(B, T, attn_dim)``."""
        if self.config.n_cepstra:
            mels = mels @ self.get_buffer("dct").to(mels.dtype)
        h = mels.transpose(1, 2)
        for conv in self.audio:
            h = torch.relu(conv(h))
        return self.audio_out(h).transpose(1, 2)

    @property
    def junction(self) -> float:
        """Seconds a boundary token between two words reaches into each (0: none fitted)."""
        return float(self.calibration.get("junction", 0.0))

    @property
    def lead(self) -> float:
        """Seconds taken off every word start: how late the path reads them (0: none fitted)."""
        return float(self.calibration.get("lead", 0.0))

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Attention logits ``(B, T, N)``: ``-temperature * |q - k|^2``."""
        dist = (queries**2).sum(-1, keepdim=True) + (keys**2).sum(-1).unsqueeze(1) - 2 * queries @ keys.transpose(1, 2)
        return -self.config.temperature * dist.clamp_min(0.0)

    def forward(
        self,
        tokens: torch.Tensor,
        mels: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        log_prior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention log-probabilities over tokens, per frame.

        Parameters
        ----------
        tokens : torch.Tensor [shape=(B, N), dtype=long]
        mels : torch.Tensor [shape=(B, T, n_mels)]
            Normalised log-mel frames (:func:`logmel_frames`).
        token_mask : torch.Tensor [shape=(B, N), dtype=bool], optional
            True where a token is real (not padding).
        log_prior : torch.Tensor [shape=(B, T, N)], optional
            Added to the log-probabilities (:func:`beta_binomial_prior`), then renormalised.

        Returns
        -------
        torch.Tensor [shape=(B, T, N)]
            ``log_softmax`` over the tokens; padded tokens about ``-1e9``.
        """
        logits = self.scores(self.encode_audio(mels), self.encode_text(tokens))
        if token_mask is not None:
            logits = logits.masked_fill(~token_mask.unsqueeze(1), -1e9)
        logp = torch.log_softmax(logits, dim=-1)
        if log_prior is not None:
            logp = torch.log_softmax(logp + log_prior, dim=-1)
        return logp


def forward_sum_loss(
    log_probs: torch.Tensor,
    token_lengths: torch.Tensor,
    frame_lengths: torch.Tensor,
    *,
    blank_logprob: float = -1.0,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """The forward-sum loss: minus the log of the total probability of all monotonic alignments.

    Every frame goes to one token, tokens in order, each at least once; the probability of
    an alignment is the product of its frames' attention probabilities. Computed as a CTC
    loss whose targets are the token positions ``1..N`` and whose blank (index 0) has the
    constant logit ``blank_logprob`` (as in RAD-TTS), averaged over the batch after dividing
    each sample's loss by its token count (``ctc_loss(reduction="mean")``).

    Parameters
    ----------
    log_probs : torch.Tensor [shape=(B, T, N)]
        Attention log-probabilities (:meth:`AttentionAligner.forward`); padding very negative.
    token_lengths, frame_lengths : torch.Tensor [shape=(B,), dtype=long]
        Real tokens and frames per sample (``frame_lengths >= token_lengths``).
    blank_logprob : float
        The blank's logit, before the softmax over blank and tokens.
    allowed : torch.Tensor [shape=(B, T, N), dtype=bool], optional
        Only the alignments that keep each frame on one of its allowed tokens are summed
        (after the softmax: the rest of the probability is lost, not shared out), e.g. each
        word's tokens inside the word's known times (:func:`mmalign.train.loop.word_mask`).
        The loss is then the forward-sum loss plus minus the log of the probability that
        the alignment keeps to them.

    Returns
    -------
    torch.Tensor
        The scalar loss.
    """
    b, _, n = log_probs.shape
    padded = torch.nn.functional.pad(log_probs, (1, 0), value=blank_logprob)
    padded = torch.log_softmax(padded, dim=-1)
    if allowed is not None:
        keep = torch.nn.functional.pad(allowed, (1, 0), value=True)  # the blank, everywhere
        padded = padded.masked_fill(~keep, -1e4)
    padded = padded.transpose(0, 1)  # (T, B, N + 1)
    targets = torch.arange(1, n + 1, device=log_probs.device).expand(b, n)
    return torch.nn.functional.ctc_loss(
        padded, targets, frame_lengths, token_lengths, blank=0, reduction="mean", zero_infinity=True
    )


def beta_binomial_prior(frames: int, tokens: int, scaling: float = 1.0) -> np.ndarray:
    """Log of the beta-binomial attention prior (RAD-TTS): frame ``t`` near token ``t * N / T``.

    Row ``t`` (1-based) is the beta-binomial pmf over ``k = 0..N-1`` with ``n = N - 1``,
    ``a = scaling * t``, ``b = scaling * (T + 1 - t)``.

    Returns
    -------
    np.ndarray [shape=(frames, tokens), dtype=float32]
    """
    from scipy.special import betaln, gammaln

    n = tokens - 1
    k = np.arange(tokens, dtype=np.float64)[None, :]
    t = np.arange(1, frames + 1, dtype=np.float64)[:, None]
    a, b = scaling * t, scaling * (frames + 1 - t)
    log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return (log_choose + betaln(k + a, n - k + b) - betaln(a, b)).astype(np.float32)


# --------------------------------------------------------------------------- weights


def save_model(model: AttentionAligner, path: Pathlike, *, extra: dict[str, Any] | None = None) -> None:
    """Write the weights (safetensors, float32) with the config, calibration and ``extra`` in its metadata.

    Written atomically: a temporary file beside ``path``, then renamed.

    Raises
    ------
    OutputError
        ``path`` cannot be written.
    """
    from safetensors.torch import save

    from ..fileio import atomic_write

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {_META_KEY: model.config.to_json(), "format": "pt"}
    if model.calibration:
        meta[_CALIBRATION_KEY] = json.dumps(model.calibration, sort_keys=True)
    if extra:
        meta["mmalign.training"] = json.dumps(extra, sort_keys=True)
    atomic_write(path, save(tensors, metadata=meta))


def load_model(path: Pathlike, *, device: str = "cpu") -> AttentionAligner:
    """Read a model written by :func:`save_model` (safetensors only: no pickle, no network).

    Raises
    ------
    InputError
        The file is missing, not safetensors, or not an attention aligner's weights.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except (OSError, SafetensorError, ValueError) as exc:
        raise InputError(f"{os.fspath(path)}: cannot read the aligner weights: {exc}") from exc
    if _META_KEY not in meta:
        raise InputError(f"{os.fspath(path)}: not an attention aligner's weights (no config in its metadata)")
    model = AttentionAligner(AlignerConfig.from_json(meta[_META_KEY]))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{os.fspath(path)}: weights do not fit their config: {str(exc).splitlines()[0]}") from exc
    if _CALIBRATION_KEY in meta:
        try:
            calibration = json.loads(meta[_CALIBRATION_KEY])
            if (
                not isinstance(calibration, dict)
                or not 0 <= float(calibration.get("junction", 0.0)) < 1
                or not abs(float(calibration.get("lead", 0.0))) < 1
            ):
                raise ValueError(calibration)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{os.fspath(path)}: not an attention aligner calibration: {exc}") from exc
        model.calibration = calibration
    return model.to(device).eval()


# --------------------------------------------------------------------------- front end and tokens


def logmel_frames(y: np.ndarray, *, n_mels: int = 80) -> np.ndarray:
    """The model's front end: log-mel of 16 kHz mono samples, 10 ms frames, per band normalised.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Samples at 16 kHz.
    n_mels : int
        Bands.

    Returns
    -------
    np.ndarray [shape=(T, n_mels), dtype=float32]
    """
    return normalise(_logmel_db(y, n_mels))


def _logmel_db(y: np.ndarray, n_mels: int) -> np.ndarray:
    """Log-mel dB ``(T, n_mels)`` of 16 kHz samples at the model's front end, not normalised."""
    from ..features.audio import logmel_array

    if len(y) == 0:
        return np.zeros((0, n_mels), np.float32)
    return logmel_array(y, sr=SR, hop_length=int(SR * HOP), n_fft=_N_FFT, n_mels=n_mels, fmin=_FMIN, fmax=_FMAX)


def _floor(db: np.ndarray) -> np.float32:
    """The dB floor of :func:`normalise`: :data:`_FLOOR_DB` below the loud frames (99th percentile of frame maxima)."""
    return np.float32(float(np.percentile(db.max(axis=1), 99)) - _FLOOR_DB)


def normalise(db: np.ndarray) -> np.ndarray:
    """Floor log-mel dB ``(T, M)`` 80 dB below the loud frames, then zero mean, unit variance per band."""
    db = np.asarray(db, np.float32)
    if len(db) == 0:
        return db
    x = np.maximum(db, _floor(db))
    x = x - x.mean(axis=0)
    return (x / np.maximum(x.std(axis=0), 1e-3)).astype(np.float32)


def token_id(phoneme: str, n_tokens: int) -> int:
    """The token of an IPA phoneme: stress marks dropped, hashed into ``1 .. n_tokens - 1``."""
    name = phoneme.translate(_STRESS)
    return 1 + zlib.crc32(name.encode("utf-8")) % (n_tokens - 1)


@dataclass(frozen=True)
class Tokens:
    """A text as tokens.

    Attributes
    ----------
    ids : np.ndarray [shape=(N,), dtype=int64]
        Token ids: 0 (boundary) before, between and after the words, phonemes in between.
    word_first, word_last : np.ndarray [shape=(W,), dtype=int64]
        Each word's first and last token index.
    """

    ids: np.ndarray
    word_first: np.ndarray
    word_last: np.ndarray


def tokenize(phonemes: Sequence[tuple[str, int]], n_words: int, n_tokens: int) -> Tokens:
    """Tokens of a text from its phonemes ``(name, word index)`` in order (eSpeak's).

    A word without phonemes gets the boundary token before it as its own (times of length 0
    are avoided: each token has a frame).
    """
    ids = [0]
    first = np.zeros(n_words, np.int64)
    last = np.zeros(n_words, np.int64)
    by_word: list[list[str]] = [[] for _ in range(n_words)]
    for name, w in phonemes:
        by_word[w].append(name)
    for w, names in enumerate(by_word):
        if w > 0:
            ids.append(0)
        if not names:
            first[w] = last[w] = len(ids) - 1
            continue
        first[w] = len(ids)
        ids.extend(token_id(p, n_tokens) for p in names)
        last[w] = len(ids) - 1
    ids.append(0)
    return Tokens(np.asarray(ids, np.int64), first, last)


# --------------------------------------------------------------------------- hard path


@njit(cache=True)
def _mas(logp: np.ndarray) -> np.ndarray:
    """Monotonic alignment search: token per frame maximising the summed log-probability.

    ``logp`` (T, N) float32, T >= N; the path starts at (0, 0), ends at (T-1, N-1) and each
    frame either stays on its token or moves to the next. Works on a copy.
    """
    t_max, n_max = logp.shape
    v = np.empty((t_max, n_max), np.float32)
    neg = np.float32(-np.inf)
    for t in range(t_max):
        lo = max(0, n_max - t_max + t)
        hi = min(n_max, t + 1)
        for n in range(n_max):
            if n < lo or n >= hi:
                v[t, n] = neg
            elif t == 0:
                v[t, n] = logp[t, n]
            else:
                stay = v[t - 1, n]
                move = v[t - 1, n - 1] if n > 0 else neg
                v[t, n] = logp[t, n] + (stay if stay >= move else move)
    out = np.empty(t_max, np.int64)
    n = n_max - 1
    for t in range(t_max - 1, -1, -1):
        out[t] = n
        if t > 0 and n > 0 and (n == t or v[t - 1, n - 1] > v[t - 1, n]):
            n -= 1
    return out


def hard_path(log_probs: np.ndarray) -> np.ndarray:
    """The most probable monotonic alignment of frames to tokens.

    Parameters
    ----------
    log_probs : np.ndarray [shape=(T, N)]
        Attention log-probabilities, ``T >= N``.

    Returns
    -------
    np.ndarray [shape=(T,), dtype=int64]
        The token of each frame: starts at 0, ends at ``N - 1``, steps of 0 or 1.

    Raises
    ------
    UsageError
        Not a 2-D array, or fewer frames than tokens.
    """
    x = np.ascontiguousarray(log_probs, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 1:
        raise UsageError("{log_probs} must be a 2-D array (frames, tokens)", names=["log_probs"])
    if x.shape[0] < x.shape[1]:
        raise UsageError(f"{x.shape[1]} tokens cannot fit in {x.shape[0]} frames (one frame each at least)")
    return _mas(x)


def word_times(
    path: np.ndarray, tokens: Tokens, *, junction: float = 0.0, lead: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (seconds) of each word from the token of each frame.

    A token's start is half a frame before its first frame's centre (frames are centred);
    its end is half a frame after its last. With ``junction`` > 0, a boundary token between
    two words is read as reaching that far into each (see the module notes): the word after
    it starts at ``max(end - junction, middle)``, the word before it ends at
    ``min(start + junction, middle)``. Then ``lead`` is taken off every start (not below 0,
    nor after the word's end).

    Parameters
    ----------
    path : np.ndarray [shape=(T,)]
        Token of each frame (:func:`hard_path`).
    tokens : Tokens
        The tokens aligned.
    junction : float >= 0
        Seconds; the model's :attr:`AttentionAligner.junction`.
    lead : float
        Seconds; the model's :attr:`AttentionAligner.lead`.

    Returns
    -------
    (np.ndarray, np.ndarray) [shape=(W,)]
        Starts and ends, seconds.
    """
    n = int(path[-1]) + 1
    starts = np.searchsorted(path, np.arange(n), side="left")
    ends = np.searchsorted(path, np.arange(n), side="right")
    t0 = (starts[tokens.word_first] - 0.5) * HOP
    t1 = (ends[tokens.word_last] - 0.5) * HOP
    if junction > 0 and len(tokens.word_first) > 1:
        ids, first, last = tokens.ids, tokens.word_first, tokens.word_last
        b = first[1:] - 1  # the boundary token before each later word
        ok = (ids[b] == 0) & (ids[first[1:]] != 0) & (last[:-1] == b - 1)
        lo, hi = (starts[b] - 0.5) * HOP, (ends[b] - 0.5) * HOP
        middle = (lo + hi) / 2
        t0[1:] = np.where(ok, np.maximum(hi - junction, middle), t0[1:])
        t1[:-1] = np.where(ok, np.minimum(lo + junction, middle), t1[:-1])
    t0 = np.minimum(np.maximum(t0 - lead, 0.0), np.maximum(t1, 0.0))
    return t0, np.maximum(t1, t0)


def log_probs_of(model: AttentionAligner, tokens: np.ndarray, mels: np.ndarray) -> np.ndarray:
    """Attention log-probabilities ``(T, N)`` of one (tokens, normalised log-mel) pair, in frame blocks."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        keys = model.encode_text(torch.as_tensor(tokens, device=device)[None])
        queries = model.encode_audio(torch.as_tensor(mels, device=device)[None])
        out = np.empty((mels.shape[0], len(tokens)), np.float32)
        for a in range(0, mels.shape[0], _BLOCK):
            logp = torch.log_softmax(model.scores(queries[:, a : a + _BLOCK], keys), dim=-1)
            out[a : a + _BLOCK] = logp[0].float().cpu().numpy()
    return out


# --------------------------------------------------------------------------- public inference


def _recording_db(audio: Pathlike | np.ndarray, sr: int, audio_stream: int | None, n_mels: int) -> np.ndarray:
    """The recording's log-mel dB ``(T, n_mels)`` at the model's front end, not yet normalised."""
    from ..features.audio import audio_features

    if isinstance(audio, np.ndarray):
        y = np.asarray(audio, np.float32)
        if sr != SR:
            import soxr

            y = soxr.resample(y, sr, SR).astype(np.float32)
        return _logmel_db(y, n_mels)
    seq = audio_features(
        audio, ["logmel"], sr=SR, hop_length=int(SR * HOP), n_fft=_N_FFT, n_mels=n_mels,
        fmin=_FMIN, fmax=_FMAX, audio_stream=audio_stream, jobs=1,
    )["audio.logmel"]  # fmt: skip
    return np.asarray(seq.values, np.float32)


def default_model_path() -> str:
    """The weights that ship with mmalign (``scripts/train_default_aligner.py`` makes them)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), DEFAULT_WEIGHTS)


def attention_align(
    audio: Pathlike | np.ndarray,
    segments: Sequence[str],
    *,
    model: AttentionAligner | Pathlike | None = None,
    language: str | None = None,
    sr: int = SR,
    audio_stream: int | None = None,
    guide: ForcedAlignment | None = None,
) -> ForcedAlignment:
    """Find where each segment of a transcript is spoken, with the attention aligner.

    Without ``guide`` the whole recording is aligned with the whole transcript in one
    piece (at most :data:`MAX_CELLS` frames × tokens). With ``guide`` (a forced alignment
    of the same segments, e.g. :func:`mmalign.align.words.force_align`'s) each segment the
    guide found is aligned again by the model inside a window: the guide's span of the
    segment and of :data:`GUIDE_CONTEXT` neighbours on each side, widened by
    :data:`GUIDE_PAD` seconds, with those neighbours' words read too; the segment's own
    words take their times from it. Memory and time then grow with the recording's length
    only, so hours of media are aligned; a segment the guide did not find is not found.

    Parameters
    ----------
    audio : str, os.PathLike or np.ndarray [shape=(n,)]
        A media file with an audio stream, or mono samples at ``sr``.
    segments : sequence of str
        The transcript, one text per line or cue, in the order spoken (cleaned first with
        :func:`mmalign.speech.clean_text`).
    model : AttentionAligner or path, optional
        A model, or a weights file written by :func:`save_model`; default: the weights
        that ship with mmalign (:func:`default_model_path`).
    language : str, optional
        Language code for eSpeak NG's phonemes; default: the guide's, or detected from
        the transcript.
    sr : int
        Sample rate of ``audio`` when it is an array.
    audio_stream : int, optional
        Audio stream of a media file.
    guide : ForcedAlignment, optional
        Where the segments are roughly; one segment for each of ``segments``.

    Returns
    -------
    ForcedAlignment
        As :func:`mmalign.align.words.force_align` gives: per segment start, end, score
        (the geometric mean, over its frames, of the path token's attention renormalised
        over the 3 tokens on each side of it; with the shipped weights about 0.6 for
        synthetic speech aligned right, 0.2 for a wrong transcript; the confidence is their
        mean weighted by the segments' lengths) and word times; its
        ``path`` pairs each word's start on eSpeak's reading (the synthetic timeline) with
        its start on the recording, so ``timemap()`` maps the reading onto the recording.

    Raises
    ------
    UsageError
        Bad arguments; a transcript with nothing to say and no language; a guide of other
        segments; without a guide, a recording whose attention matrix exceeds
        :data:`MAX_CELLS`, or shorter than one frame per token.
    InputError
        The file or the weights cannot be read.
    """
    from .. import speech

    if isinstance(segments, str) or not isinstance(segments, Sequence):
        raise UsageError("{segments} must be a sequence of str (one per line or cue)", names=["segments"])
    texts = [str(t) for t in segments]
    if guide is not None:
        if not isinstance(guide, ForcedAlignment) or len(guide.segments) != len(texts):
            raise UsageError("{guide} must be a ForcedAlignment of the same segments", names=["guide"])
        language = language or guide.language
    net = model if isinstance(model, AttentionAligner) else load_model(default_model_path() if model is None else model)
    cleaned = [speech.clean_text(t) for t in texts]
    if language is None and not any(cleaned):
        raise UsageError("the transcript has nothing to say; cannot detect its {language}", names=["language"])
    syn = speech.synthesize_segments(cleaned, language=language, sr=4000, gap=0.2)
    # only the reading's times are used: its samples (a minute a megabyte) go before the decoding
    reading = syn.duration
    syn = dataclasses.replace(syn, audio=np.zeros(0, np.float32))
    db = _recording_db(audio, sr, audio_stream, net.config.n_mels)
    duration = len(db) * HOP
    if not syn.words:
        segs = tuple(AlignedSegment(k, t, None, None, float("nan"), (), "nothing to say") for k, t in enumerate(texts))
        return ForcedAlignment(segs, syn.language, duration, 0.0, np.zeros((1, 2), np.int64), HOP)
    if guide is not None:
        return _guided(net, texts, syn, reading, db, guide)
    toks = tokenize([(p.name, p.word) for p in syn.phonemes], len(syn.words), net.config.n_tokens)
    cells = len(db) * len(toks.ids)
    if cells > MAX_CELLS:
        raise UsageError(
            f"{{audio}} is too long for one attention alignment ({cells} cells > {MAX_CELLS}): "
            "align it with a {guide}",
            names=["audio", "guide"],
        )
    if len(db) < len(toks.ids):
        raise UsageError(
            f"{{audio}} is shorter than its transcript ({len(db)} frames, {len(toks.ids)} tokens)", names=["audio"]
        )
    logp = log_probs_of(net, toks.ids, normalise(db))
    path = hard_path(logp)
    frame_logp = _path_margin(logp, path)
    w0, w1 = word_times(path, toks, junction=net.junction, lead=net.lead)
    scores = {k: _span_score(frame_logp, w0[seg.words[0]], w1[seg.words[-1]]) for k, seg in _spoken(syn)}
    return _result(texts, syn, reading, w0, w1, scores, {}, duration)


def _spoken(syn: Any) -> list[tuple[int, Any]]:
    """The reading's segments that have words, with their index."""
    return [(k, seg) for k, seg in enumerate(syn.segments) if len(seg.words)]


_BAND = 3  # tokens on each side of the path's over which a frame's attention is renormalised for its score


def _path_margin(logp: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Per frame, the log-probability of the path's token among the :data:`_BAND` tokens on each
    side of it: the attention renormalised over that band (<= 0).

    The softmax over all the window's tokens is flat-ish even where the path is right (its
    geometric mean along a right path was about 0.01, on synthetic speech aligned within
    50 ms): a phoneme or a boundary token elsewhere in the window takes its share. Near the
    path, a right alignment's attention sits on the path's token; a wrong transcript's does not.
    """
    rows = np.arange(len(path))
    near = path[:, None] + np.arange(-_BAND, _BAND + 1)[None, :]
    inside = (near >= 0) & (near < logp.shape[1])
    vals = np.where(inside, logp[rows[:, None], np.clip(near, 0, logp.shape[1] - 1)], -np.inf)
    top = vals.max(axis=1)
    return logp[rows, path] - (top + np.log(np.exp(vals - top[:, None]).sum(axis=1)))


def _span_score(frame_logp: np.ndarray, t0: float, t1: float) -> float:
    """Geometric mean of the path's :func:`_path_margin` over its frames from ``t0`` to ``t1`` (seconds)."""
    f0 = int(round(t0 / HOP))
    f1 = max(int(round(t1 / HOP)), f0 + 1)
    span = frame_logp[f0:f1]
    return float(np.exp(span.mean())) if len(span) else 0.0


def _guided(
    net: AttentionAligner, texts: list[str], syn: Any, reading: float, db: np.ndarray, guide: ForcedAlignment
) -> ForcedAlignment:
    """Each segment the guide found, aligned again with its neighbours in a window around the guide's span.

    Both encoders run once: the audio encoder over the whole recording (:func:`frame_embeddings`),
    the text encoder over the whole transcript; each window then compares its frames'
    queries with its words' keys.
    """
    duration = len(db) * HOP
    w0 = np.full(len(syn.words), np.nan)
    w1 = np.full(len(syn.words), np.nan)
    scores: dict[int, float] = {}
    reasons: dict[int, str] = {}
    toks = tokenize([(p.name, p.word) for p in syn.phonemes], len(syn.words), net.config.n_tokens)
    queries = frame_embeddings(net, db)
    device = next(net.parameters()).device
    with torch.inference_mode():
        keys = net.encode_text(torch.as_tensor(toks.ids, device=device)[None])[0]
    found = []
    order = {k: n for n, (k, _) in enumerate(_spoken(syn))}  # place among the segments with words
    for k in order:
        given = guide.segments[k]
        if given.found and given.end is not None:
            found.append(k)
        else:
            reasons[k] = given.reason or "not in the recording"
    for i, k in enumerate(found):
        # neighbours next to it in the transcript only: not across a segment the guide missed
        near = found[max(0, i - GUIDE_CONTEXT) : i + GUIDE_CONTEXT + 1]
        group = [g for g in near if abs(order[g] - order[k]) <= GUIDE_CONTEXT]
        lo = min(float(guide.segments[g].start or 0.0) for g in group) - GUIDE_PAD
        hi = max(float(guide.segments[g].end or 0.0) for g in group) + GUIDE_PAD
        a, b = max(0, int(np.floor(lo / HOP))), min(len(queries), int(np.ceil(hi / HOP)))
        # the window's tokens: each segment's words with the boundary tokens around them
        index: list[int] = []
        words: list[int] = []
        for g in group:
            ws = list(syn.segments[g].words)
            span = range(int(toks.word_first[ws[0]]) - 1, int(toks.word_last[ws[-1]]) + 2)
            index.extend(span[1:] if index else span)  # consecutive segments share a boundary
            words.extend(ws)
        local = {t: j for j, t in enumerate(index)}
        sub = Tokens(
            toks.ids[index],
            np.array([local[int(toks.word_first[w])] for w in words], np.int64),
            np.array([local[int(toks.word_last[w])] for w in words], np.int64),
        )
        if b - a < len(index):
            reasons[k] = "not in the recording"
            continue
        with torch.inference_mode():
            q = torch.as_tensor(queries[a:b], device=device)[None]
            logp = torch.log_softmax(net.scores(q, keys[index][None]), dim=-1)[0].float().cpu().numpy()
        path = hard_path(logp)
        t0, t1 = word_times(path, sub, junction=net.junction, lead=net.lead)
        own = set(syn.segments[k].words)
        mine = [j for j, w in enumerate(words) if w in own]
        w0[[words[j] for j in mine]] = t0[mine] + a * HOP
        w1[[words[j] for j in mine]] = t1[mine] + a * HOP
        scores[k] = _span_score(_path_margin(logp, path), t0[mine[0]], t1[mine[-1]])
    return _result(texts, syn, reading, w0, w1, scores, reasons, duration)


def embed_audio(
    model: AttentionAligner,
    audio: Pathlike | np.ndarray,
    *,
    sr: int = SR,
    audio_stream: int | None = None,
    project: np.ndarray | None = None,
) -> np.ndarray:
    """The audio encoder's queries of a recording: a learned feature per 10 ms frame, any length.

    Parameters
    ----------
    model : AttentionAligner
    audio : str, os.PathLike or np.ndarray [shape=(n,)]
        A media file with an audio stream, or mono samples at ``sr``.
    sr : int
        Sample rate of ``audio`` when it is an array.
    audio_stream : int, optional
        Audio stream of a media file.
    project : np.ndarray [shape=(attn_dim, k)], optional
        Each frame's query is multiplied by it (:func:`frame_embeddings`).

    Returns
    -------
    np.ndarray [shape=(T, model.config.attn_dim or k), dtype=float32]
        Frame ``t`` covers ``t * 0.01`` s; normalised and encoded as :func:`frame_embeddings` does.
    """
    return frame_embeddings(model, _recording_db(audio, sr, audio_stream, model.config.n_mels), project)


def frame_embeddings(net: AttentionAligner, db: np.ndarray, project: np.ndarray | None = None) -> np.ndarray:
    """The audio encoder's queries ``(T, attn_dim)`` of a long recording's log-mel dB, in chunks.

    With ``project`` (``(attn_dim, k)``) each chunk's queries are multiplied by it as they
    come: ``(T, k)``, and no more memory than that for the whole recording.

    Each chunk is floored as :func:`normalise` floors (the whole recording's top), normalised
    per band over a centred stretch of :data:`GUIDE_NORM_SECONDS` (about a training
    utterance's context; :func:`mmalign.filters.sliding_normalise`) and encoded. The encoder is
    convolutional: a frame's query depends on ``audio_layers * (kernel // 2)`` frames on each
    side, and its normalisation on half a stretch; each chunk is read with that much more on
    each side and only its middle kept, so the result is the same as in one piece.
    """
    from ..filters import sliding_normalise

    if project is not None:
        project = np.asarray(project, np.float32)
        if project.ndim != 2 or project.shape[0] != net.config.attn_dim:
            raise UsageError(f"{{project}} must have shape ({net.config.attn_dim}, k)", names=["project"])
    out = np.empty((len(db), net.config.attn_dim if project is None else project.shape[1]), np.float32)
    if len(db) == 0:
        return out
    device = next(net.parameters()).device
    floor = _floor(db)
    width = int(round(GUIDE_NORM_SECONDS / HOP))
    reach = net.config.audio_layers * (net.config.kernel // 2)
    with torch.inference_mode():
        for a in range(0, len(db), _CHUNK_FRAMES):
            n = min(_CHUNK_FRAMES, len(db) - a)
            lo, hi = max(0, a - reach), min(len(db), a + n + reach)  # what the encoder reads
            lo2, hi2 = max(0, lo - width // 2), min(len(db), hi + width // 2)  # and its normalisation
            x = sliding_normalise(np.maximum(db[lo2:hi2], floor), width)[lo - lo2 : hi - lo2]
            q = net.encode_audio(torch.as_tensor(x, device=device)[None])[0]
            kept = q[a - lo : a - lo + n].float().cpu().numpy()
            out[a : a + n] = kept if project is None else kept @ project
    return out


def _result(
    texts: list[str],
    syn: Any,
    reading: float,
    w0: np.ndarray,
    w1: np.ndarray,
    scores: dict[int, float],
    reasons: dict[int, str],
    duration: float,
) -> ForcedAlignment:
    """The forced alignment of word times ``w0``/``w1`` (NaN: not found) and segment scores;
    ``reading`` is the length (seconds) of eSpeak's reading, ``duration`` the recording's."""
    out: list[AlignedSegment] = []
    found_scores: list[float] = []
    weights: list[float] = []
    for k, seg in enumerate(syn.segments):
        if not len(seg.words):
            out.append(AlignedSegment(k, texts[k], None, None, float("nan"), (), "nothing to say"))
            continue
        if k not in scores:
            why = reasons.get(k, "not in the recording")
            out.append(AlignedSegment(k, texts[k], None, None, float("nan"), (), why))
            continue
        ws = list(seg.words)
        words = tuple(AlignedWord(syn.words[i].text, float(w0[i]), float(w1[i]), k) for i in ws)
        out.append(AlignedSegment(k, texts[k], float(w0[ws[0]]), float(w1[ws[-1]]), scores[k], words))
        found_scores.append(scores[k])
        weights.append(seg.end - seg.start + HOP)
    # the path: each word's start on the reading and on the recording
    pairs = [(0, 0)]
    for w, word in enumerate(syn.words):
        if np.isfinite(w0[w]):
            pairs.append((int(round(word.start / HOP)), int(round(w0[w] / HOP))))
    pairs.append((int(round(reading / HOP)), max(int(round(duration / HOP)) - 1, 0)))
    arr = np.maximum.accumulate(np.asarray(pairs, np.int64), axis=0)
    confidence = float(np.average(found_scores, weights=weights)) if found_scores else 0.0
    return ForcedAlignment(tuple(out), syn.language, duration, confidence, arr, HOP)
