"""Training the attention aligner on an export of real media's cues (cue-level supervision)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmalign import media  # noqa: E402
from mmalign.align.attention import HOP, AlignerConfig, default_model_path, load_model  # noqa: E402
from mmalign.errors import InputError  # noqa: E402
from mmalign.export import ExportOptions, config_hash, export_sources  # noqa: E402
from mmalign.features.audio import logmel_array  # noqa: E402
from mmalign.train import load_utterances, train_aligner  # noqa: E402
from mmalign.train.data import EXPORT_OPTIONS, FRONT_END  # noqa: E402
from mmalign.train.loop import _items, _split, _within  # noqa: E402

from conftest import SAMPLE_DIR  # noqa: E402

TINY = AlignerConfig(dim=24, attn_dim=12, text_layers=1, audio_layers=2, n_tokens=64, kernel=3)
#: The export of the aligner's front end, as EXPORT_OPTIONS spells it on the command line.
FRONT = {"grid": "cues", "pool": "none", "audio_features": ("logmel",), "video_features": (), "text_features": (),
         "sr": 16000, "audio_hop": 0.01, "n_mels": 80, "fmin": 20.0, "fmax": 7600.0}  # fmt: skip


def _cues(tmp_path_factory, name, **changes):
    root = tmp_path_factory.mktemp(name)
    shutil.copy2(SAMPLE_DIR / "sample.mp4", root / "sample.mp4")
    shutil.copy2(SAMPLE_DIR / "sample.vtt", root / "sample.vtt")
    export_sources([(root / "sample.mp4", root / "sample.vtt")], root / "cues", ExportOptions(**{**FRONT, **changes}))
    return root


@pytest.fixture(scope="module")
def cues(tmp_path_factory):
    return _cues(tmp_path_factory, "cues") / "cues"


def test_export_options_are_the_front_end():
    """The options the refusal names make exactly the export the loader accepts."""
    assert {**EXPORT_OPTIONS, "audio_features": ("logmel",), "n_mels": 80} == {
        k: v for k, v in FRONT.items() if k in EXPORT_OPTIONS or k == "n_mels"
    }
    assert FRONT_END["hop_length"] == FRONT_END["sr"] * HOP


def test_the_mel_range_is_recorded_and_old_exports_keep_their_hash():
    assert "fmin" not in ExportOptions().to_dict() and "fmax" not in ExportOptions().to_dict()
    assert config_hash(ExportOptions(fmin=0.0, fmax=None)) == config_hash(ExportOptions())
    assert ExportOptions(fmin=20.0, fmax=7600.0).to_dict()["fmin"] == 20.0


def test_an_export_reads_as_one_utterance_per_cue_with_the_aligners_log_mel(cues):
    records = [json.loads(line) for line in (cues / "manifest.jsonl").read_text().splitlines()]
    meta = json.loads((cues / "dataset.json").read_text())["features"]["features"]["audio.logmel"]["meta"]
    assert (meta["fmin"], meta["fmax"]) == (20.0, 7600.0)
    utts = load_utterances(cues, n_mels=80, language="en")
    assert [u.id for u in utts] == [r["id"] for r in records]
    y, _ = media.load_audio(SAMPLE_DIR / "sample.mp4", FRONT_END["sr"])
    whole = logmel_array(np.asarray(y, np.float32), n_mels=80, **FRONT_END)  # what make-data computes
    for u, r in zip(utts, records):
        first = int(np.ceil(r["start"] / HOP - 1e-6))  # the frames centred in the cue
        np.testing.assert_allclose(u.mels.astype(np.float32), whole[first : first + len(u.mels)], atol=0.05)
        assert u.word_starts[0] == 0.0 and np.isnan(u.word_starts[1:]).all() and np.isnan(u.word_ends).all()
        assert {w for _, w in u.phonemes} <= set(range(len(u.word_starts))) and len(u.phonemes) > len(u.word_starts)
    # the language is detected from the source's cues when not given
    assert [u.phonemes for u in load_utterances(cues, n_mels=80)] == [u.phonemes for u in utts]


def test_an_export_of_another_front_end_is_refused_with_the_options_to_use(tmp_path_factory):
    other = _cues(tmp_path_factory, "other", n_mels=64, fmin=0.0, fmax=None) / "cues"
    with pytest.raises(InputError, match=r"n_mels 64 \(not 80\).*export it with grid cues, pool none, .*fmin 20, "):
        load_utterances(other, n_mels=80)
    with pytest.raises(InputError, match="fmax 8000.0 \\(not 7600.0\\)"):
        load_utterances(other, n_mels=64)
    pooled = _cues(tmp_path_factory, "pooled", pool="mean") / "cues"
    with pytest.raises(InputError, match="pool mean: the aligner learns from cues' frame sequences"):
        load_utterances(pooled, n_mels=80)


def test_negatives_of_matching_pairs_are_not_learnt_from(tmp_path_factory):
    paired = _cues(tmp_path_factory, "paired", pairs="matching", min_gap=1.0) / "cues"
    records = [json.loads(line) for line in (paired / "manifest.jsonl").read_text().splitlines()]
    positives = [r["id"] for r in records if r.get("label", 1) == 1]
    assert len(positives) < len(records)
    assert [u.id for u in load_utterances(paired, n_mels=80, language="en")] == positives


def test_held_out_cues_are_judged_by_their_starts_in_pairs(cues):
    items = _items([cues], 80, TINY.n_tokens, "en")
    _, val = _split(items, 0.5)
    singles = [it for it in items if it.id in {v.id for v in val} or any(it.id in v.id.split("+") for v in val)]
    assert any("+" in v.id for v in val)
    for v in val:
        if "+" in v.id:
            a, b = (next(it for it in singles if it.id == part) for part in v.id.split("+"))
            known = v.starts[np.isfinite(v.starts)]
            np.testing.assert_allclose(known, [0.0, len(a.mels) * HOP])  # the second cue starts at the junction
    # unknown word times are neither hits nor misses: only the cue starts are counted
    from mmalign.align.attention import Tokens, word_times

    v = next(v for v in val if "+" in v.id)
    path = (np.arange(len(v.mels)) * len(v.tokens)) // len(v.mels)  # any monotonic path
    found, _ = word_times(path, Tokens(v.tokens, v.first, v.last), junction=0.0)
    known = np.isfinite(v.starts)
    for tol, share in _within([path], [v], 0.0).items():
        assert share == np.mean(np.abs(found[known] - v.starts[known]) <= float(tol) + 1e-9)


@pytest.mark.slow
def test_training_from_an_export_and_fine_tuning_the_shipped_weights(cues, tmp_path):
    out = tmp_path / "m.safetensors"
    run = {"epochs": 2, "batch_size": 4, "lr": 3e-4, "device": "cpu", "seed": 3, "validation": 0.3, "language": "en"}
    scratch = train_aligner([cues], out, config=TINY, **run)
    assert len(scratch) == 2 and load_model(out).config == TINY
    assert load_model(out).calibration["fitted_on"] == "validation with exported cues"
    tuned = train_aligner([cues], tmp_path / "t.safetensors", init=default_model_path(), **run)
    shipped = load_model(default_model_path())
    assert load_model(tmp_path / "t.safetensors").config == shipped.config  # the init's sizes, not TINY's
    assert tuned[0].loss < scratch[-1].loss  # it starts from a model that already aligns speech
    assert json.loads(_training_meta(tmp_path / "t.safetensors"))["init"] == "aligner.safetensors"


def _training_meta(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()["mmalign.training"]
