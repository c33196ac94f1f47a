"""Trainable fusion modules (torch), for the training side of an ``mmalign export``.

This module imports torch at import time; :mod:`mmalign.fusion` forwards its names
lazily (``from mmalign.fusion import AttentionFusion`` works and only then imports torch).

Conventions shared by all modules
---------------------------------
* ``input_dims`` is a dict ``{name: D_m}`` or a list ``[D_0, D_1, ...]`` (then the
  modalities are named ``"0"``, ``"1"``, ...).  ``forward`` takes the modalities as a dict
  with exactly those names or as a list in that order.
* A modality tensor is ``(..., D_m)``: any leading shape -- ``(B,)`` for pooled vectors,
  ``(B, T)`` for frame sequences -- the same for every modality.  The output keeps it.
* Masks are boolean and **True where there is data**: ``present`` ``(..., M)`` says which
  modalities a sample has (a missing one gets weight 0 in the weighted fusions), and the
  frame masks of :class:`CrossModalAttention` ``(B, T)`` say which frames are real rather
  than padding.  (This is the opposite of ``nn.MultiheadAttention``'s ``key_padding_mask``.)
* Everything a module needs is a registered parameter or buffer, so ``.to(device)`` and
  ``.to(dtype=torch.float64)`` move all of it; no device is hard-coded.
* ``seed``: when given, the parameters are initialised from that seed without touching
  torch's global RNG; when None they come from the global RNG (``torch.manual_seed``).
  Either way the same seed gives the same parameters for modules built on the CPU.

Modality names may contain dots (``"audio.logmel"``): per-modality submodules are kept in
lists in the module's modality order, never keyed by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .errors import UsageError
from .fusion import count_sketch

__all__ = [
    "AttentionFusion",
    "CompactBilinearPooling",
    "ConcatFusion",
    "CrossModalAttention",
    "LowRankBilinearFusion",
    "WeightedSumFusion",
]


# ---------------------------------------------------------------- helpers


def _parse_dims(input_dims, what: str) -> tuple[list[str], list[int]]:
    if isinstance(input_dims, Mapping):
        names = list(input_dims)
        dims = list(input_dims.values())
        if not all(isinstance(n, str) for n in names):
            raise UsageError(f"{what}: modality names must be strings")
    elif isinstance(input_dims, Sequence) and not isinstance(input_dims, str):
        dims = list(input_dims)
        names = [str(i) for i in range(len(dims))]
    else:
        raise UsageError(f"{what}: input_dims must be a dict {{name: width}} or a list of widths")
    if not dims:
        raise UsageError(f"{what}: no modalities given")
    for name, d in zip(names, dims):
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise UsageError(f"{what}: width of modality {name!r} must be a positive integer, got {d!r}")
    return names, dims


def _positive(value, label: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{what}: {label} must be a positive integer, got {value!r}")
    return value


@contextlib.contextmanager
def _seeded(seed):
    """Initialise from ``seed`` (if not None) with the CPU RNG forked: the global state is restored."""
    if seed is None:
        yield
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer or None, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def _gather(inputs, names: list[str], dims: list[int], what: str) -> list[torch.Tensor]:
    """``inputs`` (dict or list) as a list of tensors in module order, with checked shapes."""
    if isinstance(inputs, Mapping):
        if set(inputs) != set(names):
            raise UsageError(f"{what}: expected modalities {sorted(names)}, got {sorted(map(str, inputs))}")
        tensors = [inputs[n] for n in names]
    elif isinstance(inputs, (list, tuple)):
        if len(inputs) != len(names):
            raise UsageError(f"{what}: expected {len(names)} modalities, got {len(inputs)}")
        tensors = list(inputs)
    else:
        raise UsageError(f"{what}: inputs must be a dict or a list of tensors, got {type(inputs).__name__}")
    lead = None
    for name, d, t in zip(names, dims, tensors):
        if not isinstance(t, torch.Tensor):
            raise UsageError(f"{what}: modality {name!r} is not a tensor")
        if t.ndim < 1 or t.shape[-1] != d:
            raise UsageError(f"{what}: modality {name!r} must be (..., {d}), got {tuple(t.shape)}")
        if lead is None:
            lead = t.shape[:-1]
        elif t.shape[:-1] != lead:
            raise UsageError(
                f"{what}: modalities have different leading shapes {tuple(lead)} and {tuple(t.shape[:-1])} ({name!r})"
            )
    return tensors


def _check_present(present, lead, m: int, what: str):
    if present is None:
        return None
    if not isinstance(present, torch.Tensor) or present.dtype != torch.bool:
        raise UsageError(f"{what}: present must be a bool tensor (..., {m})")
    if present.shape != (*lead, m):
        raise UsageError(f"{what}: present must have shape {(*lead, m)}, got {tuple(present.shape)}")
    return present


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` restricted to ``mask`` (True = keep); all-masked rows give zeros."""
    if mask is None:
        return torch.softmax(scores, dim=dim)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=dim) * mask.to(scores.dtype)


def _prepend_one(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x.new_ones(*x.shape[:-1], 1), x], dim=-1)


def _dims_repr(names, dims) -> str:
    return "{" + ", ".join(f"{n!r}: {d}" for n, d in zip(names, dims)) + "}"


# ---------------------------------------------------------------- modules


class ConcatFusion(nn.Module):
    """Concatenation of the modalities, optionally followed by a linear layer.

    Parameters
    ----------
    input_dims : dict[str, int] or list of int
        Width ``D_m`` of each modality, in concatenation order.
    out_dim : int, optional
        If given, a ``Linear(sum(D_m), out_dim)`` follows the concatenation; if None the
        module has no parameters.
    seed : int, optional
        Seed of the linear layer's initialisation (see the module documentation).

    Shapes
    ------
    inputs : dict or list of ``(..., D_m)`` tensors -> ``(..., out_dim or sum(D_m))``.
    """

    def __init__(self, input_dims, out_dim: int | None = None, *, seed: int | None = None):
        super().__init__()
        self.names, self.dims = _parse_dims(input_dims, "ConcatFusion")
        self.out_dim = sum(self.dims) if out_dim is None else _positive(out_dim, "out_dim", "ConcatFusion")
        with _seeded(seed):
            self.linear = None if out_dim is None else nn.Linear(sum(self.dims), self.out_dim)

    def forward(self, inputs) -> torch.Tensor:
        z = torch.cat(_gather(inputs, self.names, self.dims, "ConcatFusion"), dim=-1)
        return z if self.linear is None else self.linear(z)

    def extra_repr(self) -> str:
        return f"input_dims={_dims_repr(self.names, self.dims)}, out_dim={self.out_dim}"


class _Projected(nn.Module):
    """Base: one ``Linear(D_m, dim)`` per modality."""

    def __init__(self, input_dims, dim: int, what: str):
        super().__init__()
        self.names, self.dims = _parse_dims(input_dims, what)
        self.dim = _positive(dim, "dim", what)
        self.projections = nn.ModuleList(nn.Linear(d, self.dim) for d in self.dims)

    def _project(self, inputs, what: str) -> torch.Tensor:
        """Projected modalities stacked: ``(..., M, dim)``."""
        tensors = _gather(inputs, self.names, self.dims, what)
        return torch.stack([p(t) for p, t in zip(self.projections, tensors)], dim=-2)

    def extra_repr(self) -> str:
        return f"input_dims={_dims_repr(self.names, self.dims)}, dim={self.dim}"


class WeightedSumFusion(_Projected):
    """Weighted sum of linearly projected modalities, with learned softmax weights.

    ``out = sum_m w_m * Linear_m(x_m)`` with ``w = softmax(logits)``, one learned logit per
    modality (initially equal weights).  The weights are the same for every sample, except
    that a sample's missing modalities (``present`` False) get weight 0 and the others are
    renormalised; a sample with no modality present fuses to zeros.

    Parameters
    ----------
    input_dims : dict[str, int] or list of int
        Width ``D_m`` of each modality.
    dim : int
        Common (output) width.
    seed : int, optional
        Seed of the initialisation (see the module documentation).

    Shapes
    ------
    inputs : dict or list of ``(..., D_m)`` tensors; present : ``(..., M)`` bool, optional
        -> ``(..., dim)``.
    """

    def __init__(self, input_dims, dim: int, *, seed: int | None = None):
        with _seeded(seed):
            super().__init__(input_dims, dim, "WeightedSumFusion")
            self.logits = nn.Parameter(torch.zeros(len(self.dims)))

    @property
    def weights(self) -> torch.Tensor:
        """The modality weights ``softmax(logits)``, shape ``(M,)``."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, inputs, present: torch.Tensor | None = None) -> torch.Tensor:
        h = self._project(inputs, "WeightedSumFusion")  # (..., M, dim)
        present = _check_present(present, h.shape[:-2], len(self.dims), "WeightedSumFusion")
        logits = self.logits.expand(h.shape[:-1])
        w = _masked_softmax(logits, present)
        return (w.unsqueeze(-1) * h).sum(dim=-2)


class AttentionFusion(_Projected):
    """Softmax-gated mixture of projected modalities, the gate computed from the modalities.

    Each modality is projected, ``h_m = Linear_m(x_m)``; a shared scorer gives it a score
    ``s_m = v . tanh(W h_m + b)`` (additive attention); the gate ``a = softmax(s)`` over the
    modalities of each sample weighs them: ``out = sum_m a_m h_m``.  Missing modalities
    (``present`` False) are left out of the softmax; a sample with none fuses to zeros.

    Parameters
    ----------
    input_dims : dict[str, int] or list of int
        Width ``D_m`` of each modality.
    dim : int
        Common (output) width.
    hidden : int, optional
        Width of the scorer (default ``dim``).
    seed : int, optional
        Seed of the initialisation (see the module documentation).

    Shapes
    ------
    inputs : dict or list of ``(..., D_m)`` tensors; present : ``(..., M)`` bool, optional
        -> ``(..., dim)``, and the gate ``(..., M)`` with ``return_weights=True``.
    """

    def __init__(self, input_dims, dim: int, hidden: int | None = None, *, seed: int | None = None):
        with _seeded(seed):
            super().__init__(input_dims, dim, "AttentionFusion")
            self.hidden = self.dim if hidden is None else _positive(hidden, "hidden", "AttentionFusion")
            self.score = nn.Sequential(
                nn.Linear(self.dim, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1, bias=False)
            )

    def forward(self, inputs, present: torch.Tensor | None = None, return_weights: bool = False):
        h = self._project(inputs, "AttentionFusion")  # (..., M, dim)
        present = _check_present(present, h.shape[:-2], len(self.dims), "AttentionFusion")
        gate = _masked_softmax(self.score(h).squeeze(-1), present)  # (..., M)
        out = (gate.unsqueeze(-1) * h).sum(dim=-2)
        return (out, gate) if return_weights else out


class CrossModalAttention(nn.Module):
    """Multi-head attention with queries from one modality's frames over another's frames.

    ``q = Linear(query)``, ``k = Linear(key)``, ``v = Linear(key)`` (each to ``dim``, split
    into ``num_heads`` heads), scaled dot-product attention, then an output ``Linear(dim,
    dim)``.  Padding frames of the key sequence (``key_mask`` False) get no attention;
    padding query frames (``query_mask`` False) and queries with no real key frame output
    zeros.

    Parameters
    ----------
    query_dim : int
        Width of the query modality's frames.
    key_dim : int
        Width of the attended (key/value) modality's frames.
    dim : int
        Attention and output width; a multiple of ``num_heads``.
    num_heads : int
        Number of heads.
    dropout : float
        Dropout on the attention weights (training only).
    seed : int, optional
        Seed of the initialisation (see the module documentation).

    Shapes
    ------
    query : ``(B, Tq, query_dim)``; key : ``(B, Tk, key_dim)``;
    query_mask : ``(B, Tq)`` bool, optional; key_mask : ``(B, Tk)`` bool, optional
        -> ``(B, Tq, dim)``, and the attention weights ``(B, num_heads, Tq, Tk)`` with
        ``return_weights=True``.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        dim: int,
        num_heads: int = 1,
        *,
        dropout: float = 0.0,
        seed: int | None = None,
    ):
        super().__init__()
        what = "CrossModalAttention"
        self.query_dim = _positive(query_dim, "query_dim", what)
        self.key_dim = _positive(key_dim, "key_dim", what)
        self.dim = _positive(dim, "dim", what)
        self.num_heads = _positive(num_heads, "num_heads", what)
        if dim % num_heads:
            raise UsageError(f"{what}: dim ({dim}) must be a multiple of num_heads ({num_heads})")
        if not 0.0 <= dropout < 1.0:
            raise UsageError(f"{what}: dropout must be in [0, 1), got {dropout!r}")
        with _seeded(seed):
            self.q_proj = nn.Linear(query_dim, dim)
            self.k_proj = nn.Linear(key_dim, dim)
            self.v_proj = nn.Linear(key_dim, dim)
            self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.dim // self.num_heads).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ):
        what = "CrossModalAttention"
        for label, t, d in (("query", query, self.query_dim), ("key", key, self.key_dim)):
            if not isinstance(t, torch.Tensor) or t.ndim != 3 or t.shape[-1] != d:
                raise UsageError(
                    f"{what}: {label} must be (B, T, {d}), got "
                    f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}"
                )
        if query.shape[0] != key.shape[0]:
            raise UsageError(f"{what}: query and key batch sizes differ ({query.shape[0]} and {key.shape[0]})")
        for label, m, t in (("query_mask", query_mask, query), ("key_mask", key_mask, key)):
            if m is not None and (not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.shape != t.shape[:2]):
                raise UsageError(f"{what}: {label} must be a bool tensor of shape {tuple(t.shape[:2])}")
        q = self._heads(self.q_proj(query))  # (B, H, Tq, dh)
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(key))
        scores = q @ k.transpose(-2, -1) / (self.dim // self.num_heads) ** 0.5  # (B, H, Tq, Tk)
        mask = None if key_mask is None else key_mask[:, None, None, :].expand(scores.shape)
        weights = _masked_softmax(scores, mask)
        out = self.dropout(weights) @ v  # (B, H, Tq, dh)
        out = self.out_proj(out.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.dim))
        keep = None
        if key_mask is not None:
            keep = key_mask.any(dim=1)[:, None].expand(query.shape[:2])
        if query_mask is not None:
            keep = query_mask if keep is None else keep & query_mask
        if keep is not None:
            out = out * keep.unsqueeze(-1).to(out.dtype)
        return (out, weights) if return_weights else out

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, dim={self.dim}, num_heads={self.num_heads}"


class LowRankBilinearFusion(nn.Module):
    """Low-rank multimodal (bilinear for two modalities) fusion.

    The full multilinear map ``W (x_1 ⊗ x_2 ⊗ ...)`` is factorised into ``rank`` products
    of per-modality linear maps (low-rank multimodal fusion, LMF; with two modalities and
    ``bias=False`` it is multimodal low-rank bilinear pooling, MLB)::

        out = sum_r w_r * prod_m (x_m' @ F_m[r]) + b

    where ``x_m' = [1, x_m]`` with ``bias=True`` (so the product keeps every lower-order and
    linear term) or ``x_m`` without, ``F_m[r]`` is ``(D_m [+1], dim)``, ``w`` are learned
    rank weights and ``b`` an output bias.

    Parameters
    ----------
    input_dims : dict[str, int] or list of int
        Width ``D_m`` of each modality (two or more).
    dim : int
        Output width.
    rank : int
        Rank ``r`` of the factorisation.
    bias : bool
        Prepend a constant 1 to each modality (LMF); False gives the pure multilinear product.
    seed : int, optional
        Seed of the initialisation (see the module documentation).

    Shapes
    ------
    inputs : dict or list of ``(..., D_m)`` tensors -> ``(..., dim)``.
    """

    def __init__(self, input_dims, dim: int, rank: int = 4, *, bias: bool = True, seed: int | None = None):
        super().__init__()
        what = "LowRankBilinearFusion"
        self.names, self.dims = _parse_dims(input_dims, what)
        if len(self.dims) < 2:
            raise UsageError(f"{what} needs at least two modalities")
        self.dim = _positive(dim, "dim", what)
        self.rank = _positive(rank, "rank", what)
        self.bias = bool(bias)
        extra = 1 if self.bias else 0
        with _seeded(seed):
            self.factors = nn.ParameterList()
            for d in self.dims:
                f = torch.empty(self.rank, d + extra, self.dim)
                for r in range(self.rank):
                    nn.init.xavier_normal_(f[r])
                self.factors.append(nn.Parameter(f))
            self.rank_weights = nn.Parameter(torch.empty(self.rank))
            nn.init.normal_(self.rank_weights, 0.0, self.rank**-0.5)
            self.out_bias = nn.Parameter(torch.zeros(self.dim))

    def forward(self, inputs) -> torch.Tensor:
        tensors = _gather(inputs, self.names, self.dims, "LowRankBilinearFusion")
        z = None
        for x, f in zip(tensors, self.factors):
            x = _prepend_one(x) if self.bias else x
            zm = torch.einsum("...d,rdo->...ro", x, f)
            z = zm if z is None else z * zm
        return torch.einsum("...ro,r->...o", z, self.rank_weights) + self.out_bias

    def extra_repr(self) -> str:
        return f"input_dims={_dims_repr(self.names, self.dims)}, dim={self.dim}, rank={self.rank}, bias={self.bias}"


class CompactBilinearPooling(nn.Module):
    """Compact bilinear pooling: count sketch of each modality, product in the FFT domain.

    The torch counterpart of :func:`mmalign.fusion.compact_bilinear`: the sketches (hash
    buckets and signs, from :func:`mmalign.fusion.count_sketch` with the same ``seed`` and
    modality names) are fixed buffers, so for equal names, seed and ``bias`` both give the
    same result (up to float rounding).  No trainable parameters; differentiable in its
    inputs.

    Parameters
    ----------
    input_dims : dict[str, int] or list of int
        Width ``D_m`` of each modality (two or more; a list names them ``"0"``, ``"1"``, ...).
    dim : int
        Output width.
    seed : int >= 0
        Seed of the sketches.
    bias : bool
        Prepend a constant 1 to each modality before sketching (keeps the linear terms).

    Shapes
    ------
    inputs : dict or list of ``(..., D_m)`` tensors -> ``(..., dim)``.
    """

    def __init__(self, input_dims, dim: int, *, seed: int = 0, bias: bool = False):
        super().__init__()
        what = "CompactBilinearPooling"
        self.names, self.dims = _parse_dims(input_dims, what)
        if len(self.dims) < 2:
            raise UsageError(f"{what} needs at least two modalities")
        self.dim = _positive(dim, "dim", what)
        self.seed = seed
        self.bias = bool(bias)
        for i, (name, d) in enumerate(zip(self.names, self.dims)):
            buckets, signs = count_sketch(d + self.bias, self.dim, seed=seed, name=name)
            self.register_buffer(f"buckets_{i}", torch.tensor(buckets, dtype=torch.long))
            self.register_buffer(f"signs_{i}", torch.tensor(signs, dtype=torch.get_default_dtype()))

    def forward(self, inputs) -> torch.Tensor:
        tensors = _gather(inputs, self.names, self.dims, "CompactBilinearPooling")
        spectrum = None
        for i, x in enumerate(tensors):
            x = _prepend_one(x) if self.bias else x
            buckets = getattr(self, f"buckets_{i}")
            signs = getattr(self, f"signs_{i}").to(x.dtype)
            sketch = x.new_zeros(*x.shape[:-1], self.dim).index_add(-1, buckets, x * signs)
            f = torch.fft.rfft(sketch, dim=-1)
            spectrum = f if spectrum is None else spectrum * f
        return torch.fft.irfft(spectrum, n=self.dim, dim=-1)

    def extra_repr(self) -> str:
        return f"input_dims={_dims_repr(self.names, self.dims)}, dim={self.dim}, seed={self.seed}, bias={self.bias}"
