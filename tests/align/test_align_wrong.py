"""Alignment results that used to be wrong without a word (issue 18, item 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmalign import subtitles as subtitles_mod
from mmalign.align.dtw import path_to_timemap
from mmalign.align.sync import sync

from conftest import CORPUS, ROOT


def _vtt(path: Path, starts, ends) -> Path:
    def ts(t):
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"

    blocks = [f"{i}\n{ts(a)} --> {ts(b)}\nline {i}\n" for i, (a, b) in enumerate(zip(starts, ends), 1)]
    path.write_text("WEBVTT\n\n" + "\n".join(blocks), encoding="utf-8")
    return path


def _poem(seed: int, n: int = 15):
    """Back-to-back cues from time 0 (a poem read aloud, forced-alignment output)."""
    d = np.random.default_rng(seed).uniform(2.5, 5.5, n)
    edges = np.round(np.concatenate([[0.0], np.cumsum(d)]), 2)
    return edges[:-1], edges[1:]


@pytest.mark.parametrize("seed", range(4))
def test_identical_back_to_back_copies_sync_to_identity(tmp_path, seed):
    starts, ends = _poem(seed)
    ref = _vtt(tmp_path / "ref.vtt", starts, ends)
    subs = _vtt(tmp_path / "subs.vtt", starts, ends)
    r = sync(ref, subs)
    assert r.fit.scale == 1.0
    assert abs(r.fit.offset) < 0.05
    assert np.all(np.abs(r.subtitles.starts - starts) < 0.05)  # every cue right


def test_sonnet_copy_syncs_to_identity(tmp_path):
    ref = CORPUS / "sonnet_en" / "reference.vtt"
    if not ref.exists():
        pytest.skip("../shared/corpus is absent")
    r = sync(ref, ref)
    assert r.fit.scale == 1.0
    subs = subtitles_mod.read(ref)
    assert np.all(np.abs(r.subtitles.starts - subs.starts) < 0.05)


def test_steep_dtw_path_late_in_a_long_file_gives_a_timemap():
    """A valid path with a long jump at ~1 hour used to fail 'TimeMap must be monotone'."""
    k, m = 180_000, 100_000
    path = np.concatenate(
        [
            np.stack([np.arange(k), np.arange(k)], 1),
            np.stack([np.full(m, k), np.arange(k, k + m)], 1),
            np.stack([np.arange(k + 1, k + 500), np.arange(k + m, k + m + 499)], 1),
        ]
    )
    tm = path_to_timemap(path.astype(np.int64), 0.02, 0.02)
    t = np.linspace(0, (k + 499) * 0.02, 5000)
    assert np.all(np.diff(tm(t)) >= -1e-6)


def _align(a, b, out):
    r = subprocess.run(
        [sys.executable, "-m", "mmalign", "align", str(a), str(b), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return r


@pytest.mark.slow
def test_align_unrelated_subtitles_warns(tmp_path):
    rng = np.random.default_rng(3)
    sa = np.sort(rng.uniform(0, 120, 30))
    sb = np.sort(rng.uniform(0, 120, 30))
    a = _vtt(tmp_path / "a.vtt", sa, sa + 0.3)
    b = _vtt(tmp_path / "b.vtt", sb, sb + 0.3)
    r = _align(a, b, tmp_path / "ab.json")
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "may be off" in r.stderr


@pytest.mark.slow
def test_align_dense_subtitles_on_speech_stays_near_the_truth(tmp_path):
    case = CORPUS / "smartphone_fr"
    if not case.exists():
        pytest.skip("../shared/corpus is absent")
    out = tmp_path / "a.json"
    r = _align(case / "reference.vtt", case / "audio.mp3", out)
    assert r.returncode == 0, r.stderr
    from mmalign.timeline import TimeMap

    tm = TimeMap.from_dict(json.loads(out.read_text())["timemap"])
    subs = subtitles_mod.read(case / "reference.vtt")
    err = np.abs(tm(subs.starts) - subs.starts)  # the reference is right: the truth is the identity
    assert err.max() < 1.5  # was 20 s
