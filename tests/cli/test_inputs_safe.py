"""Inputs are never written, and outputs go where -o says (issue: hostile inputs, part 1).

Every command refuses an output that resolves to one of its inputs (the same path, a
symbolic link to it, a hard link of it); ``--in-place`` writes through a link and keeps the
file's format; ``-o DIR/`` is a folder, ``-o -`` is standard output where one output makes
sense; errors are one line with the same exit code with or without ``--debug``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmalign import subtitles as S
from mmalign.cli import app
from mmalign.errors import OutputError, UsageError
from mmalign.fileio import atomic_write, check_output


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_refused(result, code: int, *contains: str):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in contains:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def digests(sample):
    return {p.name: digest(p) for p in sample.iterdir()}


def unchanged(sample, digests):
    assert {p.name: digest(p) for p in sample.iterdir() if p.name in digests} == digests
    assert not [p.name for p in sample.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------ no output on an input


@pytest.mark.parametrize("target", ["media", "media-symlink", "media-hardlink", "subs-symlink"])
def test_sync_never_writes_over_an_input(sample, digests, target):
    media, subs = sample / "sample.mp4", sample / "sample.mistimed.vtt"
    out = {
        "media": media,
        "media-symlink": sample / "link.srt",
        "media-hardlink": sample / "hard.srt",
        "subs-symlink": sample / "subs-link.vtt",
    }[target]
    if target == "media-symlink":
        out.symlink_to(media)
    elif target == "media-hardlink":
        os.link(media, out)
    elif target == "subs-symlink":
        out.symlink_to(subs)
    result = run("sync", media, subs, "-o", out)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.output
    unchanged(sample, digests)
    assert out.is_symlink() == target.endswith("symlink")


def test_sync_plot_never_writes_over_an_input(sample, digests):
    result = run(
        "sync",
        sample / "sample.vtt",
        sample / "sample.mistimed.vtt",
        "--plot",
        sample / "sample.mp4",
        "-o",
        sample / "out.vtt",
    )
    assert_refused(result, 2)  # the media's name does not end in .png; a .png input is checked too
    png = sample / "input.png"
    png.write_bytes(b"\x89PNG not really")
    result = run("sync", png, sample / "sample.mistimed.vtt", "--plot", png, "-o", sample / "out.vtt")
    assert_refused(result, 2, "input.png")
    assert png.read_bytes() == b"\x89PNG not really"
    unchanged(sample, digests)


def test_align_never_writes_over_an_input(sample, digests):
    a, b = sample / "sample.vtt", sample / "sample.mistimed.vtt"
    assert_refused(run("align", a, b, "-o", a), 2, "would overwrite the input")
    link = sample / "b-link.json"
    link.symlink_to(b)
    assert_refused(run("align", a, b, "-o", link), 2)
    assert link.is_symlink()
    unchanged(sample, digests)


def test_extract_never_writes_over_an_input(sample, digests):
    hard = sample / "hard.safetensors"
    os.link(sample / "sample.vtt", hard)
    assert_refused(run("extract", "subs", hard, "-o", sample / "sample.vtt"), 2)
    assert_refused(run("extract", "subs", sample / "sample.vtt", "-o", hard), 2)
    unchanged(sample, digests)


def test_check_output_follows_links(tmp_path):
    src = tmp_path / "in.srt"
    src.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(src)
    hard = tmp_path / "hard"
    os.link(src, hard)
    for out in (src, link, hard):
        with pytest.raises(UsageError):
            check_output(out, [src])
    check_output(tmp_path / "new.srt", [src, None])  # a new file is no input


# ------------------------------------------------------------------ --in-place


def test_in_place_writes_through_a_symlink(sample):
    real = sample / "real.vtt"
    real.write_bytes((sample / "sample.mistimed.vtt").read_bytes())
    link = sample / "link.vtt"
    link.symlink_to(real)
    result = run("sync", sample / "sample.vtt", link, "--in-place")
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and Path(os.readlink(link)) == real
    assert digest(real) != digest(sample / "sample.mistimed.vtt")  # the target got the new timing
    assert S.read(real).format == "vtt"
    assert not [p for p in sample.iterdir() if p.name.endswith(".tmp")]


def test_in_place_keeps_the_format(sample, digests):
    srt = sample / "subs.srt"
    S.read(sample / "sample.mistimed.vtt").write(srt)
    before = digest(srt)
    assert_refused(run("sync", sample / "sample.vtt", srt, "--in-place", "--format", "vtt"), 2, "--in-place", "srt")
    assert digest(srt) == before
    # a file whose name does not say its format is written back in the format it was read as
    odd = sample / "subs.txt"
    odd.write_bytes(srt.read_bytes())
    result = run("sync", sample / "sample.vtt", odd, "--in-place")
    assert result.exit_code == 0, result.stderr
    assert odd.read_text().lstrip().startswith("1\n") and "-->" in odd.read_text()
    assert S.read(odd).format == "srt"
    assert_refused(run("sync", sample / "sample.vtt", odd, "--in-place", "--format", "vtt"), 2, "--in-place")


# ------------------------------------------------------------------ -o DIR/ and -o -


def test_output_dir_with_slash_is_a_folder(sample):
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", f"{sample / 'new'}/")
    assert result.exit_code == 0, result.stderr
    assert (sample / "new").is_dir() and (sample / "new" / "sample.mistimed.synced.vtt").is_file()
    result = run("extract", "subs", sample / "sample.vtt", "-o", f"{sample / 'feats'}/", "--features", "activity")
    assert result.exit_code == 0, result.stderr
    assert (sample / "feats" / "sample.text.safetensors").is_file()
    result = run("align", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", f"{sample / 'maps'}/")
    assert result.exit_code == 0, result.stderr
    assert json.loads((sample / "maps" / "sample.sample.mistimed.align.json").read_text())["timemap"]


def test_output_in_a_missing_folder_without_slash_is_refused(sample):
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", sample / "nope" / "x.vtt")
    assert_refused(result, 2, "does not exist")
    assert not (sample / "nope").exists()


def test_dash_is_standard_output_where_one_output_makes_sense(sample):
    from safetensors.numpy import load

    result = run("extract", "subs", sample / "sample.vtt", "-o", "-", "--features", "activity")
    assert result.exit_code == 0, result.stderr
    assert not (sample / "-").exists() and not Path("-").exists()
    tensors = load(result.stdout_bytes)
    assert tensors["text.activity"].shape[1] == 1
    result = run("align", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", "-", "--no-path")
    assert result.exit_code == 0, result.stderr
    assert "timemap" in json.loads(result.stdout)
    assert not Path("-").exists()
    assert_refused(run("extract", "all", sample / "sample.mp4", "-o", "-"), 2, "-o -")
    assert_refused(run("export", sample / "sample.mp4", sample / "sample.vtt", "-o", "-"), 2, "-o -")
    assert_refused(run("align", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", "-", "--json"), 2)


def test_npz_to_standard_output(sample):
    import numpy as np

    result = run("extract", "subs", sample / "sample.vtt", "-o", "-", "--format", "npz", "--features", "activity")
    assert result.exit_code == 0, result.stderr
    with np.load(io.BytesIO(result.stdout_bytes)) as z:
        assert "text.activity" in z.files


# ------------------------------------------------------------------ errors


def test_unwritable_output_names_the_users_path(sample, tmp_path):
    out = "/proc/mmalign-test.vtt"  # no one may create files here, root included
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", out)
    assert_refused(result, 5, out)
    assert ".tmp" not in result.stderr
    with pytest.raises(OutputError, match="mmalign-test.bin"):
        atomic_write("/proc/mmalign-test.bin", b"x")


def test_debug_keeps_the_exit_code(sample):
    for args, code in (
        (("sync", sample / "missing.mp4", sample / "sample.vtt"), 3),
        (("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "--encoding", "nope"), 2),
    ):
        plain, debug = run(*args), run(*args, "--debug")
        assert plain.exit_code == debug.exit_code == code
        assert "Traceback" in debug.stderr and "Traceback" not in plain.stderr
        assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()


@pytest.mark.parametrize(
    "args",
    [
        ("sync", "--bogus", "a", "b"),
        ("sync", "a"),
        ("extract", "audio", "x", "--fps", "2"),
        ("sync", "a", "b", "--detector", "nope"),
    ],
)
def test_usage_error_is_one_line_and_a_hint(args):
    result = run(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: see 'mmalign")


def test_failing_plot_still_writes_the_subtitles(sample, monkeypatch):
    import mmalign.plot as plot_mod

    pytest.importorskip("matplotlib")

    def broken(result, path):
        raise RuntimeError("no renderer")

    monkeypatch.setattr(plot_mod, "plot_sync", broken)
    out = sample / "out.vtt"
    result = run("sync", sample / "sample.vtt", sample / "sample.mistimed.vtt", "-o", out, "--plot", sample / "p.png")
    assert result.exit_code == 0, result.stderr
    assert out.is_file()
    assert "warning:" in result.stderr and "no renderer" in result.stderr
    assert not (sample / "p.png").exists()
