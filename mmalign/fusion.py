"""Fusion of per-sample modality vectors: parameter-free (numpy) and trainable (torch).

Two families live behind this module:

* **Parameter-free fusions**, used by ``mmalign export --fuse``: plain numpy functions of
  per-sample modality vectors, deterministic to the byte for a given ``seed``.
  :func:`fuse` is the single entry point; :func:`concat`, :func:`projected_sum`,
  :func:`bilinear`, :func:`compact_bilinear` and :func:`side_by_side` are the individual
  fusions (``FUSIONS`` maps the command-line names to them).
* **Trainable torch modules** for the training side: ``ConcatFusion``,
  ``WeightedSumFusion``, ``AttentionFusion``, ``CrossModalAttention``,
  ``LowRankBilinearFusion`` and ``CompactBilinearPooling``.  They are defined in
  :mod:`mmalign.fusion_torch` (``from mmalign.fusion_torch import AttentionFusion``), which
  imports torch; :mod:`mmalign.fusion` never does. (Reaching them as attributes of this
  module still works until 0.3.0, with a :class:`DeprecationWarning`.)

Inputs
------
A fusion takes the modalities of a batch of samples, as a dict ``{name: array}`` or as a
list of arrays (then named ``"0"``, ``"1"``, ...).  Each array is ``(N, D_m)`` -- one
``D_m``-dimensional vector per sample, the same ``N`` for every modality -- or ``(D_m,)``
for a single sample, in which case the result has no sample axis either.  Values are
converted to float32 and must be finite; inputs are never modified.

Modality order
--------------
``order`` names the modalities to fuse, in order; modalities not named are left out.  By
default a dict's modalities are taken in **sorted name order** (so the result does not
depend on how the dict was built) and a list's in list order.  Order matters for
:func:`concat`, :func:`bilinear` and :func:`side_by_side`; :func:`projected_sum` and
:func:`compact_bilinear` do not depend on it.

Randomness and determinism
--------------------------
The seeded fusions (:func:`projected_sum`, :func:`compact_bilinear`) draw their random
matrices from a stream of their own for each modality, keyed by ``(seed, fusion, modality
name)``: adding, removing or reordering modalities does not change the projection or the
sketch of the others, and the global numpy RNG is neither used nor touched.  The random
bits come from the raw output of :class:`numpy.random.PCG64` seeded through
:class:`numpy.random.SeedSequence` -- both have a stable stream across numpy versions --
and are turned into signs and bucket indices with integer arithmetic only, so the same
seed gives the same bytes on any machine.  Arithmetic is done in float64 and the result
rounded to float32, so a sample's fused vector does not depend on the batch it was
fused in (given fixed ``stats`` for :func:`projected_sum`).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import UsageError

__all__ = [
    "FUSIONS",
    "bilinear",
    "compact_bilinear",
    "concat",
    "count_sketch",
    "fuse",
    "projected_sum",
    "projection_matrix",
    "side_by_side",
    "standardization_stats",
]

# Torch modules, defined in mmalign.fusion_torch and loaded on first access (see __getattr__).
_TORCH_NAMES = (
    "ConcatFusion",
    "WeightedSumFusion",
    "AttentionFusion",
    "CrossModalAttention",
    "LowRankBilinearFusion",
    "CompactBilinearPooling",
)

_STD_FLOOR = 1e-8  # a feature whose std is below this is only centred, not scaled


def __getattr__(name: str):
    if name in _TORCH_NAMES:  # deprecated path (an import cycle): the classes live in fusion_torch
        import warnings

        from . import fusion_torch
        from ._compat import DEPRECATED_IN, REMOVED_IN

        warnings.warn(
            f"mmalign.fusion.{name} is deprecated since {DEPRECATED_IN} and goes in {REMOVED_IN}; "
            f"import it from mmalign.fusion_torch",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(fusion_torch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(globals())


# ---------------------------------------------------------------- input validation


def _collect(features, order, *, what: str) -> tuple[list[str], list[np.ndarray], bool]:
    """Validate ``features`` and ``order``.

    Returns the modality names in fusion order, their values as 2-D float32 arrays, and
    whether the inputs were single samples (1-D).
    """
    if isinstance(features, Mapping):
        items = list(features.items())
        for name, _ in items:
            if not isinstance(name, str):
                raise UsageError(f"{what}: modality names must be strings, got {name!r}")
        default = sorted(name for name, _ in items)
    elif isinstance(features, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(features)]
        default = [name for name, _ in items]
    else:
        raise UsageError(f"{what}: features must be a dict or a list of arrays, got {type(features).__name__}")
    if not items:
        raise UsageError(f"{what}: no modalities given")
    table = dict(items)
    if order is None:
        names = default
    else:
        if isinstance(order, str) or not isinstance(order, Sequence):
            raise UsageError(f"{what}: order must be a list of modality names, got {order!r}")
        names = list(order)
        if not names:
            raise UsageError(f"{what}: order names no modality")
        unknown = [n for n in names if n not in table]
        if unknown:
            raise UsageError(
                f"{what}: order names {unknown[0]!r}, which is not among the modalities ({', '.join(default)})"
            )
        if len(set(names)) != len(names):
            raise UsageError(f"{what}: order names a modality twice")
    arrays, ndims, lengths = [], set(), set()
    for name in names:
        a = np.asarray(table[name])
        if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise UsageError(f"{what}: modality {name!r} must be real numbers, got dtype {a.dtype}")
        if a.ndim not in (1, 2):
            raise UsageError(f"{what}: modality {name!r} must be (N, D) or (D,), got shape {a.shape}")
        if a.shape[-1] == 0:
            raise UsageError(f"{what}: modality {name!r} has no features (shape {a.shape})")
        a = a.astype(np.float32, copy=False)
        if not np.isfinite(a).all():
            raise UsageError(f"{what}: modality {name!r} has non-finite values")
        ndims.add(a.ndim)
        if a.ndim == 2:
            lengths.add(a.shape[0])
        arrays.append(a if a.ndim == 2 else a[None, :])
    if len(ndims) > 1:
        raise UsageError(f"{what}: mix of single samples (D,) and batches (N, D); give all as (N, D)")
    if len(lengths) > 1:
        raise UsageError(
            f"{what}: modalities have different numbers of samples: "
            + ", ".join(f"{n}={a.shape[0]}" for n, a in zip(names, arrays))
        )
    return names, arrays, ndims == {1}


def _check_dim(dim, what: str) -> int:
    if dim is None:
        raise UsageError(f"{what} needs an output width dim")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise UsageError(f"{what}: dim must be a positive integer, got {dim!r}")
    return int(dim)


def _check_seed(seed, what: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"{what}: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _out(x: np.ndarray, single: bool) -> np.ndarray:
    return x[0] if single else x


# ---------------------------------------------------------------- seeded random streams


def _raw_bits(seed: int, purpose: str, name: str, n: int) -> np.ndarray:
    """``n`` raw uint64 words of the stream keyed by ``(seed, purpose, name)``."""
    key = int.from_bytes(hashlib.sha256(f"mmalign.fusion\0{purpose}\0{name}".encode()).digest()[:16], "little")
    bitgen = np.random.PCG64(np.random.SeedSequence([seed, key]))
    return bitgen.random_raw(n).astype(np.uint64, copy=False)


@functools.lru_cache(maxsize=64)
def _projection_cached(n_in: int, dim: int, seed: int, name: str) -> np.ndarray:
    words = _raw_bits(seed, "projection", name, -(-n_in * dim // 64))
    bits = np.unpackbits(words.astype("<u8").view(np.uint8), bitorder="little")[: n_in * dim]
    p = (1.0 - 2.0 * bits.astype(np.float64)).reshape(n_in, dim) / math.sqrt(n_in)
    p.setflags(write=False)
    return p


def projection_matrix(n_in: int, dim: int, *, seed: int = 0, name: str = "0") -> np.ndarray:
    """The seeded random projection that :func:`projected_sum` applies to modality ``name``.

    Parameters
    ----------
    n_in : int > 0
        Input width ``D_m``.
    dim : int > 0
        Output width.
    seed : int >= 0
        Seed; with ``name`` it keys the stream the signs are drawn from.
    name : str
        Modality name.

    Returns
    -------
    np.ndarray [shape=(n_in, dim), dtype=float64, read-only]
        Independent random signs scaled by ``1 / sqrt(n_in)`` (a Rademacher projection):
        each output coordinate of a standardised input has unit variance.
    """
    n_in = _check_dim(n_in, "projection_matrix (n_in)")
    dim = _check_dim(dim, "projection_matrix")
    return _projection_cached(n_in, dim, _check_seed(seed, "projection_matrix"), str(name))


@functools.lru_cache(maxsize=64)
def _sketch_cached(n_in: int, dim: int, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    words = _raw_bits(seed, "count-sketch", name, 2 * n_in)
    buckets = (words[:n_in] % np.uint64(dim)).astype(np.int64)
    signs = np.where(words[n_in:] >> np.uint64(63), -1.0, 1.0)
    buckets.setflags(write=False)
    signs.setflags(write=False)
    return buckets, signs


def count_sketch(n_in: int, dim: int, *, seed: int = 0, name: str = "0") -> tuple[np.ndarray, np.ndarray]:
    """The seeded count-sketch hash and signs of modality ``name``.

    Input coordinate ``i`` is added, times ``signs[i]``, to output bucket ``buckets[i]``.
    :func:`compact_bilinear` and ``CompactBilinearPooling`` both use these, so they agree
    for the same seed and names.

    Parameters
    ----------
    n_in : int > 0
        Input width (``D_m``, or ``D_m + 1`` with the constant coordinate of ``bias=True``).
    dim : int > 0
        Sketch width.
    seed : int >= 0
        Seed; with ``name`` it keys the stream.
    name : str
        Modality name.

    Returns
    -------
    buckets : np.ndarray [shape=(n_in,), dtype=int64, read-only]
        Bucket of each input coordinate, uniform in ``[0, dim)``.
    signs : np.ndarray [shape=(n_in,), dtype=float64, read-only]
        ``+1`` or ``-1`` with equal probability.
    """
    n_in = _check_dim(n_in, "count_sketch (n_in)")
    dim = _check_dim(dim, "count_sketch")
    return _sketch_cached(n_in, dim, _check_seed(seed, "count_sketch"), str(name))


def _apply_sketch(x: np.ndarray, buckets: np.ndarray, signs: np.ndarray, dim: int) -> np.ndarray:
    """Count sketch of the rows of ``x`` (N, n_in) -> (N, dim), float64, fixed summation order."""
    perm = np.argsort(buckets, kind="stable")
    sorted_buckets = buckets[perm]
    starts = np.flatnonzero(np.r_[True, sorted_buckets[1:] != sorted_buckets[:-1]])
    signed = x.astype(np.float64)[:, perm] * signs[perm]
    out = np.zeros((x.shape[0], dim))
    out[:, sorted_buckets[starts]] = np.add.reduceat(signed, starts, axis=1)
    return out


# ---------------------------------------------------------------- standardisation


def _check_stats(stats, names, arrays) -> list[tuple[np.ndarray, np.ndarray]]:
    if not isinstance(stats, Mapping):
        raise UsageError("stats must be a dict {modality: {'mean': ..., 'std': ...}}")
    out = []
    for name, a in zip(names, arrays):
        if name not in stats:
            raise UsageError(f"stats has no entry for modality {name!r}")
        entry = stats[name]
        try:
            mean = np.asarray(entry["mean"], np.float64)
            std = np.asarray(entry["std"], np.float64)
        except (TypeError, KeyError, IndexError, ValueError):
            raise UsageError(f"stats[{name!r}] must be a dict with numeric 'mean' and 'std'") from None
        d = a.shape[1]
        if mean.shape != (d,) or std.shape != (d,):
            raise UsageError(f"stats[{name!r}]: mean and std must have shape ({d},), got {mean.shape} and {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise UsageError(f"stats[{name!r}]: mean must be finite and std finite and > 0")
        out.append((mean, std))
    return out


def standardization_stats(features, *, order=None) -> dict[str, dict[str, np.ndarray]]:
    """Per-modality mean and standard deviation of a batch, for :func:`projected_sum`.

    Compute these once over the whole data set (or a large representative sample) and pass
    them as ``stats=`` to every call, so that all shards are standardised alike.

    Parameters
    ----------
    features : dict[str, np.ndarray] or list of np.ndarray [shape=(N, D_m)]
        The modalities; see the module documentation.
    order : list of str, optional
        The modalities to compute statistics of (default: all).

    Returns
    -------
    dict[str, dict[str, np.ndarray]]
        ``{name: {"mean": (D_m,) float32, "std": (D_m,) float32}}``: the population
        statistics over the ``N`` samples.  A standard deviation below ``1e-8`` (a constant
        feature) is replaced by 1, so that feature is only centred.  ``.tolist()`` on each
        array makes the result JSON-serialisable; :func:`projected_sum` reads it back.
    """
    names, arrays, _ = _collect(features, order, what="standardization_stats")
    out = {}
    for name, a in zip(names, arrays):
        a64 = a.astype(np.float64)
        mean = a64.mean(axis=0)
        std = a64.std(axis=0)
        std = np.where(std > _STD_FLOOR, std, 1.0)
        out[name] = {"mean": mean.astype(np.float32), "std": std.astype(np.float32)}
    return out


# ---------------------------------------------------------------- the fusions


def concat(features, *, order=None) -> np.ndarray:
    """Concatenate the modalities of each sample.

    Parameters
    ----------
    features : dict[str, np.ndarray] or list of np.ndarray [shape=(N, D_m) or (D_m,)]
        The modalities; see the module documentation.
    order : list of str, optional
        Modalities to use, in order (default: sorted names for a dict, list order for a list).

    Returns
    -------
    np.ndarray [shape=(N, sum(D_m)) or (sum(D_m),), dtype=float32]
    """
    _, arrays, single = _collect(features, order, what="concat")
    return _out(np.concatenate(arrays, axis=1), single)


def projected_sum(features, *, dim: int, seed: int = 0, order=None, stats=None) -> np.ndarray:
    """Standardise each modality, project it to a common width with a seeded random
    projection, and sum.

    For modality ``m`` with input ``x_m``: ``z = sum_m ((x_m - mean_m) / std_m) @ P_m`` where
    ``P_m = projection_matrix(D_m, dim, seed=seed, name=m)`` holds random signs scaled by
    ``1/sqrt(D_m)``, so every modality contributes unit variance to each output coordinate
    whatever its width.

    Parameters
    ----------
    features : dict[str, np.ndarray] or list of np.ndarray [shape=(N, D_m) or (D_m,)]
        The modalities; see the module documentation.
    dim : int > 0
        Output width.
    seed : int >= 0
        Seed of the projections; each modality's projection depends only on ``seed``, its
        name and its width.
    order : list of str, optional
        Modalities to use (default: all; the sum does not depend on their order).
    stats : dict, optional
        ``{name: {"mean": (D_m,), "std": (D_m,)}}``, as returned by
        :func:`standardization_stats`.  If None, the statistics are computed over the
        ``N`` samples given (batch statistics): then the result of a sample depends on the
        rest of its batch, so for sharded exports compute ``stats`` once and pass them.

    Returns
    -------
    np.ndarray [shape=(N, dim) or (dim,), dtype=float32]

    Raises
    ------
    UsageError
        On a missing or invalid ``dim``/``seed``/``stats``, or a single sample without
        ``stats`` (batch statistics of one sample would zero everything).
    """
    dim = _check_dim(dim, "sum fusion")
    seed = _check_seed(seed, "sum fusion")
    names, arrays, single = _collect(features, order, what="sum fusion")
    if stats is None:
        if arrays[0].shape[0] < 2:
            raise UsageError("sum fusion of a single sample needs stats= (see standardization_stats)")
        stats = standardization_stats(dict(zip(names, arrays)))
    moments = _check_stats(stats, names, arrays)
    z = np.zeros((arrays[0].shape[0], dim))
    for name, a, (mean, std) in zip(names, arrays, moments):
        # The float32-rounded statistics are used whether they were passed in or computed
        # here, so batch statistics and the same statistics passed back give equal bytes.
        mean = mean.astype(np.float32).astype(np.float64)
        std = std.astype(np.float32).astype(np.float64)
        z += ((a.astype(np.float64) - mean) / std) @ projection_matrix(a.shape[1], dim, seed=seed, name=name)
    return _out(z.astype(np.float32), single)


def _with_bias(a: np.ndarray, bias: bool) -> np.ndarray:
    return np.concatenate([np.ones((a.shape[0], 1), a.dtype), a], axis=1) if bias else a


def bilinear(features, *, order=None, bias: bool = False) -> np.ndarray:
    """Outer product of two modalities, flattened.

    For modalities ``x`` (first in order) and ``y``: ``z[i * D_y + j] = x[i] * y[j]``
    (row-major flattening of ``outer(x, y)``).

    Parameters
    ----------
    features : dict[str, np.ndarray] or list of np.ndarray [shape=(N, D_m) or (D_m,)]
        Exactly two modalities, or more with ``order`` naming two.
    order : list of str, optional
        The two modalities, ``[x, y]`` (default: sorted names for a dict, list order for a list).
    bias : bool
        If True a leading 1 is prepended to each vector before the product:
        ``outer([1, x], [1, y])`` holds the constant 1, then ``y`` itself, then for each
        ``x[i]`` the value ``x[i]`` followed by ``x[i] * y``, so the linear terms of both
        modalities survive in the fused vector.

    Returns
    -------
    np.ndarray [shape=(N, D_x * D_y) or (N, (D_x + 1) * (D_y + 1)) with ``bias``; float32]
        The output is ``D_x * D_y`` wide: mind the memory for wide features.
    """
    names, arrays, single = _collect(features, order, what="bilinear fusion")
    if len(arrays) != 2:
        raise UsageError(
            f"bilinear fusion takes exactly two modalities, got {len(arrays)} "
            f"({', '.join(names)}); name two with order="
        )
    x, y = (_with_bias(a, bias) for a in arrays)
    return _out((x[:, :, None] * y[:, None, :]).reshape(x.shape[0], -1), single)


def compact_bilinear(features, *, dim: int, seed: int = 0, order=None, bias: bool = False) -> np.ndarray:
    """Compact bilinear pooling: a tensor sketch of the outer product of the modalities.

    Each modality ``x_m`` is count-sketched to width ``dim`` with its own seeded hash and
    signs (:func:`count_sketch`); the sketches are multiplied in the FFT domain, i.e.
    circularly convolved.  The result is exactly the count sketch of the (flattened) outer
    product of all modalities, so inner products of fused vectors are unbiased estimates
    of the inner products of the full outer products: for two modalities,
    ``E[<z, z'>] = <x, x'> <y, y'>``, with a variance that falls as ``1/dim``.

    Parameters
    ----------
    features : dict[str, np.ndarray] or list of np.ndarray [shape=(N, D_m) or (D_m,)]
        Two or more modalities (more give a sketch of the multi-way outer product).
    dim : int > 0
        Output width.
    seed : int >= 0
        Seed of the sketches; each modality's sketch depends only on ``seed``, its name and
        its width.
    order : list of str, optional
        Modalities to use (default: all; the result does not depend on their order).
    bias : bool
        Prepend a 1 to each vector first, as in :func:`bilinear` (the sketch then covers
        the linear terms too).

    Returns
    -------
    np.ndarray [shape=(N, dim) or (dim,), dtype=float32]
    """
    dim = _check_dim(dim, "compact-bilinear fusion")
    seed = _check_seed(seed, "compact-bilinear fusion")
    names, arrays, single = _collect(features, order, what="compact-bilinear fusion")
    if len(arrays) < 2:
        raise UsageError("compact-bilinear fusion needs at least two modalities")
    spectrum: np.ndarray | None = None
    for name, a in zip(names, arrays):
        a = _with_bias(a, bias)
        buckets, signs = count_sketch(a.shape[1], dim, seed=seed, name=name)
        f = np.fft.rfft(_apply_sketch(a, buckets, signs, dim), axis=1)
        spectrum = f if spectrum is None else spectrum * f
    assert spectrum is not None  # at least two modalities (checked above)
    return _out(np.fft.irfft(spectrum, n=dim, axis=1).astype(np.float32), single)


def side_by_side(features, *, order=None) -> dict[str, np.ndarray]:
    """No fusion: the modalities, validated, as a dict in fusion order.

    Parameters
    ----------
    features : dict[str, np.ndarray] or list of np.ndarray [shape=(N, D_m) or (D_m,)]
        The modalities; see the module documentation.
    order : list of str, optional
        Modalities to keep, in order (default: sorted names for a dict, list order for a list).

    Returns
    -------
    dict[str, np.ndarray]
        ``{name: (N, D_m) or (D_m,) float32}``, new arrays (the inputs are not shared).
    """
    names, arrays, single = _collect(features, order, what="fusion 'none'")
    return {name: _out(a, single).copy() for name, a in zip(names, arrays)}


#: Command-line names of the parameter-free fusions (``--fuse``) and their functions.
FUSIONS: dict[str, Callable[..., np.ndarray | dict[str, np.ndarray]]] = {
    "concat": concat,
    "sum": projected_sum,
    "bilinear": bilinear,
    "compact-bilinear": compact_bilinear,
    "none": side_by_side,
}


def fuse(
    features, how: str, *, dim: int | None = None, seed: int = 0, order=None, stats=None, bias: bool = False
) -> np.ndarray | dict[str, np.ndarray]:
    """Fuse per-sample modality vectors with one of the parameter-free fusions.

    Parameters
    ----------
    features : dict[str, np.ndarray] or list of np.ndarray [shape=(N, D_m) or (D_m,)]
        The modalities; see the module documentation.
    how : {"concat", "sum", "bilinear", "compact-bilinear", "none"}
        The fusion (``"compact_bilinear"`` is accepted too): :func:`concat`,
        :func:`projected_sum`, :func:`bilinear`, :func:`compact_bilinear`,
        :func:`side_by_side`.
    dim : int > 0, optional
        Output width; required by ``"sum"`` and ``"compact-bilinear"``, refused by the others.
    seed : int >= 0
        Seed of ``"sum"`` and ``"compact-bilinear"`` (ignored by the others).
    order : list of str, optional
        Modalities to use, in order.
    stats : dict, optional
        Standardisation statistics for ``"sum"`` (see :func:`projected_sum`); refused by the others.
    bias : bool
        Prepend a constant 1 before ``"bilinear"`` and ``"compact-bilinear"``; refused by the others.

    Returns
    -------
    np.ndarray [shape=(N, D) or (D,), dtype=float32] or dict[str, np.ndarray]
        A dict for ``"none"``, an array otherwise.
    """
    key = how.replace("_", "-") if isinstance(how, str) else how
    if key not in FUSIONS:
        raise UsageError(f"unknown fusion {how!r}; choose one of {', '.join(FUSIONS)}")
    kwargs: dict[str, Any] = {"order": order}
    if key in ("sum", "compact-bilinear"):
        kwargs.update(dim=dim, seed=seed)
    elif dim is not None:
        raise UsageError(f"fusion {key!r} takes no dim (only 'sum' and 'compact-bilinear' do)")
    if key == "sum":
        kwargs["stats"] = stats
    elif stats is not None:
        raise UsageError(f"fusion {key!r} takes no stats (only 'sum' does)")
    if key in ("bilinear", "compact-bilinear"):
        kwargs["bias"] = bool(bias)
    elif bias:
        raise UsageError(f"fusion {key!r} takes no bias (only 'bilinear' and 'compact-bilinear' do)")
    return FUSIONS[key](features, **kwargs)
