"""Checkpoints shared by the training loops: where, written atomically, read back, and the device.

:func:`checkpoint_path`
    ``MODEL.checkpoint.safetensors`` beside the output ``MODEL.safetensors``.
:func:`save_checkpoint`, :func:`load_checkpoint`, :func:`checkpoint_meta`
    The model's and the optimizer's tensors with a JSON description in the metadata;
    written to a temporary file and renamed, so a run killed at any moment (``kill -9``)
    leaves the last whole checkpoint.
:func:`torch_device`
    ``cpu``, ``cuda`` or ``auto``, checked.
:func:`warmdown_lr`
    The learning rate of a step: constant, then a half cosine to 0 over the run's last part.

Importing this module imports no torch; the functions do.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Union

from ..errors import InputError, UsageError

__all__ = [
    "Pathlike",
    "checkpoint_path",
    "checkpoint_meta",
    "save_checkpoint",
    "load_checkpoint",
    "torch_device",
    "warmdown_lr",
]

Pathlike = Union[str, "os.PathLike[str]"]
_KEY = "mmalign.checkpoint"


def checkpoint_path(output: Pathlike) -> Path:
    """Where :func:`train_aligner` keeps the checkpoint of a run writing ``output``."""
    out = Path(output)
    stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
    return out.with_name(stem + ".checkpoint.safetensors")


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """The JSON description a checkpoint was saved with (no tensors read).

    Raises
    ------
    InputError
        ``path`` unreadable or not a checkpoint.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(json.loads((fh.metadata() or {})[_KEY]))
    except (OSError, SafetensorError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot read the checkpoint: {exc}") from exc


def check_run(epochs: int, batch_size: int, lr: float, *, least_batch: int = 1) -> None:
    """Refuse bad ``epochs``, ``batch_size`` (at least ``least_batch``) and ``lr`` of a training run.

    Raises
    ------
    UsageError
        A count that is not an integer that large, or a rate outside (0, 1).
    """
    for name, value, least in (("epochs", epochs, 1), ("batch_size", batch_size, least_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"{{{name}}} must be an integer >= {least}, not {value!r}", names=[name])
    if not (isinstance(lr, (int, float)) and 0 < lr < 1):
        raise UsageError(f"{{lr}} must be a number between 0 and 1, not {lr!r}", names=["lr"])


def torch_device(device: str) -> Any:
    """The torch device for ``cpu``, ``cuda`` or ``auto`` (CUDA where torch has it).

    Raises
    ------
    UsageError
        Another name, or ``cuda`` where torch has no CUDA GPU.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("{device} cuda: no CUDA GPU is available to torch here", names=["device"])
    if device not in ("cpu", "cuda"):
        raise UsageError(f"{{device}} must be cpu, cuda or auto, not {device!r}", names=["device"])
    return torch.device(device)


def warmdown_lr(lr: float, step: int, steps: int, decay: float) -> float:
    """The learning rate of ``step`` (0-based) of ``steps``: ``lr``, then along a half cosine
    towards 0 over the last ``decay`` share (0 to 1) of the steps."""
    first = steps * (1.0 - decay)
    if decay <= 0.0 or step < first:
        return lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * (step - first) / (steps - first)))


def save_checkpoint(
    path: Path, model: Any, optimizer: Any, meta: dict[str, Any], *, best: dict[str, Any] | None = None
) -> None:
    """Write a checkpoint atomically: the model's and the optimizer's tensors, ``meta`` (JSON) in
    its metadata, and ``best`` (a state dict kept beside the model, e.g. its best epoch's).

    Raises
    ------
    OutputError
        ``path`` cannot be written.
    """
    from safetensors.torch import save

    from ..fileio import atomic_write

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim.{i}.{key}"] = value.detach().cpu().reshape(value.shape).contiguous()
    for k, v in (best or {}).items():
        tensors[f"best.{k}"] = v.detach().cpu().contiguous()
    atomic_write(path, save(tensors, metadata={_KEY: json.dumps(meta, sort_keys=True)}))


def load_checkpoint(path: Path, model: Any, optimizer: Any, device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint of :func:`save_checkpoint` into ``model`` and ``optimizer``; return its
    ``meta`` and its ``best`` state dict (empty when it kept none).

    Raises
    ------
    InputError
        ``path`` unreadable or not a checkpoint.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})[_KEY])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (OSError, SafetensorError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot read the checkpoint: {exc}") from exc
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, key = k.split(".", 2)
            state.setdefault(int(i), {})[key] = v if key == "step" else v.to(device)
    sd = optimizer.state_dict()
    sd["state"] = state
    optimizer.load_state_dict(sd)
    return meta, {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
