"""Training the attention aligner (:mod:`mmalign.align.attention`): data and the training loop.

Data
    make_data        text files → synthetic, augmented, exactly timed speech (:mod:`.data`)
    load_utterances  a data folder → utterances
Training
    train_aligner    data folders → weights (safetensors), checkpoints, resume (:mod:`.loop`)
    EpochReport      loss and validation score of an epoch
    best_epoch       the epoch whose weights are kept (the best validation score)
    calibrate, calibrate_aligner    fit how a model's paths are read (its junction) on held-out data
    evaluate_aligner    a weights file scored on a test set (data folders)
    train_clip       export folders → a dual encoder (audio, text) by InfoNCE (:mod:`.clip`)
    ClipReport       loss, temperature and retrieval R@1 / R@5 on held-out sources of an epoch
    load_clip        the dual encoder back

Importing this package imports neither torch nor eSpeak; the functions do, when called.
"""

from __future__ import annotations

from .clip import ClipConfig, ClipReport, load_clip, retrieval, train_clip
from .data import Utterance, augment, load_utterances, make_data
from .loop import (
    TOLERANCES,
    EpochReport,
    best_epoch,
    calibrate,
    calibrate_aligner,
    checkpoint_path,
    evaluate_aligner,
    train_aligner,
    validate,
)

__all__ = [
    "ClipConfig",
    "ClipReport",
    "load_clip",
    "retrieval",
    "train_clip",
    "TOLERANCES",
    "EpochReport",
    "best_epoch",
    "calibrate",
    "calibrate_aligner",
    "Utterance",
    "augment",
    "checkpoint_path",
    "evaluate_aligner",
    "load_utterances",
    "make_data",
    "train_aligner",
    "validate",
]
