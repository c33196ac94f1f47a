"""Training the attention aligner: batches, the forward-sum loss, validation, checkpoints.

    train_aligner    data folders → a weights file, with a checkpoint each epoch
    best_epoch       the epoch whose weights ``keep="best"`` writes
    EpochReport      loss and validation score of one epoch
    validate         share of word starts within 0.05 / 0.1 / 0.25 s of the truth
    calibrate        fit a model's ``junction`` and ``lead`` (how its paths are read) on held-out utterances
    calibrate_aligner    the same for a weights file and data folders (its validation split)
    evaluate_aligner     a weights file scored on every utterance of data folders (a test set)

Determinism: the model is initialised from ``seed`` and the batches of epoch ``e`` are
drawn from ``(seed, e)``; nothing else is random (no dropout), so on the CPU the same data
and seed give the same weights, and a run resumed from a checkpoint gives the weights an
uninterrupted run would have.

Checkpoints: ``MODEL.checkpoint.safetensors`` beside the output, written atomically after
every epoch: the model's and Adam's tensors, the config, the epoch and the history in its
metadata. Killed at any moment (``kill -9``), a run restarted with ``resume=True`` goes on
from the last finished epoch.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, UsageError
from .checkpoint import (
    Pathlike,
    check_run,
    checkpoint_meta,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
    torch_device,
    warmdown_lr,
)

__all__ = [
    "TOLERANCES",
    "EpochReport",
    "best_epoch",
    "calibrate",
    "calibrate_aligner",
    "checkpoint_path",
    "evaluate_aligner",
    "train_aligner",
    "validate",
]

TOLERANCES = (0.05, 0.1, 0.25)  #: seconds: validation counts word starts within each


@dataclass(frozen=True)
class EpochReport:
    """One epoch of training.

    Attributes
    ----------
    epoch : int
        1-based.
    loss : float
        Mean forward-sum loss over the epoch's batches.
    within : dict of str to float
        Share (0–1) of validation word starts within each tolerance (keys ``"0.05"``, ...),
        the paths read with the ``junction`` fitted on them.
    seconds : float
        Wall time of the epoch.
    junction : float
        The junction (seconds) fitted after the epoch (:func:`calibrate`).
    within_raw : dict of str to float
        As ``within``, the paths read as they are (junction 0).
    """

    epoch: int
    loss: float
    within: dict[str, float]
    seconds: float
    junction: float = 0.0
    within_raw: dict[str, float] = field(default_factory=dict)


@dataclass
class _Item:
    id: str
    mels: np.ndarray  # normalised, float16
    tokens: np.ndarray
    first: np.ndarray
    starts: np.ndarray
    last: np.ndarray


def _items(data: Sequence[Pathlike], n_mels: int, n_tokens: int, language: str | None = None) -> list[_Item]:
    from ..align.attention import normalise, tokenize
    from .data import load_utterances

    items = []
    for root in data:
        for u in load_utterances(root, n_mels=n_mels, language=language):
            toks = tokenize(u.phonemes, len(u.word_starts), n_tokens)
            mels = normalise(u.mels.astype(np.float32)).astype(np.float16)
            if len(mels) >= len(toks.ids):
                items.append(_Item(u.id, mels, toks.ids, toks.word_first, u.word_starts, toks.word_last))
    if not items:
        raise InputError("no usable utterances in the training data")
    return items


def _split(items: list[_Item], share: float) -> tuple[list[_Item], list[_Item]]:
    """Validation by a hash of the id (stable whatever the order or the other folders).

    Cues of an export (utterances whose word times are known only at their start) are held
    out joined in pairs (:func:`_join`): the second cue's start, at the junction, is then a
    boundary inside an utterance, as the share of starts found near it needs.
    """
    val = [it for it in items if zlib.crc32(it.id.encode()) % 1000 < share * 1000]
    if not val:
        val = items[-1:]
    held = {id(it) for it in val}
    train = [it for it in items if id(it) not in held] or items
    whole = [it for it in val if np.isfinite(it.starts).all()]
    cues = [it for it in val if not np.isfinite(it.starts).all()]
    pairs = [_join(cues[k], cues[k + 1]) for k in range(0, len(cues) - 1, 2)]
    return train, whole + pairs + cues[len(pairs) * 2 :]


def _join(a: _Item, b: _Item) -> _Item:
    """Two utterances as one: ``a``'s trailing and ``b``'s leading silence become a pause inside it,
    taken by one boundary token (``a``'s last, ``b``'s first: the same token)."""
    from ..align.attention import HOP

    shift = len(a.tokens) - 1
    return _Item(
        f"{a.id}+{b.id}",
        np.concatenate([a.mels, b.mels]),
        np.concatenate([a.tokens, b.tokens[1:]]),
        np.concatenate([a.first, b.first + shift]),
        np.concatenate([a.starts, b.starts + len(a.mels) * HOP]),
        np.concatenate([a.last, b.last + shift]),
    )


def _joined(items: list[_Item], share: float, seed: int, epoch: int) -> list[_Item]:
    """``items`` with about ``share`` of them joined in pairs (:func:`_join`), other pairs each epoch."""
    pairs = _pairs(len(items), share)
    if pairs == 0:
        return items
    order = np.random.default_rng([seed, epoch, 1]).permutation(len(items))
    joined = [_join(items[order[2 * k]], items[order[2 * k + 1]]) for k in range(pairs)]
    return joined + [items[i] for i in order[2 * pairs :]]


def _pairs(n: int, share: float) -> int:
    """How many pairs :func:`_joined` makes of ``n`` utterances."""
    return int(n * share) // 2


def _batch_count(n: int, batch_size: int) -> int:
    """How many batches :func:`_batches` makes of ``n`` items (pools of ``batch_size * 16``)."""
    pool = batch_size * 16
    return sum(-(-min(pool, n - a) // batch_size) for a in range(0, n, pool))


def _batches(items: list[_Item], batch_size: int, seed: int, epoch: int) -> list[list[_Item]]:
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(items))
    batches: list[list[_Item]] = []
    pool = batch_size * 16
    for a in range(0, len(order), pool):
        chunk = sorted((items[i] for i in order[a : a + pool]), key=lambda it: len(it.mels))
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


#: Seconds on each side of a true word start inside which a frame may go to either word
#: (:func:`word_mask`): eSpeak's word events and the 10 ms frames agree only so far.
WORD_TOLERANCE = 0.02


def word_mask(item: Any, tolerance: float = WORD_TOLERANCE) -> np.ndarray | None:
    """The tokens each frame of an utterance may go to, from its words' known starts: ``(T, N)`` bool.

    A frame inside word ``w`` (from its start to the next word's, ``tolerance`` seconds wider
    on each side) may go to that word's tokens and to the boundary tokens on either side of
    it (a pause, or a junction, is theirs); a frame before the first word to the boundary
    tokens before it. None where a start is not known (an export's cue: only its first word's).
    """
    from ..align.attention import HOP

    starts = np.asarray(item.starts, np.float64)
    if len(starts) == 0 or not np.isfinite(starts).all():
        return None
    t = np.arange(len(item.mels)) * HOP
    n = len(item.tokens)
    out = np.zeros((len(t), n), bool)
    out[t < starts[0] + tolerance, : item.first[0]] = True
    ends = np.append(starts[1:], np.inf)
    for w, (a, b) in enumerate(zip(starts, ends)):
        inside = (t >= a - tolerance) & (t < b + tolerance)
        out[inside, max(item.first[w] - 1, 0) : min(item.last[w] + 2, n)] = True
    return out


#: :func:`augment_mels`: the frequency warp's largest factor either way (1 ± it), the band
#: masks (how many, widest in bands) and the time masks (how many, widest in seconds).
WARP = 0.1
BAND_MASKS = (2, 8)
TIME_MASKS = (2, 0.1)


def augment_mels(mels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One utterance's normalised log-mel ``(T, n_mels)``, warped and masked for training.

    Three things a voice or a room changes and the text does not: the bands are read at
    ``1 ± WARP`` times their place (vocal tract length perturbation: a longer or shorter
    vocal tract moves every formant by one factor, and eSpeak's voices span less of that
    than people do), then :data:`BAND_MASKS` runs of bands and :data:`TIME_MASKS` runs of
    frames are set to 0, the normalised mean (SpecAugment), so that no few bands or frames
    decide an alignment. The word starts stay where they were. Returns a new float32 array.
    """
    from ..align.attention import HOP

    x = np.asarray(mels, np.float32)
    t, m = x.shape
    alpha = 1.0 + rng.uniform(-WARP, WARP)
    src = np.clip(np.arange(m) * alpha, 0, m - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, m - 1)
    w = (src - lo).astype(np.float32)
    out = x[:, lo] * (1 - w) + x[:, hi] * w
    count, widest = BAND_MASKS
    for _ in range(count):
        width = int(rng.integers(0, widest + 1))
        a = int(rng.integers(0, m - width + 1))
        out[:, a : a + width] = 0.0
    count, seconds = TIME_MASKS
    widest = min(int(round(seconds / HOP)), t // 10)
    for _ in range(count):
        width = int(rng.integers(0, widest + 1))
        a = int(rng.integers(0, t - width + 1))
        out[a : a + width] = 0.0
    return out


def _tensors(
    batch: list[_Item], device: Any, prior: bool, words: bool = False, rng: np.random.Generator | None = None
) -> tuple[Any, ...]:
    """A batch as padded tensors; with ``rng`` each utterance's log-mel goes through :func:`augment_mels`."""
    import torch

    from ..align.attention import beta_binomial_prior

    t = max(len(it.mels) for it in batch)
    n = max(len(it.tokens) for it in batch)
    m = batch[0].mels.shape[1]
    mels = np.zeros((len(batch), t, m), np.float32)
    tokens = np.zeros((len(batch), n), np.int64)
    mask = np.zeros((len(batch), n), bool)
    log_prior = np.zeros((len(batch), t, n), np.float32) if prior else None
    allowed = np.zeros((len(batch), t, n), bool) if words else None
    for b, it in enumerate(batch):
        mels[b, : len(it.mels)] = it.mels if rng is None else augment_mels(it.mels, rng)
        tokens[b, : len(it.tokens)] = it.tokens
        mask[b, : len(it.tokens)] = True
        if log_prior is not None:
            log_prior[b, : len(it.mels), : len(it.tokens)] = beta_binomial_prior(len(it.mels), len(it.tokens))
        if allowed is not None:
            one = word_mask(it)
            allowed[b, : len(it.mels), : len(it.tokens)] = True if one is None else one
    frames = torch.tensor([len(it.mels) for it in batch], dtype=torch.long)
    count = torch.tensor([len(it.tokens) for it in batch], dtype=torch.long)
    as_t = torch.from_numpy
    return (
        as_t(tokens).to(device),
        as_t(mels).to(device),
        as_t(mask).to(device),
        None if log_prior is None else as_t(log_prior).to(device),
        count.to(device),
        frames.to(device),
        None if allowed is None else as_t(allowed).to(device),
    )


def _paths(model: Any, items: Sequence[Any]) -> list[np.ndarray]:
    from ..align.attention import hard_path, log_probs_of

    model.eval()
    return [hard_path(log_probs_of(model, it.tokens, it.mels.astype(np.float32))) for it in items]


def _errors(paths: list[np.ndarray], items: Sequence[Any], junction: float, lead: float = 0.0) -> np.ndarray:
    """Signed errors (s, found - true) of the word starts the paths give, read with ``junction`` and ``lead``."""
    from ..align.attention import Tokens, word_times

    errors = []
    for path, it in zip(paths, items):
        found, _ = word_times(path, Tokens(it.tokens, it.first, it.last), junction=junction, lead=lead)
        known = np.isfinite(it.starts)  # an export's cue: only its start
        errors.append(found[known] - it.starts[known])
    return np.concatenate(errors) if errors else np.zeros(0)


def _shares(err: np.ndarray) -> dict[str, float]:
    """Share of signed errors within each of :data:`TOLERANCES`."""
    return {str(tol): float(np.mean(np.abs(err) <= tol + 1e-9)) if len(err) else 0.0 for tol in TOLERANCES}


def _within(paths: list[np.ndarray], items: Sequence[Any], junction: float, lead: float = 0.0) -> dict[str, float]:
    return _shares(_errors(paths, items, junction, lead))


def validate(model: Any, items: Sequence[Any], *, junction: float | None = None) -> dict[str, float]:
    """Share of word starts found within each of :data:`TOLERANCES` seconds, over ``items``.

    ``items`` have ``mels`` (normalised log-mel), ``tokens``, ``first`` and ``last`` (each
    word's first and last token) and ``starts`` (true word starts, seconds). Paths are read
    with ``junction`` (default: the model's, :attr:`~mmalign.align.attention.AttentionAligner.junction`)
    and the model's :attr:`~mmalign.align.attention.AttentionAligner.lead`.
    """
    return _within(_paths(model, items), items, model.junction if junction is None else junction, model.lead)


#: The largest lead (s) :func:`calibrate` takes off the word starts, either way.
MAX_LEAD = 0.5

_JUNCTIONS = np.arange(0.0, 0.1001, 0.0025)  # seconds: the grid calibrate searches


def _fit_junction(paths: list[np.ndarray], items: Sequence[Any]) -> tuple[float, float]:
    """The junction of the grid with the least median absolute error of the starts of words
    after a boundary token: ``(junction, error)``."""
    from ..align.attention import HOP

    lo, hi, truth_next = [], [], []
    for path, it in zip(paths, items):
        n = int(path[-1]) + 1
        starts = np.searchsorted(path, np.arange(n), side="left")
        ends = np.searchsorted(path, np.arange(n), side="right")
        b = it.first[1:] - 1
        ok = (it.tokens[b] == 0) & (it.tokens[it.first[1:]] != 0) & (it.last[:-1] == b - 1)
        lo.append((starts[b][ok] - 0.5) * HOP)
        hi.append((ends[b][ok] - 0.5) * HOP)
        truth_next.append(it.starts[1:][ok])
    if not lo:
        return 0.0, float("nan")
    a, z, t = np.concatenate(lo), np.concatenate(hi), np.concatenate(truth_next)
    known = np.isfinite(t)
    a, z, t = a[known], z[known], t[known]
    if not len(t):
        return 0.0, float("nan")
    middle = (a + z) / 2
    errors = [float(np.median(np.abs(np.maximum(z - j, middle) - t))) for j in _JUNCTIONS]
    k = int(np.argmin(errors))
    return float(_JUNCTIONS[k]), errors[k]


def calibrate(model: Any, items: Sequence[Any]) -> dict[str, Any]:
    """Fit how the model's paths are read on held-out utterances and set it (``model.calibration``).

    The ``junction`` (0 to 0.1 s, in steps of 2.5 ms) whose word starts after a boundary
    token have the least median absolute error (see :mod:`mmalign.align.attention`,
    Junctions); then the ``lead``: the median error of all the word starts read with that
    junction (to 0.5 ms, at most :data:`MAX_LEAD` either way), taken off every start.

    Returns
    -------
    dict
        The calibration: ``junction``, ``lead`` and ``median_error`` (s, of the starts read
        with both), ``utterances``, and the share of word starts within each tolerance read
        so (``within``) and as the path has them (``within_raw``).
    """
    paths = _paths(model, items)
    junction, _ = _fit_junction(paths, items)
    signed = _errors(paths, items, junction)
    lead = round(float(np.median(signed)) * 2000) / 2000 if len(signed) else 0.0
    # a frame or two for a trained model; a model a few steps old can be a second off, and no
    # lead of a second is worth taking off (nor can its weights be loaded with it)
    lead = float(np.clip(lead, -MAX_LEAD, MAX_LEAD))
    err = _errors(paths, items, junction, lead)
    model.calibration = {
        "junction": junction,
        "lead": lead,
        "median_error": round(float(np.median(np.abs(err))), 5) if len(err) else float("nan"),
        "fitted_on": "synthetic validation"
        if all(np.isfinite(it.starts).all() for it in items)
        else "validation with exported cues",
        "utterances": len(items),
        "within": _shares(err),
        "within_raw": _within(paths, items, 0.0),
    }
    return model.calibration


def calibrate_aligner(
    model: Pathlike,
    data: Sequence[Pathlike],
    output: Pathlike | None = None,
    *,
    validation: float = 0.05,
    language: str | None = None,
) -> dict[str, Any]:
    """Fit the junction and lead of a weights file on the validation split of its data folders.

    The split is the one :func:`train_aligner` held out (same ``validation`` share, chosen
    by a hash of the utterance ids). The weights are written again, with the calibration in
    their metadata, to ``output`` (default: ``model`` itself).

    Returns
    -------
    dict
        The calibration (:func:`calibrate`).

    Raises
    ------
    InputError
        Unreadable weights or data.
    OutputError
        The weights cannot be written.
    """
    from safetensors import safe_open

    from ..align.attention import load_model, save_model

    net = load_model(model)
    with safe_open(os.fspath(model), framework="pt") as fh:
        meta = fh.metadata() or {}
    extra = json.loads(meta["mmalign.training"]) if "mmalign.training" in meta else None
    _, val = _split(_items(data, net.config.n_mels, net.config.n_tokens, language), validation)
    calibration = calibrate(net, val)
    save_model(net, model if output is None else output, extra=extra)
    return calibration


def evaluate_aligner(model: Pathlike, data: Sequence[Pathlike], *, language: str | None = None) -> dict[str, Any]:
    """Score a weights file on every utterance of data folders (none held out, nothing fitted).

    Word starts are read with the weights' own junction and lead (an export's cues count by their
    starts): for a test set the model was neither trained nor chosen on, e.g.
    :func:`mmalign.train.make_data` with another seed than its training data's.

    Returns
    -------
    dict
        ``utterances``, ``words`` (starts scored), ``within`` (the share within each of
        :data:`TOLERANCES`) and ``median_error`` (s).

    Raises
    ------
    InputError
        Unreadable weights or data.
    """
    from ..align.attention import load_model

    net = load_model(model)
    items = _items(data, net.config.n_mels, net.config.n_tokens, language)
    err = _errors(_paths(net, items), items, net.junction, net.lead)
    return {
        "utterances": len(items),
        "words": int(len(err)),
        "within": _shares(err),
        "median_error": float(np.median(np.abs(err))) if len(err) else float("nan"),
    }


def best_epoch(history: Sequence[EpochReport]) -> int:
    """The epoch (1-based) of ``history`` with the most word starts within the finest
    tolerance, ties broken by the next ones, then by the earlier epoch."""
    return 1 + max(range(len(history)), key=lambda i: (tuple(history[i].within.values()), -i))


def train_aligner(
    data: Sequence[Pathlike],
    output: Pathlike,
    *,
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 1e-3,
    decay: float = 0.3,
    keep: str = "best",
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    config: Any = None,
    prior_epochs: int = 2,
    validation: float = 0.05,
    joined: float = 0.0,
    language: str | None = None,
    init: Pathlike | None = None,
    words: bool = False,
    augment: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> list[EpochReport]:
    """Train an attention aligner on data folders and write its weights.

    Parameters
    ----------
    data : sequence of path
        Folders made by :func:`mmalign.train.make_data`, and/or exports of cues from real
        media made with the aligner's front end (:data:`mmalign.train.data.EXPORT_OPTIONS`;
        see :func:`mmalign.train.data.load_utterances`).
    output : path
        The weights file (safetensors; :func:`mmalign.align.attention.load_model` reads it).
    epochs : int
        Passes over the training utterances (in all, counting those of a resumed run).
    batch_size : int
        Utterances per step.
    lr : float
        Adam's learning rate.
    decay : float
        Share (0 to <1) of the run's last steps over which the rate falls from ``lr``
        towards 0 along a half cosine (:func:`~mmalign.train.checkpoint.warmdown_lr`), so
        the weights settle instead of stopping wherever the last step left them.
    keep : str
        Which epoch's weights are written: ``best`` (the best validation score: word starts
        within the tolerances, the finest first) or ``last``.
    device : str
        ``cpu``, ``cuda`` or ``auto`` (CUDA where torch has it).
    seed : int
        Initialisation and batch order.
    resume : bool
        Go on from the checkpoint beside ``output`` (from the start when there is none).
    config : AlignerConfig, optional
        Model sizes (default :class:`~mmalign.align.attention.AlignerConfig`); a resumed
        run takes its checkpoint's.
    prior_epochs : int
        Epochs trained with the beta-binomial attention prior.
    validation : float
        Share of utterances held out (chosen by a hash of their id) for validation.
    joined : float
        Share (0–1) of the training utterances joined in pairs each epoch (other pairs each
        epoch), so that the model also sees pauses inside an utterance: the silence after one
        reading and before the next, taken by one word-boundary token. Validation utterances
        are never joined (an export's cues are: in pairs, see :func:`_split`).
    language : str, optional
        Language of the exports' cues (default: detected per source).
    words : bool
        Where every word's start is known (synthetic data: :func:`mmalign.train.make_data`),
        the loss sums only the alignments that keep each word's tokens inside its times,
        :data:`WORD_TOLERANCE` either side (:func:`word_mask`; the forward-sum loss plus
        minus the log of the probability that the alignment keeps to them). An export's
        cues, whose words' starts are not known, are trained as they are.
    augment : bool
        Warp and mask each training utterance's log-mel, anew each epoch
        (:func:`augment_mels`: vocal tract length perturbation and SpecAugment's masks), so
        that the model leans less on what eSpeak's voices have and people's do not.
        Validation utterances are never augmented.
    init : path, optional
        Weights to start from (e.g. :func:`mmalign.align.attention.default_model_path`, to
        fine-tune the shipped model on one's own speech); their config replaces ``config``.
        A resumed run starts from its checkpoint instead.
    progress : callable, optional
        ``progress(step, steps, loss)`` after each step (counted over the whole run).
    on_epoch : callable, optional
        Called with each :class:`EpochReport`.

    Returns
    -------
    list of EpochReport
        Every epoch of the run (those before a resume included). The weights written are
        those of the epoch ``best_epoch(history)`` (``keep="best"``) or of the last.

    Raises
    ------
    UsageError
        Bad numbers, an unknown device or one torch does not have.
    InputError
        Unreadable data or checkpoint.
    OutputError
        The weights or the checkpoint cannot be written.
    """
    import torch

    from ..align.attention import AlignerConfig, AttentionAligner, forward_sum_loss, load_model, save_model

    check_run(epochs, batch_size, lr)
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
        raise UsageError(f"{{decay}} must be a share from 0 to below 1, not {decay!r}", names=["decay"])
    if keep not in ("best", "last"):
        raise UsageError(f"{{keep}} must be best or last, not {keep!r}", names=["keep"])
    if isinstance(joined, bool) or not isinstance(joined, (int, float)) or not 0.0 <= joined <= 1.0:
        raise UsageError(f"{{joined}} must be a share between 0 and 1, not {joined!r}", names=["joined"])
    if isinstance(data, (str, os.PathLike)) or not data:
        raise UsageError("{data} must be a list of data folders", names=["data"])
    dev = torch_device(device)
    ckpt = checkpoint_path(output)
    meta: dict[str, Any] | None = None
    start_from = None
    if resume and ckpt.exists():
        config = AlignerConfig.from_json(checkpoint_meta(ckpt)["config"])
    elif init is not None:
        start_from = load_model(init)
        config = start_from.config
    config = config or AlignerConfig()
    items = _items(data, config.n_mels, config.n_tokens, language)
    train, val = _split(items, validation)
    if start_from is not None:
        model = start_from
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AttentionAligner(config)
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[EpochReport] = []
    start = 0
    best: dict[str, Any] = {}  # the best epoch's state dict (keep="best")
    best_calibration: dict[str, Any] = {}
    if resume and ckpt.exists():
        meta, best = load_checkpoint(ckpt, model, optimizer, dev)
        start = int(meta["epoch"])
        history = [EpochReport(**h) for h in meta["history"]]
        best_calibration = meta.get("best_calibration", {})
    per_epoch = _batch_count(len(train) - _pairs(len(train), joined), batch_size)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        model.train()
        losses = []
        for k, batch in enumerate(_batches(_joined(train, joined, seed, epoch), batch_size, seed, epoch)):
            tokens, mels, mask, log_prior, count, frames, allowed = _tensors(
                batch,
                dev,
                epoch < prior_epochs,
                words=words,
                rng=np.random.default_rng([seed, epoch, k, 2]) if augment else None,
            )
            loss = forward_sum_loss(model(tokens, mels, mask, log_prior), count, frames, allowed=allowed)
            for group in optimizer.param_groups:
                group["lr"] = warmdown_lr(lr, epoch * per_epoch + k, epochs * per_epoch, decay)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(epoch * per_epoch + k + 1, epochs * per_epoch, float(np.mean(losses)))
        cal = calibrate(model, val)
        report = EpochReport(
            epoch + 1,
            float(np.mean(losses)),
            cal["within"],
            time.perf_counter() - t0,
            cal["junction"],
            cal["within_raw"],
        )
        history.append(report)
        if keep == "best" and best_epoch(history) == epoch + 1:
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_calibration = dict(model.calibration)
        meta = {
            "epoch": epoch + 1,
            "config": config.to_json(),
            "history": [asdict(h) for h in history],
            "seed": seed,
            "lr": lr,
            "decay": decay,
            "batch_size": batch_size,
            "joined": joined,
            "best_calibration": best_calibration,
        }
        save_checkpoint(ckpt, model, optimizer, meta, best=best)
        if on_epoch is not None:
            on_epoch(report)
    kept = best_epoch(history) if keep == "best" and best else len(history)
    extra = {
        "epochs": epochs,
        "epoch_kept": kept,
        "seed": seed,
        "lr": lr,
        "decay": decay,
        "batch_size": batch_size,
        "joined": joined,
        "words": words,
        "augment": augment,
        **({} if init is None else {"init": os.path.basename(os.fspath(init))}),
        "utterances": {"train": len(train), "validation": len(val)},
        "validation_within": history[kept - 1].within if history else {},
    }
    if kept != len(history) or (start >= epochs and best_calibration):
        model.load_state_dict(best)
        model.calibration = best_calibration
    elif start >= epochs:  # resumed after the last epoch: no calibration made in this run
        calibrate(model, val)
    save_model(model, output, extra=extra)
    return history
