"""``mmalign align``: DTW between feature files, media and subtitles, from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mmalign.cli import app
from mmalign.features.io import save_features
from mmalign.timeline import FeatureSeq, TimeMap

HOP = 0.02


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def smooth_features(n, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 40, d))
    kernel = np.hanning(21)
    x = np.stack([np.convolve(x[:, k], kernel / kernel.sum(), mode="same") for k in range(d)], 1)
    return x[20 : 20 + n].astype(np.float32)


def warp(t):
    """B's time of A's time t: 1.5 s later, running 10 % slower after 20 s."""
    return 1.5 + np.where(t < 20, t, 20 + (t - 20) * 1.1)


@pytest.fixture
def warped_pair(tmp_path):
    """A: 40 s of smooth features; B: the same content on the clock ``warp``, with 1.5 s of lead-in."""
    a = smooth_features(2000)
    ta = np.arange(2000) * HOP
    tb = np.arange(int(warp(ta[-1]) / HOP) + 25) * HOP
    # B's frame at time s shows A's content at warp^-1(s)
    inv = np.interp(tb, warp(ta), ta, left=-1, right=-1)
    b = np.stack([np.interp(inv, ta, a[:, k]) for k in range(a.shape[1])], 1).astype(np.float32)
    b[inv < 0] = 0
    pa, pb = tmp_path / "a.safetensors", tmp_path / "b.npz"
    save_features(pa, [FeatureSeq(a, HOP, 0.0, "audio.mfcc"), FeatureSeq(a[:, :2], HOP, 0.0, "audio.rms")])
    save_features(pb, [FeatureSeq(b, HOP, 0.0, "audio.mfcc")])
    return pa, pb


@pytest.mark.parametrize("extra", [[], ["--multiscale"], ["--band", "3"]], ids=["exact", "multiscale", "band"])
def test_recovers_a_known_warp(warped_pair, tmp_path, extra):
    pa, pb = warped_pair
    out = tmp_path / "ab.json"
    result = run("align", pa, pb, "-o", out, "--json", *extra)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["feature_a"] == summary["feature_b"] == "audio.mfcc"
    assert summary["multiscale"] is ("--multiscale" in extra)
    doc = json.loads(out.read_text())
    tm = TimeMap.from_dict(doc["timemap"])
    t = np.linspace(2, 38, 50)
    assert np.max(np.abs(tm.apply(t) - warp(t))) < 3 * HOP
    path = np.array(doc["path"])
    assert path.shape[1] == 2 and np.all(np.diff(path, axis=0) >= 0)
    assert len(doc["path_seconds"]) == len(path)


def test_subsequence_finds_a_stretch_inside(tmp_path):
    long = smooth_features(3000, seed=3)
    part = long[1200:1500]
    pa, pb = tmp_path / "part.safetensors", tmp_path / "long.safetensors"
    save_features(pa, [FeatureSeq(part, HOP, 0.0, "audio.mfcc")])
    save_features(pb, [FeatureSeq(long, HOP, 0.0, "audio.mfcc")])
    out = tmp_path / "where.json"
    result = run("align", pa, pb, "--subsequence", "-o", out, "-q")
    assert result.exit_code == 0 and result.output == ""
    tm = TimeMap.from_dict(json.loads(out.read_text())["timemap"])
    assert tm.apply(0.0) == pytest.approx(1200 * HOP, abs=HOP)


def test_media_against_its_subtitles(sample, tmp_path):
    out = tmp_path / "m.json"
    result = run("align", sample / "sample.mp4", sample / "sample.vtt", "-o", out, "--json", "--no-path")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["feature_a"], summary["feature_b"]) == ("audio.speech", "text.activity")
    doc = json.loads(out.read_text())
    assert "path" not in doc
    tm = TimeMap.from_dict(doc["timemap"])
    from mmalign import subtitles

    mids = np.array([(c.start + c.end) / 2 for c in subtitles.read(sample / "sample.vtt").cues])
    assert np.median(np.abs(tm.apply(mids) - mids)) < 0.1  # the timing already matches


@pytest.mark.parametrize(
    "args, message",
    [
        (["--feature", "audio.chroma"], "no feature audio.chroma"),
        (["--feature", "audio.rms"], "has no feature audio.rms"),
        (["--metric", "manhattan"], "unknown metric"),
        (["--multiscale", "--band", "1"], "--band applies to exact DTW"),
    ],
)
def test_align_errors(warped_pair, tmp_path, args, message):
    pa, pb = warped_pair
    result = run("align", pa, pb, "-o", tmp_path / "x.json", *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "x.json").exists()


def test_align_feature_width_mismatch(tmp_path):
    pa, pb = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_features(pa, [FeatureSeq(np.zeros((10, 3)), HOP, 0.0, "audio.x")])
    save_features(pb, [FeatureSeq(np.zeros((10, 4)), HOP, 0.0, "audio.y")])
    result = run("align", pa, pb, "-o", tmp_path / "x.json")
    assert result.exit_code == 2 and "columns" in result.stderr
