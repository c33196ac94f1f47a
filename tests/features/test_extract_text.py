"""Tests of the subtitle features: per-cue measures, cue embeddings per frame, text_features."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign import subtitles as S
from mmalign.errors import UsageError
from mmalign.features import text as T
from mmalign.features.io import load_features, save_features

VTT = """WEBVTT

00:00:01.000 --> 00:00:02.500
Hello <i>there</i>
friend

00:00:05.000 --> 00:00:05.000
zero

00:00:02.000 --> 00:00:04.000
Hi   you

00:00:06.000 --> 00:00:07.000
hello THERE friend
"""


@pytest.fixture
def subs():
    return S.loads(VTT)


def test_cue_features_on_known_cues(subs):
    seq = T.cue_features(subs)
    assert seq.name == "text.cues" and seq.meta["columns"] == list(T.CUE_FEATURES)
    col = {c: seq.values[:, k] for k, c in enumerate(T.CUE_FEATURES)}
    assert np.array_equal(seq.times, [1.0, 2.0, 5.0, 6.0])  # time order
    assert np.allclose(col["end"], [2.5, 4.0, 5.0, 7.0])
    assert np.allclose(col["duration"], [1.5, 2.0, 0.0, 1.0])
    assert np.allclose(col["chars"], [17, 8, 4, 18])  # markup and line breaks not counted
    assert np.allclose(col["words"], [3, 2, 1, 3])
    assert np.allclose(col["cps"], [17 / 1.5, 4.0, 0.0, 18.0])
    assert np.allclose(col["index"], [0, 2, 1, 3])  # the number in the file
    assert np.allclose(col["position"], [0, 1 / 3, 2 / 3, 1])
    assert not seq.is_regular


def test_cue_features_skip_ass_comments():
    ass = (
        "[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,Shown {\\i1}text{\\i0}\\Nline two\n"
        "Comment: 0,0:00:03.00,0:00:04.00,Default,,0,0,0,,a note\n"
    )
    seq = T.cue_features(S.loads(ass))
    assert len(seq) == 1 and seq.values[0, 3] == len("Shown textline two")


def test_hashed_ngrams():
    v = T.hashed_ngrams(["Hello there", "hello   THERE", "something else", ""], dim=64)
    assert v.shape == (4, 64) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0) and not v[3].any()
    assert np.array_equal(v[0], v[1])  # case and spacing do not matter
    assert v[0] @ v[2] < 0.5
    again = T.hashed_ngrams(["Hello there"], dim=64)
    assert np.array_equal(again[0], v[0])  # the same in every run
    other = T.hashed_ngrams(["Hello there"], dim=64, seed=1)
    assert not np.array_equal(other[0], v[0])
    with pytest.raises(UsageError):
        T.hashed_ngrams(["x"], dim=0)


def test_cue_embedding_frames(subs):
    seq = T.cue_embedding(subs, hop=0.1, dim=32)
    assert seq.name == "text.embedding" and seq.values.shape[1] == 32 and seq.hop == 0.1
    act = T.cue_activity(subs, hop=0.1)
    assert len(seq) == len(act)  # the same frames as the activity
    norms = np.linalg.norm(seq.values, axis=1)
    t = seq.times
    inside = ((t >= 1.0 - 1e-9) & (t < 4.0 - 1e-9)) | ((t >= 6.0 - 1e-9) & (t < 7.0 - 1e-9))
    assert np.allclose(norms[inside], 1.0, atol=1e-5) and not seq.values[~inside].any()
    cue = T.hashed_ngrams(["Hello there\nfriend", "Hi you", "hello THERE friend"], dim=32)
    assert np.allclose(seq.values[12], cue[0])  # 1.2 s: the first cue only
    assert np.allclose(seq.values[30], cue[1])  # 3.0 s: the third cue of the file only
    both = cue[0] + cue[1]
    assert np.allclose(seq.values[21], both / np.linalg.norm(both), atol=1e-6)  # 2.1 s: two cues overlap
    assert np.allclose(seq.values[65], cue[2])
    assert np.allclose(seq.values[12], seq.values[65])  # the same words: the same vector
    fixed = T.cue_embedding(subs, hop=0.25, duration=10.0, dim=8, t0=0.0)
    assert len(fixed) == 40


def test_cue_embedding_with_encoder(subs):
    def encoder(texts):
        return np.array([[len(t), 1.0] for t in texts])

    seq = T.cue_embedding(subs, hop=0.5, encoder=encoder)
    assert seq.values.shape[1] == 2 and seq.meta["method"] == "encoder"
    with pytest.raises(UsageError, match="expected"):
        T.cue_embedding(subs, encoder=lambda texts: np.zeros((1, 3)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script: deprecated, still the format
def test_torchscript_encoder(subs, tmp_path):
    torch = pytest.importorskip("torch")

    class Lengths(torch.nn.Module):
        def forward(self, texts: list[str]) -> torch.Tensor:
            out = torch.zeros(len(texts), 3)
            for i, t in enumerate(texts):
                out[i, 0] = float(len(t))
                out[i, 1] = 1.0
            return out

    path = tmp_path / "enc.pt"
    torch.jit.script(Lengths()).save(str(path))
    enc = T.torchscript_encoder(path)
    v = enc(["ab", "abcd"])
    assert v.shape == (2, 3) and v[1, 0] == 4.0
    seq = T.cue_embedding(subs, hop=0.5, encoder=enc)
    assert seq.meta["encoder"].startswith("torchscript:") and seq.values.shape[1] == 3
    with pytest.raises(UsageError, match="TorchScript"):
        T.torchscript_encoder(tmp_path / "missing.pt")


def test_text_features_and_file(subs, tmp_path):
    feats = T.text_features(subs, hop=0.05, dim=16, source="subs.vtt")
    assert list(feats) == ["text.activity", "text.embedding", "text.cues"]
    assert all(s.meta["source"] == "subs.vtt" for s in feats.values())
    save_features(tmp_path / "t.safetensors", feats)
    back = load_features(tmp_path / "t.safetensors")
    assert np.array_equal(back["text.cues"].times, feats["text.cues"].times)
    assert not back["text.cues"].is_regular and back["text.embedding"].is_regular
    with pytest.raises(UsageError, match="unknown text feature"):
        T.text_features(subs, ["activity", "sentiment"])
