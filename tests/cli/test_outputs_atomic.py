"""All-or-nothing outputs (issue 18, item 4) and export's silent-wrong cases (item 5).

``extract all`` writes its files together or not at all; ``export`` writes nothing before a
source is complete, its ``dataset.json`` names exactly the sources whose shards exist, it
warns about samples it fills with zeros, and two sources with the same stem get distinct,
stable sample ids.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from mmalign.cli import app
from mmalign.export import ExportOptions, export_sources

from conftest import SAMPLE_DIR


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def tree(folder):
    """Every file under ``folder`` (hidden ones too) and its SHA-256."""
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def records(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- extract all


@pytest.mark.slow
def test_extract_all_failing_late_leaves_no_folder(tmp_path):
    """The text features fail after audio and video are done: nothing is left, not even DIR."""
    out = tmp_path / "feats"
    result = run(
        "extract",
        "all",
        SAMPLE_DIR / "sample.mp4",
        SAMPLE_DIR / "sample.vtt",
        "-o",
        out,
        "--text-features",
        "nonsense",
        "-q",
    )
    assert result.exit_code == 2, result.output
    assert "nonsense" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists(), f"left behind: {tree(out)}"


def test_extract_all_unreadable_subtitles_keep_the_folder_as_it_was(tmp_path):
    out = tmp_path / "feats"
    out.mkdir()
    (out / "sample.audio.safetensors").write_bytes(b"an earlier run's file")
    (out / "notes.txt").write_text("mine")
    before = tree(out)
    bad = tmp_path / "film.srt"
    bad.write_bytes(bytes(range(256)) * 40)  # binary: no text encoding fits
    result = run("extract", "all", SAMPLE_DIR / "sample.mp4", bad, "-o", out, "--video-features", "none", "-q")
    assert result.exit_code == 3, result.output
    assert tree(out) == before


def test_extract_all_writes_every_file_with_normal_permissions(tmp_path):
    out = tmp_path / "feats"
    result = run(
        "extract",
        "all",
        SAMPLE_DIR / "sample.mp4",
        SAMPLE_DIR / "sample.vtt",
        "-o",
        out,
        "--video-features",
        "luma",
        "--text-features",
        "activity",
        "--audio-features",
        "rms",
        "--json",
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["sample.audio.safetensors", "sample.text.safetensors", "sample.video.safetensors"]
    assert [o["path"] for o in json.loads(result.stdout)["outputs"]] == [
        str(out / n) for n in ("sample.audio.safetensors", "sample.video.safetensors", "sample.text.safetensors")
    ]
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert all((p.stat().st_mode & 0o777) == (0o666 & ~umask) for p in out.iterdir())


# --------------------------------------------------------------------------- export: nothing before it is sure


def test_export_bilinear_of_many_features_fails_before_writing(tmp_path):
    out = tmp_path / "data"
    result = run("export", SAMPLE_DIR / "sample.mp4", SAMPLE_DIR / "sample.vtt", "-o", out, "--fuse", "bilinear")
    assert result.exit_code == 2, result.output
    assert "bilinear" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists(), f"left behind: {tree(out)}"


def test_export_bilinear_of_two_features_works(tmp_path):
    out = tmp_path / "data"
    result = run(
        "export",
        SAMPLE_DIR / "sample.mp4",
        SAMPLE_DIR / "sample.vtt",
        "-o",
        out,
        "--fuse",
        "bilinear",
        "--audio-features",
        "rms",
        "--video-features",
        "luma",
        "--text-features",
        "none",
    )
    assert result.exit_code == 0, result.output
    assert {tuple(r["tensors"]["fused"]) for r in records(out)} == {(2,)}  # 1 x 2 outer product


@pytest.fixture
def two_tones(make_media, tmp_path):
    """Two short recordings with the same stem in different folders: a/film.wav, b/film.wav."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = make_media("a/film.wav", tones=(440.0,), seconds=2.0)
    b = make_media("b/film.wav", tones=(660.0,), seconds=3.0)
    return a, b


_WINDOWS = ExportOptions(
    grid="windows", window=1.0, stride=1.0, audio_features=("rms",), video_features=(), text_features=()
)


def test_export_with_only_failing_sources_writes_nothing(tmp_path):
    out = tmp_path / "data"
    summary = export_sources([(tmp_path / "gone.wav", None)], out, _WINDOWS)
    assert summary["sources"][0]["exit_code"] == 3
    assert not out.exists(), f"an export that holds nothing: {tree(out)}"


def test_export_overwrite_keeps_the_old_export_until_a_source_is_done(two_tones, tmp_path):
    a, _ = two_tones
    out = tmp_path / "data"
    export_sources([(a, None)], out, _WINDOWS)
    before = tree(out)
    other = ExportOptions(
        grid="windows", window=0.5, stride=0.5, audio_features=("rms",), video_features=(), text_features=()
    )
    export_sources([(tmp_path / "gone.wav", None)], out, other, overwrite=True)
    assert tree(out) == before


def test_interrupted_export_claims_only_what_is_written_and_resumes(two_tones, tmp_path):
    a, b = two_tones
    c = a.parent / "c.wav"
    c.write_bytes(b.read_bytes())
    out = tmp_path / "data"

    def stop_after_first(report):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_sources([(a, None), (c, None)], out, _WINDOWS, on_source=stop_after_first)
    info = json.loads((out / "dataset.json").read_text())
    progress = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert [s["name"] for s in info["sources"]] == ["film"] and info["samples"] == 2
    assert [r["source_info"]["name"] for r in progress] == ["film"]
    assert all((out / s).exists() for s in progress[0]["shards"])
    assert info["features"]["order"] == ["audio.rms"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    summary = export_sources([(a, None), (c, None)], out, _WINDOWS)
    assert [s.get("skipped") for s in summary["sources"]] == [True, False]
    info = json.loads((out / "dataset.json").read_text())
    assert info["samples"] == 5 and [s["name"] for s in info["sources"]] == ["film", "c"]
    assert [r["id"] for r in records(out)] == [f"film/window-{k:06d}" for k in range(2)] + [
        f"c/window-{k:06d}" for k in range(3)
    ]


# --------------------------------------------------------------------------- export: silent-wrong cases


def test_same_stem_sources_get_unique_stable_ids(two_tones, tmp_path):
    a, b = two_tones
    out = tmp_path / "data"
    first = export_sources([(a, None), (b, None)], out, _WINDOWS)
    ids = [r["id"] for r in records(out)]
    assert len(ids) == 5 and len(set(ids)) == 5
    names = [s["name"] for s in first["sources"]]
    assert names[0] != names[1] and all(n.startswith("film-") for n in names)
    assert {r["source"] for r in records(out)} == set(names)
    # run again: both are recognised as done, under the same names and ids
    again = export_sources([(a, None), (b, None)], out, _WINDOWS)
    assert [s["skipped"] for s in again["sources"]] == [True, True]
    assert [s["name"] for s in again["sources"]] == names
    assert [r["id"] for r in records(out)] == ids
    # the same file from elsewhere gets the same name (it is the same source)
    moved = tmp_path / "elsewhere" / "film.wav"
    moved.parent.mkdir()
    moved.write_bytes(b.read_bytes())
    assert export_sources([(moved, None)], out, _WINDOWS)["sources"][0]["name"] == names[1]


def test_a_new_source_does_not_take_an_exported_name(two_tones, tmp_path):
    a, b = two_tones
    out = tmp_path / "data"
    assert export_sources([(a, None)], out, _WINDOWS)["sources"][0]["name"] == "film"
    second = export_sources([(a, None), (b, None)], out, _WINDOWS)
    assert second["sources"][0]["name"] == "film" and second["sources"][0]["skipped"]
    assert second["sources"][1]["name"].startswith("film-")
    ids = [r["id"] for r in records(out)]
    assert len(ids) == 5 and len(set(ids)) == 5


def test_export_warns_about_samples_filled_with_zeros(two_tones, tmp_path, caplog):
    """A cue past the end of the recording has no audio: its sample is zeros, and that is said."""
    a, _ = two_tones
    subs = tmp_path / "film.srt"
    subs.write_text(
        "1\n00:00:00,200 --> 00:00:01,000\nhello\n\n2\n00:00:05,000 --> 00:00:06,000\nlate\n\n", encoding="utf-8"
    )
    out = tmp_path / "data"
    opts = ExportOptions(grid="cues", audio_features=("rms",), video_features=(), text_features=())
    with caplog.at_level(logging.WARNING, logger="mmalign"):
        export_sources([(a, subs)], out, opts)
    recs = records(out)
    assert [r["missing"] for r in recs] == [[], ["audio.rms"]]
    shard = __import__("safetensors.numpy", fromlist=["load_file"]).load_file(str(out / recs[1]["shard"]))
    assert not np.any(shard[f"{recs[1]['row']}/audio.rms"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(str(a) in w and "audio.rms (1 of 2)" in w and "zeros" in w for w in warnings), warnings


def test_export_cli_warns_when_a_modality_is_missing(tmp_path, make_media):
    """A recording with no picture after a film, fused: its video columns are zeros, and one
    warning line says so."""
    wav = make_media("voice.wav", seconds=2.0)
    out = tmp_path / "data"
    result = run(
        "export",
        SAMPLE_DIR / "sample.mp4",
        SAMPLE_DIR / "sample.vtt",
        wav,
        "-o",
        out,
        "--grid",
        "windows",
        "--window",
        "1",
        "--stride",
        "1",
        "--audio-features",
        "rms",
        "--video-features",
        "luma",
        "--text-features",
        "none",
        "--fuse",
        "concat",
        "-q",
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "voice.wav" in warnings[0] and "video.luma (2 of 2)" in warnings[0], warnings
    recs = [r for r in records(out) if r["source"] == "voice"]
    assert len(recs) == 2 and all(r["missing"] == ["video.luma"] for r in recs)
