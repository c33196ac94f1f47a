"""Work is sized by the media (or a documented cap), never by a cue's timestamp (issue 18, item 2).

One cue at 99:59:59 or 999:00:00 used to size arrays of tens or hundreds of millions of
frames (24 GB for ``sync``, a 19.2 GB feature file for ``extract subs``).  The CLI cases
run in a child process under an address-space limit, so a regression fails instead of
taking the machine down.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmalign import subtitles as subtitles_mod
from mmalign.align.sync import sync
from mmalign.errors import InputError
from mmalign.features.text import MAX_TIMELINE, cue_activity, cue_embedding, interval_activity
from mmalign.timeline import FeatureSeq

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "sample.mp4"
#: Address space allowed to a child command (Python, numpy and numba reserve ~0.5 GB).
LIMIT_MB = 1500


def _ts(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _srt(path: Path, far: float | None, n: int = 30) -> Path:
    rng = np.random.default_rng(0)
    cues, t = [], 1.0
    for _ in range(n):
        d = float(rng.uniform(0.8, 3.5))
        cues.append((t, t + d))
        t += d + float(rng.uniform(0.3, 2.5))
    if far is not None:
        cues.append((far, far + 2.0))
    path.write_text(
        "".join(f"{i}\n{_ts(a)} --> {_ts(b)}\nline {i}\n\n" for i, (a, b) in enumerate(cues, 1)), encoding="utf-8"
    )
    return path


def _run_limited(args, timeout=60):
    """``python -m mmalign ARGS`` with RLIMIT_AS = LIMIT_MB; (returncode, stderr)."""
    code = (
        "import resource, runpy, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({LIMIT_MB} << 20, {LIMIT_MB} << 20))\n"
        "sys.argv = ['mmalign'] + sys.argv[1:]\n"
        "runpy.run_module('mmalign', run_name='__main__')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )
    return r.returncode, r.stderr


FAR = [99 * 3600 + 59 * 60 + 59.0, 999 * 3600.0]


def test_cue_activity_stops_at_the_timeline_cap(tmp_path, caplog):
    subs = subtitles_mod.read(_srt(tmp_path / "far.srt", FAR[0]))
    with caplog.at_level(logging.WARNING, logger="mmalign"):
        seq = cue_activity(subs, hop=0.1)
    assert len(seq) * seq.hop < 200  # the 30 normal cues, not 100 hours
    assert "left out" in caplog.text


def test_cue_embedding_stops_at_the_timeline_cap(tmp_path, caplog):
    subs = subtitles_mod.read(_srt(tmp_path / "far.srt", FAR[0]))
    with caplog.at_level(logging.WARNING, logger="mmalign"):
        seq = cue_embedding(subs, hop=0.1, dim=8)
    assert len(seq) * seq.hop < 200
    assert "left out" in caplog.text


def test_timeline_cap_keeps_cues_before_it(tmp_path):
    subs = subtitles_mod.read(_srt(tmp_path / "late.srt", MAX_TIMELINE - 100.0))
    seq = cue_activity(subs, hop=1.0)
    assert len(seq) * seq.hop == pytest.approx(MAX_TIMELINE - 98.0, abs=2.0)
    assert seq.values[-3:, 0].max() > 0.5  # the late cue is there


def test_embedding_too_large_is_a_one_line_input_error(tmp_path):
    subs = subtitles_mod.read(_srt(tmp_path / "late.srt", MAX_TIMELINE - 100.0))
    with pytest.raises(InputError) as exc:
        cue_embedding(subs, hop=0.01, dim=128)
    assert "\n" not in str(exc.value) and "coarser hop" in str(exc.value)


def test_interval_activity_frame_cap():
    with pytest.raises(InputError):
        interval_activity([0.0], [1e9], hop=0.01)


def test_sync_leaves_out_cues_beyond_the_reference(tmp_path, caplog):
    subs = subtitles_mod.read(_srt(tmp_path / "far.srt", FAR[1]))
    normal = subtitles_mod.read(_srt(tmp_path / "normal.srt", None))
    act = cue_activity(normal, hop=0.01, duration=120.0)
    activity = FeatureSeq(act.values, hop=0.01, name="audio.speech")
    with caplog.at_level(logging.WARNING, logger="mmalign"):
        result = sync(SAMPLE, subs, activity=activity)
    assert "beyond the reach" in caplog.text
    assert result.fit.scale == 1.0 and abs(result.fit.offset) < 0.05
    assert len(result.subtitles.cues) == len(subs.cues)  # the far cue is kept, and follows the map
    assert result.subtitles.starts[-1] == pytest.approx(FAR[1] + result.fit.offset, abs=0.01)


@pytest.mark.parametrize("far", FAR, ids=["99h", "999h"])
@pytest.mark.parametrize("command", ["sync-media", "extract-subs", "align", "sync-subs"])
@pytest.mark.slow
def test_far_cue_commands_stay_bounded(tmp_path, far, command):
    srt = _srt(tmp_path / "far.srt", far)
    out = tmp_path / "out"
    args = {
        "sync-media": ["sync", SAMPLE, srt, "-o", out.with_suffix(".srt"), "--force", "--detector", "fast"],
        "extract-subs": ["extract", "subs", srt, "-o", out.with_suffix(".safetensors")],
        "align": ["align", srt, srt, "-o", out.with_suffix(".json")],
        "sync-subs": ["sync", srt, srt, "-o", out.with_suffix(".srt")],
    }[command]
    rc, err = _run_limited(args)
    assert rc == 0, err
    assert "Traceback" not in err
    produced = next(tmp_path.glob("out.*"))
    assert produced.stat().st_size < 50 * 2**20


def test_breaks_are_not_searched_beyond_the_score_budget(monkeypatch, caplog):
    """Every cue is scored at every offset when looking for breaks: past MAX_SCORE_CELLS the
    file keeps one map, with a warning, instead of holding cues x offsets floats."""
    import logging

    from mmalign.align import splits
    from mmalign.align.sync import sync

    from conftest import SAMPLE_DIR

    monkeypatch.setattr(splits, "MAX_SCORE_CELLS", 1000)
    with caplog.at_level(logging.WARNING, logger="mmalign"):
        result = sync(SAMPLE_DIR / "sample.vtt", SAMPLE_DIR / "sample.mistimed.vtt")
    assert any("too many to look for breaks" in r.getMessage() for r in caplog.records)
    assert len(result.timemap) == 1 and result.confidence >= 0.5
