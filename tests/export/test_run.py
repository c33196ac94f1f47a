"""export_sources: progress in the library's one shape, resuming across new options, failures worded by the caller."""

from __future__ import annotations

import json

import pytest

from mmalign.errors import InputError, UsageError, as_flag
from mmalign.export import ExportOptions, export_sources

RMS = {"audio_features": ("rms",), "video_features": (), "text_features": ()}
WINDOWS = ExportOptions(grid="windows", window=1.0, stride=1.0, **RMS)


class Recorder:
    """A progress callback with stages (a :class:`mmalign.parallel.Progress`)."""

    def __init__(self):
        self.events = []

    def __call__(self, done, total):
        self.events.append((done, total))

    def stage(self, label):
        self.events.append(label)


def test_progress_is_done_total_with_a_stage_per_pass(make_media, tmp_path):
    wav = make_media("film.wav", seconds=2.0)
    progress = Recorder()
    export_sources([(wav, None)], tmp_path / "data", WINDOWS, jobs=1, progress=progress)
    assert progress.events[0] == "film.wav: audio features"
    calls = progress.events[1:]
    assert calls and all(isinstance(c, tuple) for c in calls)
    assert calls[-1][0] == calls[-1][1] == pytest.approx(2.0, abs=0.05)
    # a plain (done, total) function works too
    seen = []
    export_sources([(wav, None)], tmp_path / "plain", WINDOWS, jobs=1, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1]


def test_new_options_at_their_defaults_resume_an_export_made_without_them(make_media, tmp_path):
    wav = make_media("film.wav", seconds=2.0)
    out = tmp_path / "data"
    first = export_sources([(wav, None)], out, WINDOWS, jobs=1)
    config = json.loads((out / "dataset.json").read_text())["config"]
    assert not {"width", "video_stream", "embed", "grid_hop"} & set(config) and config["hop"] is None
    same = ExportOptions(grid="windows", window=1.0, stride=1.0, width=320, video_stream=None, embed=None, **RMS)
    again = export_sources([(wav, None)], out, same, jobs=1)
    assert again["sources"][0]["skipped"] and again["samples"] == first["samples"] == 2
    other = ExportOptions(grid="windows", window=1.0, stride=1.0, width=160, **RMS)
    with pytest.raises(UsageError) as info:
        export_sources([(wav, None)], out, other, jobs=1)
    assert str(info.value).endswith("choose another folder or pass overwrite")
    assert info.value.worded(as_flag).endswith("pass --overwrite")
    assert export_sources([(wav, None)], out, other, jobs=1, overwrite=True)["samples"] == 2
    assert json.loads((out / "dataset.json").read_text())["config"]["width"] == 160


def test_a_failed_source_is_worded_by_the_caller(make_media, tmp_path):
    wav = make_media("film.wav", seconds=1.0)
    cues = ExportOptions(grid="cues", **RMS)
    plain = export_sources([(wav, None)], tmp_path / "a", cues)["sources"][0]
    assert plain["error"] == "no subtitles for this media: grid cues needs them" and plain["exit_code"] == 3
    flags = export_sources([(wav, None)], tmp_path / "b", cues, word=as_flag)["sources"][0]
    assert flags["error"] == "no subtitles for this media: --grid cues needs them"


def test_a_missing_embed_model_is_refused_before_any_work(make_media, tmp_path):
    wav = make_media("film.wav", seconds=1.0)
    opts = ExportOptions(
        grid="windows", window=1.0, stride=1.0, embed=str(tmp_path / "none.pt"), **{**RMS, "video_features": ("luma",)}
    )
    with pytest.raises(InputError, match="none.pt: model file not found"):
        export_sources([(wav, None)], tmp_path / "data", opts)
    assert not (tmp_path / "data").exists()
