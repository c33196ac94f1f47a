"""``mmalign train make-data|aligner`` from the command line: outputs, summaries, exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmalign.cli import app

pytest.importorskip("torch")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_make_data_then_train_by_command(tmp_path):
    text = tmp_path / "en.txt"
    text.write_text("One two three four.\nFive six seven.\nEight nine ten.\n", encoding="utf-8")
    r = run("train", "make-data", text, "-o", tmp_path / "data", "--clean", "-j", "1", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["utterances"] == 3 and summary["languages"] == ["en"]
    out = tmp_path / "m.safetensors"
    r = run("train", "aligner", tmp_path / "data", "-o", out, "--epochs", "2", "--batch-size", "2",
            "--device", "cpu", "--keep", "last", "--decay", "0.5", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    epochs = json.loads(r.stdout)["epochs"]
    assert json.loads(r.stdout)["epoch_kept"] == 2
    assert len(epochs) == 2 and set(epochs[0]["within"]) == {"0.05", "0.1", "0.25"}
    assert set(epochs[0]["within_raw"]) == set(epochs[0]["within"]) and 0 <= epochs[0]["junction"] <= 0.1
    assert out.exists() and (tmp_path / "m.checkpoint.safetensors").exists()
    from safetensors import safe_open

    with safe_open(out, "np") as f:  # the defaults: the words' times and the augmentation
        training = json.loads(f.metadata()["mmalign.training"])
    assert training["words"] is True and training["augment"] is True
    plain = tmp_path / "p.safetensors"
    r = run("train", "aligner", tmp_path / "data", "-o", plain, "--epochs", "1", "--batch-size", "2",
            "--device", "cpu", "--no-words", "--no-augment", "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    with safe_open(plain, "np") as f:
        training = json.loads(f.metadata()["mmalign.training"])
    assert training["words"] is False and training["augment"] is False


def test_train_errors_are_one_line_with_their_exit_code(tmp_path):
    r = run("train", "aligner", tmp_path, "-o", tmp_path / "m.safetensors", "--device", "cpu")
    assert r.exit_code == 3 and r.stderr.count("\n") == 1 and "not a training data folder" in r.stderr
    r = run("train", "make-data", tmp_path / "missing.txt", "-o", tmp_path / "d")
    assert r.exit_code == 3 and r.stderr.startswith("error: ")
    r = run("train", "aligner", tmp_path, "-o", tmp_path / "m.safetensors", "--device", "tpu")
    assert r.exit_code == 2
    r = run("train", "aligner", tmp_path, "-o", tmp_path / "m.safetensors", "--keep", "first")
    assert r.exit_code == 2


def test_train_clip_errors_are_one_line_with_their_exit_code(tmp_path):
    r = run("train", "clip", tmp_path, "-o", tmp_path / "m.safetensors", "--device", "cpu")
    assert r.exit_code == 3 and r.stderr.count("\n") == 1 and "no manifest.jsonl" in r.stderr
    r = run("train", "clip", tmp_path, "-o", tmp_path / "m.safetensors", "--batch-size", "1")
    assert r.exit_code == 2


@pytest.mark.slow
def test_export_then_fine_tune_the_shipped_weights_by_command(tmp_path):
    """The example of `train aligner --help`: an export of cues with the aligner's front end, then --init default."""
    from mmalign.errors import as_flag
    from mmalign.train.data import EXPORT_OPTIONS

    from conftest import SAMPLE_DIR

    front = [x for k, v in {**EXPORT_OPTIONS, "n_mels": 80}.items() for x in (as_flag(k), str(v))]
    r = run("export", SAMPLE_DIR / "sample.mp4", SAMPLE_DIR / "sample.vtt", "-o", tmp_path / "cues", *front,
            "--video-features", "none", "--text-features", "none", "-q")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = tmp_path / "mine.safetensors"
    r = run("train", "aligner", tmp_path / "cues", "-o", out, "--init", "default", "--epochs", "1",
            "--batch-size", "4", "--lr", "3e-4", "--device", "cpu", "--language", "en", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["epochs"]) == 1 and out.exists()
    r = run("export", SAMPLE_DIR / "sample.mp4", SAMPLE_DIR / "sample.vtt", "-o", tmp_path / "plain", "--grid",
            "cues", "--pool", "none", "--audio-features", "logmel", "--video-features", "none", "--text-features",
            "none", "-q")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = run("train", "aligner", tmp_path / "plain", "-o", out, "--device", "cpu")
    assert r.exit_code == 3 and r.stderr.count("\n") == 1
    how = "--grid cues, --pool none, --audio-features logmel, --sr 16000, --audio-hop 0.01, --fmin 20, --fmax 7600"
    assert f"export it with {how}, --n-mels 80" in r.stderr  # the flags, as the command line spells them
    r = run("train", "aligner", tmp_path / "cues", "-o", out, "--device", "cpu", "--language", "xx-nope")
    assert r.exit_code == 2 and "not a language eSpeak NG speaks" in r.stderr


@pytest.mark.slow
def test_train_aligner_resumes_after_kill_9(tmp_path):
    """``kill -9`` mid-run (after a checkpoint), then ``--resume``: the weights of a run not killed."""
    import os
    import subprocess
    import sys

    import torch

    from mmalign.align.attention import load_model
    from mmalign.train import checkpoint_path

    from conftest import kill_after_checkpoint

    text = tmp_path / "en.txt"
    text.write_text(
        "One two three four.\nFive six seven.\nEight nine ten.\nThe cat sat on the mat.\n"
        "A bird sang in the tree.\nWe walk home at noon.\n",
        encoding="utf-8",
    )
    assert run("train", "make-data", text, "-o", tmp_path / "data", "-j", "1", "--quiet").exit_code == 0
    out = tmp_path / "m.safetensors"
    cmd = [sys.executable, "-m", "mmalign", "train", "aligner", str(tmp_path / "data"), "-o", str(out),
           "--epochs", "12", "--batch-size", "2", "--device", "cpu", "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ckpt = checkpoint_path(out)
    kill_after_checkpoint(cmd, ckpt, env)
    assert ckpt.exists() and not out.exists()
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert [e["epoch"] for e in json.loads(done.stdout)["epochs"]] == list(range(1, 13))
    straight = subprocess.run(cmd[:-1] + ["-o", str(tmp_path / "s.safetensors")], capture_output=True, env=env)
    assert straight.returncode == 0, straight.stderr
    a, b = load_model(out).state_dict(), load_model(tmp_path / "s.safetensors").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
