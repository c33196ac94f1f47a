"""train_clip: a dual encoder learns which text goes with which audio, resumes exactly, says what it scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmalign.errors import InputError, UsageError  # noqa: E402
from mmalign.export import ExportOptions, export_sources  # noqa: E402
from mmalign.train import checkpoint_path, load_clip, retrieval, train_clip  # noqa: E402

from conftest import kill_after_checkpoint  # noqa: E402

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()
FREQS = {w: 200.0 * 2 ** (i / 4) for i, w in enumerate(WORDS)}  # a quarter octave apart


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tone_export(make_media, write_vtt, out, sources=6, cues=24, seed=0, pool="mean"):
    """Recordings where each cue of two words sounds as the two words' tones: learnable, on held-out sources too."""
    rng = np.random.default_rng(seed)
    sr = 16000
    pairs = []
    for s in range(sources):
        starts = 0.3 + 1.2 * np.arange(cues)
        ends = starts + 0.8
        texts = [" ".join(rng.choice(WORDS, 2, replace=False)) for _ in range(cues)]
        y = 0.003 * rng.standard_normal(int((ends[-1] + 0.5) * sr))
        for a, b, text in zip(starts, ends, texts):
            t = np.arange(int((b - a) * sr)) / sr
            y[int(a * sr) : int(a * sr) + len(t)] += sum(0.2 * np.sin(2 * np.pi * FREQS[w] * t) for w in text.split())
        media = make_media(f"talk{s}.wav", signals=[y.astype(np.float32)])
        pairs.append((media, write_vtt(f"talk{s}.vtt", starts, ends, texts)))
    opts = ExportOptions(
        pool=pool, audio_features=("logmel",), video_features=(), text_features=("embedding",), n_mels=32
    )
    export_sources(pairs, out, opts)
    return out


def test_retrieval_counts_a_repeated_text_as_found():
    a = np.eye(3)
    recall, chance = retrieval(a, a, ["x", "y", "z"])
    assert recall["audio_text_r1"] == recall["text_audio_r1"] == 1.0 and chance == pytest.approx(1 / 3)
    t = a[[1, 0, 2]]  # rows 0 and 1 swapped: wrong unless their texts are one
    assert retrieval(a, t, ["x", "y", "z"])[0]["audio_text_r1"] == pytest.approx(1 / 3)
    recall, chance = retrieval(a, t, ["Yes!", "yes", "z"])
    assert recall["audio_text_r1"] == 1.0 and recall["text_audio_r5"] == 1.0 and chance == pytest.approx(5 / 9)


def test_train_resume_and_load(make_media, write_vtt, tmp_path):
    data = tone_export(make_media, write_vtt, tmp_path / "export", sources=4, cues=12)
    straight, split = tmp_path / "straight.safetensors", tmp_path / "split.safetensors"
    history = train_clip([data], straight, epochs=2, batch_size=8, device="cpu", validation=0.25)
    assert [r.epoch for r in history] == [1, 2] and history[0].validation == 12
    assert set(history[-1].recall) == {"audio_text_r1", "audio_text_r5", "text_audio_r1", "text_audio_r5"}
    train_clip([data], split, epochs=1, batch_size=8, device="cpu", validation=0.25)
    resumed = train_clip([data], split, epochs=2, batch_size=8, device="cpu", validation=0.25, resume=True)
    assert [r.epoch for r in resumed] == [1, 2] and resumed[-1].loss == history[-1].loss
    one, two = load_clip(straight), load_clip(split)
    for (name, x), (_, y) in zip(one.state_dict().items(), two.state_dict().items()):
        assert torch.equal(x, y), name
    assert checkpoint_path(split).exists() and one.config.audio_features == ("audio.logmel",)
    x, mask = torch.zeros(2, 1, one.config.audio_dim), torch.ones(2, 1, dtype=torch.bool)
    assert one.encode_audio(x, mask).shape == (2, 128)


def test_bad_inputs(make_media, write_vtt, tmp_path):
    with pytest.raises(UsageError, match="batch_size must be an integer >= 2"):
        train_clip([tmp_path], tmp_path / "m.safetensors", batch_size=1)
    with pytest.raises(UsageError, match="exports must be a list"):
        train_clip(str(tmp_path), tmp_path / "m.safetensors")
    with pytest.raises(InputError, match="no manifest.jsonl"):
        train_clip([tmp_path], tmp_path / "m.safetensors", device="cpu")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="not a dual encoder's weights"):
        load_clip(tmp_path / "junk.safetensors")


@pytest.mark.slow
def test_it_learns_on_held_out_sources_frames_too(make_media, write_vtt, tmp_path):
    for pool in ("mean", "none"):
        data = tone_export(make_media, write_vtt, tmp_path / pool, sources=10, cues=40, pool=pool)
        history = train_clip([data], tmp_path / f"{pool}.safetensors", epochs=8, batch_size=16, device="cpu", lr=3e-3)
        last = history[-1]
        assert last.recall["audio_text_r1"] >= 5 * last.chance and last.recall["text_audio_r1"] >= 5 * last.chance
        assert history[-1].loss < history[0].loss


@pytest.mark.slow
def test_the_command_resumes_after_kill_9(make_media, write_vtt, tmp_path):
    data = tone_export(make_media, write_vtt, tmp_path / "export", sources=6, cues=40, pool="none")
    out = tmp_path / "m.safetensors"
    cmd = [sys.executable, "-m", "mmalign", "train", "clip", str(data), "-o", str(out), "--epochs", "6",
           "--batch-size", "8", "--device", "cpu", "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ckpt = checkpoint_path(out)
    kill_after_checkpoint(cmd, ckpt, env, settle=0.3)
    assert ckpt.exists() and not out.exists()
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    epochs = json.loads(done.stdout)["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5, 6]
    straight = subprocess.run(
        cmd[:-1] + ["-o", str(tmp_path / "s.safetensors")], capture_output=True, text=True, env=env
    )
    assert straight.returncode == 0, straight.stderr
    a, b = load_clip(out), load_clip(tmp_path / "s.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
