"""A small dual encoder over an export (CLIP-style): audio and text encoders, InfoNCE, retrieval.

    train_clip   export folders → weights (safetensors), a checkpoint each epoch, resume
    ClipReport   one epoch: loss, temperature, retrieval R@1 / R@5 on held-out sources
    retrieval    R@1 / R@5 of paired embeddings, a text said twice counting as found
    load_clip    the weights back, as a torch module with ``encode_audio`` / ``encode_text``

The data are the aligned samples of one or more exports (:class:`mmalign.data.AlignedDataset`;
the negatives of a matching-pairs export are left out: the other samples of a batch are
the negatives here). The audio input is the samples' ``audio.*`` features side by side,
the text input their ``text.*`` features: pooled vectors, or frame sequences
(``pool="none"``; the features of the modality's first hop). Validation holds out whole
sources (:func:`mmalign.data.split_by_source`), and batches come from
:class:`mmalign.data.ContrastiveBatches`: no batch holds two samples with one normalised
text, or two overlapping samples of one source, which InfoNCE would count as negatives.

Each encoder: standardisation (statistics of the training samples), a linear layer, a
residual 1-D convolution over the frames (width 5; a pooled vector is one frame), masked
mean and max pooling, a two-layer head, unit length. Loss: the symmetric cross-entropy of
the scaled cosine similarities (InfoNCE), the scale ``exp(s)`` learned from ``1 / 0.07``
and capped at 100, as in CLIP.

Determinism: the model is initialised from ``seed``, the split and the batches of epoch
``e`` come from ``(seed, e)``; nothing else is random, so on the CPU a run resumed from
its checkpoint (written atomically each epoch, see :mod:`mmalign.train.checkpoint`)
ends with the weights an uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
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
)

__all__ = ["ClipConfig", "ClipReport", "train_clip", "retrieval", "load_clip", "RECALLS"]

#: The retrieval cut-offs reported: R@1 and R@5.
RECALLS = (1, 5)
_META_KEY = "mmalign.clip"
_SUFFIXES = (".times", ".masked")


@dataclass(frozen=True)
class ClipConfig:
    """What the model reads and its sizes (stored with the weights)."""

    audio_features: tuple[str, ...]
    text_features: tuple[str, ...]
    audio_dim: int
    text_dim: int
    hidden: int = 256
    embed: int = 128

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClipConfig:
        doc = json.loads(text)
        doc["audio_features"] = tuple(doc["audio_features"])
        doc["text_features"] = tuple(doc["text_features"])
        return cls(**doc)


@dataclass(frozen=True)
class ClipReport:
    """One epoch of :func:`train_clip`.

    Attributes
    ----------
    epoch : int
        1-based.
    loss : float
        Mean InfoNCE loss over the epoch's batches.
    temperature : float
        ``1 / scale`` at the end of the epoch.
    recall : dict of str to float
        ``audio_text_r1``, ``audio_text_r5``, ``text_audio_r1``, ``text_audio_r5`` (0–1)
        on the held-out sources.
    chance : float
        R@1 of a random ranking there (a text said several times is more often found).
    validation : int
        Held-out samples.
    seconds : float
    """

    epoch: int
    loss: float
    temperature: float
    recall: dict[str, float]
    chance: float
    validation: int
    seconds: float


# ---------------------------------------------------------------- data


class _Samples:
    """The aligned samples of one or more exports, their records (sources kept apart per export)."""

    def __init__(self, exports: Sequence[Pathlike]) -> None:
        from ..data import AlignedDataset

        self.sets = [AlignedDataset(e) for e in exports]
        self.records: list[Any] = []
        self.where: list[tuple[int, int]] = []
        for k, ds in enumerate(self.sets):
            for i, rec in enumerate(ds.records):
                if rec.extra.get("label", 1) == 0:
                    continue
                source = rec.source if len(self.sets) == 1 else f"{k}:{rec.source}"
                self.records.append(replace(rec, source=source))
                self.where.append((k, i))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, i = self.where[index]
        return self.sets[k][i]


def _features(samples: _Samples, modality: str) -> tuple[str, ...]:
    """The features of a modality every sample has (frame sequences: those of the first one's hop)."""
    common: set[str] | None = None
    for rec in samples.records:
        names = {n for n in rec.tensors if n.startswith(modality + ".") and not n.endswith(_SUFFIXES)}
        common = names if common is None else common & names
    chosen = sorted(common or ())
    if not chosen:
        raise InputError(f"no {modality} feature that every sample of the export has; export with some")
    info = samples.sets[0].info.get("features", {}).get("features", {})
    hops = {n: info.get(n, {}).get("hop") for n in chosen}
    if len(samples.records[0].tensors[chosen[0]]) == 2:  # frame sequences: one clock
        chosen = [n for n in chosen if hops[n] == hops[chosen[0]]]
    return tuple(chosen)


def _stack(items: Sequence[dict[str, Any]], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A batch of one modality: ``(B, L, D)`` float32 (features side by side) and its ``(B, L)`` mask."""
    seqs = []
    for item in items:
        parts = [np.asarray(item[n], np.float32) for n in names]
        if parts[0].ndim == 1:
            parts = [p[None, :] for p in parts]
        n = min(len(p) for p in parts)
        seqs.append(np.concatenate([p[:n].reshape(n, -1) for p in parts], axis=1))
    width = max(1, max(len(s) for s in seqs))
    x = np.zeros((len(seqs), width, seqs[0].shape[1]), np.float32)
    mask = np.zeros((len(seqs), width), bool)
    for b, s in enumerate(seqs):
        x[b, : len(s)] = s
        mask[b, : len(s)] = True
    return x, mask


def _statistics(samples: _Samples, indices: Sequence[int], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation over the frames of up to 2,000 training samples."""
    pick = np.asarray(indices)[np.linspace(0, len(indices) - 1, min(len(indices), 2000)).astype(int)]
    x, mask = _stack([samples[int(i)] for i in pick], names)
    frames = x[mask] if mask.any() else x.reshape(-1, x.shape[-1])
    std = frames.std(0)
    return frames.mean(0).astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


# ---------------------------------------------------------------- model (torch, built on demand)


def _model(config: ClipConfig) -> Any:
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(dim))
            self.register_buffer("std", torch.ones(dim))
            self.inp = nn.Linear(dim, config.hidden)
            self.conv = nn.Conv1d(config.hidden, config.hidden, 5, padding=2)
            self.head = nn.Sequential(
                nn.Linear(2 * config.hidden, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.embed)
            )

        def forward(self, x: Any, mask: Any) -> Any:
            m = mask.unsqueeze(-1).to(x.dtype)
            h = nn.functional.gelu(self.inp((x - self.mean) / self.std)) * m
            h = (h + nn.functional.gelu(self.conv(h.transpose(1, 2)).transpose(1, 2))) * m
            mean = h.sum(1) / m.sum(1).clamp(min=1.0)
            peak = h.masked_fill(~mask.unsqueeze(-1), -1e4).max(1).values * (m.sum(1) > 0)
            return nn.functional.normalize(self.head(torch.cat([mean, peak], 1)), dim=-1)

    class DualEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.audio = Encoder(config.audio_dim)
            self.text = Encoder(config.text_dim)
            self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

        def encode_audio(self, x: Any, mask: Any) -> Any:
            """Unit-length audio embeddings ``(B, embed)`` of ``(B, L, audio_dim)`` frames and their mask."""
            return self.audio(x, mask)

        def encode_text(self, x: Any, mask: Any) -> Any:
            """Unit-length text embeddings ``(B, embed)``."""
            return self.text(x, mask)

        def scale(self) -> Any:
            return self.log_scale.clamp(max=math.log(100.0)).exp()

        def loss(self, a: Any, t: Any) -> Any:
            logits = self.scale() * a @ t.T
            target = torch.arange(len(a), device=a.device)
            return (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)) / 2

    return DualEncoder()


def retrieval(
    audio: np.ndarray, text: np.ndarray, texts: Sequence[str | None], ks: Sequence[int] = RECALLS
) -> tuple[dict[str, float], float]:
    """R@k both ways for paired embeddings (row ``i`` of ``audio`` goes with row ``i`` of ``text``).

    A query is found at rank ``r`` when the ``r``-th best match carries its normalised text
    (:func:`mmalign.export.normalize_text`): another saying of the same text is as right.

    Returns
    -------
    recall : dict of str to float
        ``audio_text_r<k>`` and ``text_audio_r<k>`` for each ``k``.
    chance : float
        R@1 of a random ranking.
    """
    from ..export.pairs import normalize_text

    codes: dict[str, int] = {}
    label = np.array([codes.setdefault(normalize_text(t), len(codes)) for t in texts])
    same = label[:, None] == label[None, :]
    sims = np.asarray(audio, np.float64) @ np.asarray(text, np.float64).T
    out: dict[str, float] = {}
    for name, s in (("audio_text", sims), ("text_audio", sims.T)):
        order = np.argsort(-s, axis=1, kind="stable")
        hit = np.take_along_axis(same, order, axis=1)
        first = np.where(hit.any(1), hit.argmax(1), len(label))
        for k in ks:
            out[f"{name}_r{k}"] = float(np.mean(first < k)) if len(label) else 0.0
    chance = float(same.mean(1).mean()) if len(label) else 0.0
    return out, chance


def _embed(model: Any, samples: _Samples, indices: Sequence[int], config: ClipConfig, device: Any) -> Any:
    import torch

    audio, text = [], []
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(indices), 256):
            items = [samples[int(i)] for i in indices[lo : lo + 256]]
            a = [torch.from_numpy(v).to(device) for v in _stack(items, config.audio_features)]
            t = [torch.from_numpy(v).to(device) for v in _stack(items, config.text_features)]
            audio.append(model.encode_audio(*a).cpu().numpy())
            text.append(model.encode_text(*t).cpu().numpy())
    return np.concatenate(audio), np.concatenate(text)


def _check(epochs: int, batch_size: int, lr: float, validation: float, exports: Sequence[Pathlike]) -> None:
    check_run(epochs, batch_size, lr, least_batch=2)
    if not (0 < validation < 1):
        raise UsageError(f"{{validation}} must lie between 0 and 1, not {validation!r}", names=["validation"])
    if isinstance(exports, (str, Path)) or not exports:
        raise UsageError("{exports} must be a list of export folders", names=["exports"])


def train_clip(
    exports: Sequence[Pathlike],
    output: Pathlike,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    validation: float = 0.1,
    hidden: int = 256,
    embed: int = 128,
    progress: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[ClipReport], None] | None = None,
) -> list[ClipReport]:
    """Train a dual encoder (audio, text) on the aligned samples of exports; write its weights.

    Parameters
    ----------
    exports : sequence of path
        Folders written by :func:`mmalign.export.export_sources` (``mmalign export``),
        with audio and text features, pooled or as frame sequences.
    output : path
        The weights file (safetensors; :func:`load_clip` reads it). The checkpoint is
        ``MODEL.checkpoint.safetensors`` beside it.
    epochs : int
        Passes over the training samples, in all (a resumed run counts those before).
    batch_size : int
        Samples per step: each one's negatives are the others of its batch.
    lr : float
        Adam's learning rate.
    device : str
        ``cpu``, ``cuda`` or ``auto``.
    seed : int
        Initialisation, split and batches.
    resume : bool
        Go on from the checkpoint (from the start when there is none).
    validation : float
        Share of the samples held out, by whole sources.
    hidden, embed : int
        Width of the encoders and of the shared embedding (a resumed run takes its checkpoint's).
    progress : callable, optional
        ``progress(step, steps, loss)`` after each step (counted over the whole run).
    on_epoch : callable, optional
        Called with each :class:`ClipReport`.

    Returns
    -------
    list of ClipReport
        Every epoch of the run (those before a resume included).

    Raises
    ------
    UsageError
        Bad numbers, an unknown device, exports with fewer than two sources.
    InputError
        An export unreadable, without audio or text features; an unreadable checkpoint.
    OutputError
        The weights or the checkpoint cannot be written.
    """
    import torch

    from ..data import ContrastiveBatches, split_by_source

    _check(epochs, batch_size, lr, validation, exports)
    dev = torch_device(device)
    samples = _Samples(exports)
    split = split_by_source(samples.records, validation, seed=seed)
    ckpt = checkpoint_path(output)
    resuming = resume and ckpt.exists()
    if resuming:
        config = ClipConfig.from_json(checkpoint_meta(ckpt)["config"])
    else:
        audio_names, text_names = _features(samples, "audio"), _features(samples, "text")
        first = samples[0]
        config = ClipConfig(
            audio_names,
            text_names,
            _stack([first], audio_names)[0].shape[-1],
            _stack([first], text_names)[0].shape[-1],
            hidden,
            embed,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model(config)
    if not resuming:
        for enc, names in ((model.audio, config.audio_features), (model.text, config.text_features)):
            mean, std = _statistics(samples, split.train, names)
            enc.mean.copy_(torch.from_numpy(mean))
            enc.std.copy_(torch.from_numpy(std))
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[ClipReport] = []
    start = 0
    if resuming:
        meta, _ = load_checkpoint(ckpt, model, optimizer, dev)
        start = int(meta["epoch"])
        history = [ClipReport(**h) for h in meta["history"]]
    sampler = ContrastiveBatches(samples.records, batch_size, indices=split.train, seed=seed, drop_last=True)
    if not len(sampler):
        raise UsageError(
            f"no full batch of {batch_size} samples without a repeated text: choose a smaller {{batch_size}}",
            names=["batch_size"],
        )
    held = split.validation
    texts = [samples.records[i].text for i in held]
    per_epoch = len(sampler)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        model.train()
        sampler.set_epoch(epoch)
        losses = []
        for k, batch in enumerate(sampler):
            items = [samples[i] for i in batch]
            a = [torch.from_numpy(v).to(dev) for v in _stack(items, config.audio_features)]
            t = [torch.from_numpy(v).to(dev) for v in _stack(items, config.text_features)]
            loss = model.loss(model.encode_audio(*a), model.encode_text(*t))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(epoch * per_epoch + k + 1, epochs * per_epoch, float(np.mean(losses)))
        audio_emb, text_emb = _embed(model, samples, held, config, dev)
        recall, chance = retrieval(audio_emb, text_emb, texts)
        report = ClipReport(
            epoch + 1,
            float(np.mean(losses)),
            float(1.0 / model.scale().item()),
            recall,
            chance,
            len(held),
            time.perf_counter() - t0,
        )
        history.append(report)
        meta = {"epoch": epoch + 1, "config": config.to_json(), "history": [asdict(h) for h in history], "seed": seed}
        save_checkpoint(ckpt, model, optimizer, meta)
        if on_epoch is not None:
            on_epoch(report)
    extra = {
        "epochs": epochs,
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "exports": [str(e) for e in exports],
        "samples": {"train": len(split.train), "validation": len(held)},
        "validation_sources": split.validation_sources,
        "recall": history[-1].recall if history else {},
    }
    _save(model, output, config, extra)
    return history


def _save(model: Any, path: Pathlike, config: ClipConfig, extra: dict[str, Any]) -> None:
    import torch
    from safetensors.torch import save

    from ..fileio import atomic_write

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {_META_KEY: config.to_json(), "mmalign.training": json.dumps(extra, sort_keys=True), "format": "pt"}
    atomic_write(path, save(tensors, metadata=meta))


def load_clip(path: Pathlike, *, device: str = "cpu") -> Any:
    """Read weights written by :func:`train_clip`: a torch module with ``encode_audio(x, mask)``,
    ``encode_text(x, mask)`` and ``config`` (:class:`ClipConfig`).

    Raises
    ------
    InputError
        Missing, not safetensors, or not a dual encoder's weights.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        config = ClipConfig.from_json(meta[_META_KEY])
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a dual encoder's weights ({exc})") from None
    model = _model(config)
    model.load_state_dict(tensors)
    return model.to(torch_device(device)).eval()
