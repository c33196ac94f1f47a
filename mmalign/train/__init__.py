"""Training the attention aligner (:mod:`mmalign.align.attention`): data and the training loop.

Data
    make_data        text files → synthetic, augmented, exactly timed speech (:mod:`.data`)
    load_utterances  a data folder → utterances
Training
    train_aligner    data folders → weights (safetensors), checkpoints, resume (:mod:`.loop`)
    EpochReport      loss and validation score of an epoch

Importing this package imports neither torch nor eSpeak; the functions do, when called.
"""

from __future__ import annotations

from .data import Utterance, augment, load_utterances, make_data
from .loop import TOLERANCES, EpochReport, checkpoint_path, train_aligner, validate

__all__ = [
    "TOLERANCES",
    "EpochReport",
    "Utterance",
    "augment",
    "checkpoint_path",
    "load_utterances",
    "make_data",
    "train_aligner",
    "validate",
]
