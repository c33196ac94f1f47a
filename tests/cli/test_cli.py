"""End-to-end tests of ``mmalign sync``: sample data, outputs, exit codes, error lines.

Inputs are always copies in ``tmp_path``; sample_data/ is never written (conftest checks).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import mmalign
from mmalign import subtitles as S
from mmalign.cli import app

from conftest import ROOT, Track, first_encoder, speechlike, vtt_text, write_media

TRUTH_SCALE, TRUTH_OFFSET = 960 / 1001, -3.7


def run(*args, cwd=None):
    """Invoke the CLI in-process; stdout and stderr apart."""
    runner = CliRunner()
    if cwd is None:
        return runner.invoke(app, [str(a) for a in args])
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, [str(a) for a in args])
    finally:
        os.chdir(old)


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def truth_cues():
    return S.read(ROOT / "sample_data" / "sample.vtt")


def assert_matches_truth(path: Path, tol: float, fmt: str | None = None):
    got = S.read(path)
    if fmt:
        assert got.format == fmt
    want = truth_cues()
    assert len(got.cues) == len(want.cues) == 16
    assert got.plain_texts() == want.plain_texts()
    err = np.abs(np.concatenate([got.starts - want.starts, got.ends - want.ends]))
    assert err.max() < tol, f"largest cue error {err.max():.3f} s (cue {int(np.argmax(err)) % 16 + 1})"


def assert_one_error_line(result, code: int, contains: str = ""):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert contains in lines[0]
    assert "Traceback" not in result.output


def outputs(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if ".synced." in p.name}


# ---------------------------------------------------------------- the sample clip


def test_sync_sample(sample):
    subs = sample / "sample.mistimed.vtt"
    before = digest(subs)
    result = run("sync", sample / "sample.mp4", subs)
    assert result.exit_code == 0, result.output
    out = sample / "sample.mistimed.synced.vtt"  # default: <stem>.synced.<ext> next to SUBS
    assert out.exists()
    assert_matches_truth(out, 0.1, "vtt")
    assert digest(subs) == before  # SUBS never modified
    assert result.stdout == ""
    assert result.stderr.startswith("synced 16 cues") and "->" in result.stderr
    # The cue ids, notes and header survive.
    text = out.read_text()
    assert text.startswith("WEBVTT") and "NOTE" in text
    assert [c.identifier for c in S.read(out).cues] == [str(i) for i in range(1, 17)]


def test_sync_json(sample):
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "--json")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    for key in ("offset", "scale", "confidence", "cues", "output", "written"):
        assert key in data, key
    assert data["scale"] == pytest.approx(TRUTH_SCALE, rel=1e-4)
    assert data["offset"] == pytest.approx(TRUTH_OFFSET, abs=0.05)
    assert 0.5 <= data["confidence"] <= 1.0
    assert data["cues"] == 16 and data["speech_cues"] == 16 and data["written"] is True
    assert data["cues_to_check"] == []
    assert Path(data["output"]) == sample / "sample.mistimed.synced.vtt"
    assert Path(data["output"]).exists()
    assert result.stderr == ""  # --json: no progress, no summary
    # One piece, and every cue's move with its confidence.
    assert len(data["pieces"]) == 1 and data["pieces"][0]["scale"] == data["scale"]
    given = S.read(sample / "sample.mistimed.vtt").cues
    written = S.read(Path(data["output"])).cues
    assert [m["index"] for m in data["moves"]] == list(range(16))
    for m, old, new in zip(data["moves"], given, written):
        assert m["id"] == old.identifier
        assert m["start"] == pytest.approx(new.start, abs=1e-3) and m["end"] == pytest.approx(new.end, abs=1e-3)
        assert m["shift"] == pytest.approx(new.start - old.start, abs=2e-3)
        assert 0.0 <= m["confidence"] <= 1.0 and m["speech"] is True
    assert np.median([m["confidence"] for m in data["moves"]]) > 0.5  # the cues land on the speech


@pytest.mark.slow
def test_unreadable_blocks_are_reported(sample, tmp_path):
    """A block that cannot be read is left out of the output, and said so (not silently)."""
    text = (sample / "sample.mistimed.vtt").read_text()
    broken = "broken\n00:00:09.000 --> 00:00:07.000\nthis cue ends before it starts\n\n"
    first_cue = text.index("\n1\n") + 1
    subs = tmp_path / "subs.vtt"
    subs.write_text(text[:first_cue] + broken + text[first_cue:])
    out = tmp_path / "out.vtt"
    result = run("sync", sample / "sample.mp4", subs, "-o", out)
    assert result.exit_code == 0, result.output
    warning, summary = result.stderr.strip().splitlines()
    assert warning.startswith(f"warning: {subs}: 1 block could not be read and is left out (first: line ")
    assert "ends before it starts" in warning
    assert summary.startswith("synced 16 cues")
    assert_matches_truth(out, 0.1)
    data = json.loads(run("sync", sample / "sample.mp4", subs, "-o", out, "--json").stdout)
    assert data["skipped"] == 1 and data["cues"] == 16
    assert run("sync", sample / "sample.mp4", subs, "-o", out, "-q").stderr.strip() == warning  # no summary


@pytest.mark.slow
def test_library_warnings_are_warning_lines_said_once(sample, tmp_path):
    """A truncated file is decoded by both speech detectors; its warning is one
    ``warning:`` line, and the result stands on what was decoded."""
    data = (sample / "sample.mp4").read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    result = run("sync", half, sample / "sample.mistimed.vtt", "-o", tmp_path / "out.vtt", "--detector", "both")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("synced 16 cues"), lines
    assert lines[0].startswith(f"warning: {half}: the audio ends at ") and "(truncated?)" in lines[0]


def test_summary_names_the_cues_to_check(sample, tmp_path):
    """Three extra lines after the end of the recording: the map stands, and the summary
    says which cues to look at."""
    text = (sample / "sample.mistimed.vtt").read_text().rstrip("\n")
    for k, t in enumerate((73.0, 75.0, 77.0)):
        text += f"\n\nextra{k}\n00:01:{t - 60:06.3f} --> 00:01:{t - 59:06.3f}\nNobody says this.\n"
    subs = tmp_path / "subs.vtt"
    subs.write_text(text)
    result = run("sync", sample / "sample.mp4", subs, "-o", tmp_path / "out.vtt")
    assert result.exit_code == 0, result.output
    assert "; 3 cues land on little speech, worth a look (--json: cues_to_check) -> " in result.stderr
    data = json.loads(run("sync", sample / "sample.mp4", subs, "-o", tmp_path / "out.vtt", "--json").stdout)
    assert data["cues_to_check"] == [16, 17, 18]


@pytest.mark.slow
def test_summary_of_a_forced_result_does_not_single_out_cues(sample, write_vtt, tmp_path):
    """Below --min-confidence every piece is in doubt: the summary says so, not which cues."""
    result = run(
        "sync", sample / "sample.mp4", _random_cues(write_vtt, "random.vtt", 0), "-o", tmp_path / "o.vtt", "--force"
    )
    assert result.exit_code == 0 and "written because of --force" in result.stderr
    assert "worth a look" not in result.stderr


@pytest.mark.slow
def test_plot(sample, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "why.png"
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "--plot", png, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".why")]  # no temporary file left


def test_plot_hatches_sound_cues(sample, tmp_path):
    pytest.importorskip("matplotlib")
    subs = S.read(sample / "sample.mistimed.vtt")
    sounds = [S.Cue(c.end + 0.1, c.end + 0.4, "[waves]") for c in subs.cues[:-1]]
    sdh = tmp_path / "sdh.vtt"
    S.Subtitles(sorted(subs.cues + sounds, key=lambda c: c.start), "vtt").write(sdh)
    png = tmp_path / "sdh.png"
    result = run("sync", sample / "sample.mp4", sdh, "--plot", png, "--json", "-o", tmp_path / "out.vtt")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["speech_cues"] == 16 and data["cues"] == 31
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_is_drawn_even_when_refused(sample, write_vtt, tmp_path):
    pytest.importorskip("matplotlib")
    subs = _random_cues(write_vtt, "random.vtt", 0)
    svg = tmp_path / "why.svg"
    result = run("sync", sample / "sample.vtt", subs, "--plot", svg)
    assert result.exit_code == 4, result.output
    assert svg.read_text().lstrip().startswith("<?xml") and outputs(tmp_path) == set()


def test_plot_needs_an_image_extension(sample, tmp_path):
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "--plot", tmp_path / "x.txt")
    assert result.exit_code == 2 and "--plot writes" in result.stderr
    assert outputs(sample) == set()


def test_plot_without_matplotlib_is_refused_before_the_work(sample, tmp_path, monkeypatch):
    import importlib.util

    import mmalign.align.sync as sync_mod

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    monkeypatch.setattr(sync_mod, "sync", lambda *a, **k: pytest.fail("synced before checking for matplotlib"))
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "--plot", tmp_path / "x.png")
    assert_one_error_line(result, 2, "--plot needs matplotlib: pip install 'mmalign[plot]'")
    assert outputs(sample) == set() and not (tmp_path / "x.png").exists()


def test_output_converts_format(sample, tmp_path):
    out = tmp_path / "fixed.srt"
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert result.output == ""  # --quiet
    assert out.read_text().startswith("1\n00:00:0")
    assert "-->" in out.read_text() and "," in out.read_text().splitlines()[1]
    assert_matches_truth(out, 0.1, "srt")
    assert outputs(sample) == set()  # nothing next to SUBS


# The remaining output tests use the correct subtitles as the reference: fast, no decoding.


def test_reference_subtitles(sample):
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reference_kind"] == "subtitles"
    assert data["scale"] == pytest.approx(TRUTH_SCALE, rel=1e-4)
    assert_matches_truth(sample / "sample.mistimed.synced.vtt", 0.05)


def test_reference_subtitles_with_an_unreadable_block(sample, tmp_path):
    text = (sample / "sample.vtt").read_text()
    at = text.index("\n1\n") + 1
    ref = tmp_path / "ref.vtt"
    ref.write_text(text[:at] + "00:00:09.000 --> nonsense\nunreadable timing\n\n" + text[at:])
    result = run("sync", ref, sample / "sample.mistimed.vtt", "-o", tmp_path / "out.vtt")
    assert result.exit_code == 0, result.output
    warning, summary = result.stderr.strip().splitlines()
    assert warning.startswith(f"warning: {ref}: 1 block could not be read and is left out (first: line ")
    assert "cannot read cue timing" in warning and summary.startswith("synced 16 cues")
    assert_matches_truth(tmp_path / "out.vtt", 0.05)


@pytest.mark.parametrize("fmt", ["srt", "ass", "ssa", "vtt"])
def test_format_option(sample, fmt):
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "--format", fmt, "-q")
    assert result.exit_code == 0, result.output
    out = sample / f"sample.mistimed.synced.{fmt}"
    assert outputs(sample) == {out.name}
    assert_matches_truth(out, 0.06 if fmt in ("ass", "ssa") else 0.05, fmt)  # ASS has centiseconds


def test_format_overrides_the_output_extension(sample, tmp_path):
    out = tmp_path / "odd.vtt"
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-f", "srt", "-o", out)
    assert result.exit_code == 0, result.output
    assert S.read(out, format=None).format == "srt"
    assert "WEBVTT" not in out.read_text()


def test_default_output_keeps_dotted_stem(tmp_path, sample):
    subs = tmp_path / "movie.en.srt"
    S.read(sample / "sample.mistimed.vtt").write(subs)
    result = run("sync", sample / "sample.vtt", subs, "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "movie.en.synced.srt").exists()


def test_output_folder_gets_the_default_name(tmp_path, sample):
    folder = tmp_path / "synced"
    folder.mkdir()
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "-o", folder, "-f", "srt")
    assert result.exit_code == 0, result.output
    assert [p.name for p in folder.iterdir()] == ["sample.mistimed.synced.srt"]
    assert_matches_truth(folder / "sample.mistimed.synced.srt", 0.1, "srt")
    assert outputs(sample) == set()


@pytest.mark.slow
def test_output_to_stdout(sample, write_vtt, tmp_path):
    """-o - prints the re-timed subtitles (for pipes); the summary stays on stderr."""
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "-o", "-", "-f", "srt")
    assert result.exit_code == 0, result.output
    got = S.loads(result.stdout)
    assert got.format == "srt" and len(got.cues) == 16
    want = truth_cues()
    assert np.abs(got.starts - want.starts).max() < 0.1
    assert result.stderr.strip().endswith("-> <stdout>")
    assert outputs(sample) == set()
    # --json wants stdout too; a refusal prints nothing there.
    assert_one_error_line(
        run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "-o", "-", "--json"),
        2,
        "--json and -o - both print on stdout",
    )
    refused = run("sync", sample / "sample.mp4", _random_cues(write_vtt, "random.vtt", 0), "-o", "-")
    assert refused.exit_code == 4 and refused.stdout == ""


def test_in_place(sample):
    subs = sample / "sample.mistimed.vtt"
    before = digest(subs)
    result = run("sync", sample / "sample.vtt", subs, "--in-place", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"] == str(subs)
    assert digest(subs) != before
    assert_matches_truth(subs, 0.05, "vtt")
    assert outputs(sample) == set()
    assert not [p for p in sample.iterdir() if p.name.startswith((".", "tmp"))]  # no temporary left


def test_output_equal_to_subs_is_refused(sample):
    subs = sample / "sample.mistimed.vtt"
    before = digest(subs)
    for same in (subs, sample / ".." / sample.name / subs.name):
        result = run("sync", sample / "sample.vtt", subs, "-o", same)
        assert_one_error_line(result, 2, "--in-place")
    # The same file by a relative name.
    result = run("sync", "sample.vtt", "sample.mistimed.vtt", "-o", "./sample.mistimed.vtt", cwd=sample)
    assert_one_error_line(result, 2, "--in-place")
    assert digest(subs) == before


def test_in_place_and_output_together_is_refused(sample, tmp_path):
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "--in-place", "-o", tmp_path / "x.vtt")
    assert_one_error_line(result, 2)


def test_output_folder_must_exist(sample, tmp_path):
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", tmp_path / "nope" / "x.vtt")
    assert_one_error_line(result, 2, "does not exist")


# ---------------------------------------------------------------- usage errors (exit 2)


@pytest.mark.parametrize(
    "args",
    [
        ["sync"],
        ["sync", "{media}"],
        ["sync", "{media}", "{subs}", "--bogus"],
        ["sync", "{media}", "{subs}", "--min-confidence", "2"],
        ["sync", "{media}", "{subs}", "--format", "txt"],
        ["sync", "{media}", "{subs}", "--max-offset", "0"],
        ["sync", "{media}", "{subs}", "--audio-stream", "-1"],
        ["sync", "{media}", "{subs}", "--jobs", "0"],
        ["frobnicate"],
    ],
    ids=[
        "no-args",
        "missing-subs",
        "bad-option",
        "confidence>1",
        "bad-format",
        "max-offset-0",
        "stream<0",
        "jobs-0",
        "bad-command",
    ],
)
def test_usage_errors(sample, args):
    subs = sample / "sample.mistimed.vtt"
    before = digest(subs)
    result = run(*[a.format(media=sample / "sample.vtt", subs=subs) for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert outputs(sample) == set() and digest(subs) == before


def test_output_encoding(sample, tmp_path, monkeypatch):
    """--encoding: honoured when the text fits; a name Python does not know is a usage
    error before any decoding; text the codec cannot hold is a usage error, nothing written."""
    subs = tmp_path / "subs.vtt"
    text = (sample / "sample.mistimed.vtt").read_text()
    subs.write_text(text.replace("Good morning", "caf\u00e9 \u2014 Good morning", 1))
    out = tmp_path / "out.srt"
    result = run("sync", sample / "sample.mp4", subs, "-o", out, "--encoding", "cp1252")
    assert result.exit_code == 0, result.output
    assert "caf\u00e9 \u2014" in out.read_bytes().decode("cp1252")
    out.unlink()
    assert_one_error_line(
        run("sync", sample / "sample.mp4", subs, "-o", out, "--encoding", "latin-1"),
        2,
        "cannot encode subtitle text as latin-1",
    )
    assert not out.exists()

    import mmalign.align.sync as sync_mod

    monkeypatch.setattr(sync_mod, "sync", lambda *a, **k: pytest.fail("synced before checking --encoding"))
    assert_one_error_line(
        run("sync", sample / "sample.mp4", subs, "-o", out, "--encoding", "nope"), 2, "unknown encoding 'nope'"
    )


def test_audio_stream_out_of_range(sample):
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "--audio-stream", "1")
    assert_one_error_line(result, 2, "audio stream 1 does not exist")
    assert outputs(sample) == set()


# ---------------------------------------------------------------- input errors (exit 3)


@pytest.mark.parametrize(
    "case",
    [
        "missing media",
        "missing reference subtitles",
        "text renamed .mp4",
        "empty media",
        "no audio stream",
        "missing subs",
        "subs without cues",
        "empty subs",
        "binary subs",
        "subs is a folder",
    ],
)
def test_input_errors(sample, tmp_path, case):
    media, subs = sample / "sample.mp4", sample / "sample.mistimed.vtt"
    contains = ""
    if case == "missing media":
        media, contains = tmp_path / "nope.mp4", "not found"
    elif case == "missing reference subtitles":
        media, contains = tmp_path / "nope.srt", "not found"
    elif case == "text renamed .mp4":
        media = tmp_path / "text.mp4"
        media.write_text("not a video at all\n" * 100)
        contains = "not a media file"
    elif case == "empty media":
        media = tmp_path / "empty.mkv"
        media.write_bytes(b"")
        contains = "empty"
    elif case == "no audio stream":
        video = first_encoder("libx264", "h264", "mpeg4")
        media, contains = write_media(tmp_path / "video.mp4", [], video=video, video_seconds=1.0), "has no audio stream"
    elif case == "missing subs":
        subs = tmp_path / "nope.vtt"
    elif case == "subs without cues":
        subs = tmp_path / "none.vtt"
        subs.write_text("WEBVTT\n\nNOTE nothing here\n")
        contains = "no readable subtitle cues"
    elif case == "empty subs":
        subs = tmp_path / "empty.srt"
        subs.write_text("")
    elif case == "binary subs":
        subs = tmp_path / "video.srt"
        subs.write_bytes((sample / "sample.mp4").read_bytes()[:20000])
    elif case == "subs is a folder":
        subs = tmp_path / "folder.vtt"
        subs.mkdir()
    result = run("sync", media, subs)
    assert_one_error_line(result, 3, contains)
    assert outputs(sample) == outputs(tmp_path) == set()


def test_error_as_json(tmp_path, sample):
    result = run("sync", tmp_path / "nope.mp4", sample / "sample.mistimed.vtt", "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["exit_code"] == 3 and "not found" in data["error"]
    assert result.stderr.startswith("error: ")


# ---------------------------------------------------------------- not confident (exit 4)


def _random_cues(write_vtt, name, seed, lo=0.0, hi=60.0, n=16):
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.uniform(lo, hi, n))
    return write_vtt(name, starts, starts + rng.uniform(0.5, 2.5, n))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.slow
def test_unrelated_subtitles_are_not_written(sample, write_vtt, tmp_path, seed):
    subs = _random_cues(write_vtt, "random.vtt", seed)
    before = digest(subs)
    result = run("sync", sample / "sample.mp4", subs, "--json")
    assert result.exit_code == 4, result.output
    data = json.loads(result.stdout)
    assert data["written"] is False and data["exit_code"] == 4 and data["confidence"] < 0.5
    assert not Path(data["output"]).exists()
    assert result.stderr.startswith("error: not confident") and len(result.stderr.strip().splitlines()) == 1
    assert data["doubt"] and f": {data['doubt']}. Nothing written" in result.stderr  # says why
    assert outputs(tmp_path) == set() and digest(subs) == before
    # --force writes it anyway.
    result = run("sync", sample / "sample.mp4", subs, "--force")
    assert result.exit_code == 0, result.output
    assert outputs(tmp_path) == {"random.synced.vtt"}
    assert "--force" in result.stderr


@pytest.mark.slow
def test_cues_far_beyond_the_media(sample, write_vtt, tmp_path):
    # No shift within --max-offset brings them onto the clip: the refusal names the option.
    subs = _random_cues(write_vtt, "late.vtt", 3, 1000.0, 1060.0)
    result = run("sync", sample / "sample.mp4", subs)
    assert_one_error_line(result, 4, "not confident")
    assert "are more than the largest shift considered (300 s, --max-offset) away" in result.stderr
    assert outputs(tmp_path) == set()


@pytest.mark.slow
def test_most_cues_outside_the_media(sample, write_vtt, tmp_path):
    # Within reach, but a ten-minute file's cues cannot all fit on a one-minute clip.
    subs = _random_cues(write_vtt, "long.vtt", 3, 0.0, 600.0, n=120)
    result = run("sync", sample / "sample.mp4", subs)
    assert_one_error_line(result, 4, "not confident")
    assert re.search(r"\d+ of the 120 spoken cues fall outside the 64 s of reference", result.stderr), result.stderr
    assert outputs(tmp_path) == set()


@pytest.mark.slow
def test_min_confidence_option(sample, write_vtt, tmp_path):
    subs = _random_cues(write_vtt, "random.vtt", 0)
    result = run("sync", sample / "sample.mp4", subs, "--min-confidence", "0", "-q")
    assert result.exit_code == 0, result.output  # any confidence is enough
    assert outputs(tmp_path) == {"random.synced.vtt"}


# ---------------------------------------------------------------- audio stream choice


@pytest.fixture(scope="module")
def two_track_media(tmp_path_factory):
    """A 60 s MKV: audio stream 0 talks at other times than stream 1; cues match stream 1 + 2.5 s."""
    sr = 8000
    folder = tmp_path_factory.mktemp("tracks")
    rng = np.random.default_rng(11)  # the noise floor

    def talk(seed):
        r = np.random.default_rng(seed)
        x = (0.0005 * rng.standard_normal(60 * sr)).astype(np.float32)
        spans, t = [], 1.0
        while True:
            d = r.uniform(0.8, 3.5)
            if t + d > 58:
                break
            i0, i1 = int(t * sr), int((t + d) * sr)
            x[i0:i1] += speechlike((i1 - i0) / sr, sr, f0=r.uniform(100, 200), seed=int(r.integers(1000)))
            spans.append((t, t + d))
            t += d + r.uniform(0.4, 3.0)
        return x, spans

    other, _ = talk(1)
    speech, spans = talk(2)
    media = write_media(folder / "two.mkv", [Track(other, sr, "flac"), Track(speech, sr, "flac")])
    starts = np.array([a for a, _ in spans]) + 2.5
    ends = np.array([b for _, b in spans]) + 2.5
    (folder / "cues.vtt").write_text(vtt_text(starts, ends), encoding="utf-8")
    return media, folder / "cues.vtt"


@pytest.mark.slow
def test_audio_stream_option_picks_the_track(two_track_media, tmp_path):
    media, cues = two_track_media
    out = tmp_path / "out.vtt"
    result = run("sync", media, cues, "--audio-stream", "1", "--json", "-o", out)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["offset"] == pytest.approx(-2.5, abs=0.05) and data["scale"] == 1.0
    got = S.read(out)
    np.testing.assert_allclose(got.starts, S.read(cues).starts - 2.5, atol=0.06)
    # The other track (also the default one) does not match these cues.
    for extra in (["--audio-stream", "0"], []):
        result = run("sync", media, cues, "--json", "-o", tmp_path / "other.vtt", *extra)
        assert result.exit_code == 4, result.output
    result = run("sync", media, cues, "--audio-stream", "2", "-o", tmp_path / "x.vtt")
    assert_one_error_line(result, 2, "audio stream 2 does not exist (it has 2")


# ---------------------------------------------------------------- the rest


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mmalign {mmalign.__version__}"


def test_help_lists_exit_codes():
    result = run("sync", "--help")
    assert result.exit_code == 0
    assert "Exit codes" in result.stdout and "--audio-stream" in result.stdout


def test_unexpected_failure_is_exit_1(sample, monkeypatch):
    import mmalign.align.sync as sync_mod

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sync_mod, "sync", boom)
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt")
    assert_one_error_line(result, 1, "unexpected failure: RuntimeError: boom")
    assert "--debug" in result.stderr
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "--debug")
    assert result.exit_code == 1  # --debug adds the traceback, never changes the exit code
    assert "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: unexpected failure: RuntimeError: boom")


@pytest.mark.slow
def test_subprocess_python_m_mmalign(sample):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "mmalign", "sync", "sample.mp4", "sample.mistimed.vtt", "--json"],
        cwd=sample,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["written"] is True and data["output"] == "sample.mistimed.synced.vtt"
    assert_matches_truth(sample / "sample.mistimed.synced.vtt", 0.1)
    assert proc.stderr == ""
    proc = subprocess.run(
        [sys.executable, "-m", "mmalign", "sync", "missing.mp4", "sample.mistimed.vtt"],
        cwd=sample,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3
    assert proc.stderr == "error: missing.mp4: media file not found\n"
    assert proc.stdout == ""


@pytest.mark.slow
def test_detector_option(sample, tmp_path):
    out = tmp_path / "both.vtt"
    result = run(
        "sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "-o", out, "--detector", "both", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["detector"] == "fast+silero" and summary["written"] and out.exists()
    result = run(
        "sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "-o", out, "--detector", "fast", "--json"
    )
    assert json.loads(result.stdout)["detector"] == "fast"
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", out, "--json")
    assert json.loads(result.stdout)["detector"] == "subtitles"
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "--detector", "magic")
    assert result.exit_code == 2


# ---------------------------------------------------------------- --check


def test_check_passes_subtitles_in_sync_and_writes_nothing(sample):
    result = run("sync", sample / "sample.mp4", sample / "sample.vtt", "--check", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["check"]["in_sync"] is True and doc["written"] is False
    assert not list(sample.glob("*.synced.*"))


def test_check_fails_subtitles_out_of_sync_with_exit_5(sample):
    result = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "--check", "--tolerance", "0.25")
    assert result.exit_code == 5
    assert "error: out of sync: 16 of 16 spoken cues are off by more than 0.25 s" in result.stderr
    assert "the first at 00:00:04.901" in result.stderr
    assert not list(sample.glob("*.synced.*"))


@pytest.mark.slow
def test_check_refuses_when_unsure_and_rejects_outputs(sample, tmp_path):
    other = tmp_path / "other.srt"
    other.write_text("".join(f"{i}\n00:00:{i:02d},000 --> 00:00:{i:02d},900\nline {i}\n\n" for i in range(1, 4)))
    assert run("sync", sample / "sample.mp4", other, "--check").exit_code == 4
    bad = run("sync", sample / "sample.mp4", sample / "sample.vtt", "--check", "-o", tmp_path / "x.vtt")
    assert bad.exit_code == 2 and "--check writes nothing" in bad.stderr


@pytest.mark.slow
def test_sync_with_the_attention_aligner(sample, tmp_path):
    """``--aligner combined`` runs the shipped attention aligner in the word pass; ``--model`` only with it."""
    pytest.importorskip("torch")
    out = tmp_path / "out.vtt"
    r = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "-o", out, "--aligner", "combined", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["written"] and len(S.read(out).cues) == 16
    r = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "--model", tmp_path / "m.safetensors")
    assert r.exit_code == 2 and "--model applies to the attention aligner (--aligner combined)" in r.stderr
    r = run("sync", sample / "sample.mp4", sample / "sample.mistimed.vtt", "--aligner", "combined",
            "--model", tmp_path / "m.safetensors")  # fmt: skip
    assert r.exit_code == 3 and "aligner weights not found" in r.stderr
