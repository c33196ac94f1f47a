"""``mmalign batch sync``: a tree or a manifest, a results log, resume, Dask."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from mmalign.cli import app

from conftest import SAMPLE_DIR


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "season 1").mkdir(parents=True)
    shutil.copy(SAMPLE_DIR / "sample.mp4", src / "film.mp4")
    shutil.copy(SAMPLE_DIR / "sample.mistimed.vtt", src / "film.en.vtt")
    shutil.copy(SAMPLE_DIR / "sample.mp4", src / "season 1" / "ep1.mp4")
    shutil.copy(SAMPLE_DIR / "sample.mistimed.vtt", src / "season 1" / "ep1.vtt")
    (src / "season 1" / "ep2.mp4").write_bytes(b"not a video")
    shutil.copy(SAMPLE_DIR / "sample.mistimed.vtt", src / "season 1" / "ep2.vtt")
    (src / "notes.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nhi\n")
    return src


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_batch_sync_writes_the_same_files_as_sync_and_resumes(tree, tmp_path):
    out = tmp_path / "out"
    result = run("batch", "sync", tree, "-o", out, "-j", "2", "--json")
    assert result.exit_code == 3, result.output  # ep2.mp4 is broken: the worst job's code
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    status = {r["key"]: r["status"] for r in lines}
    assert status == {
        str(tree / "notes.en.srt"): "skipped",
        "film.en.vtt": "done",
        "season 1/ep1.vtt": "done",
        "season 1/ep2.vtt": "failed",
    }
    failed = next(r for r in lines if r["status"] == "failed")
    assert "ep2.mp4" in failed["error"] and failed["exit_code"] == 3
    single = tmp_path / "single.vtt"
    assert run("sync", tree / "film.mp4", tree / "film.en.vtt", "-o", single, "-q").exit_code == 0
    assert (out / "film.en.vtt").read_bytes() == single.read_bytes()
    assert (out / "season 1" / "ep1.vtt").read_bytes() == single.read_bytes()
    assert not (out / "season 1" / "ep2.vtt").exists()
    assert list(tree.rglob("*.synced*")) == []  # nothing beside the inputs

    again = run("batch", "sync", tree, "-o", out, "--json")
    assert [json.loads(line).get("resumed") for line in again.stdout.splitlines()][1:] == [True] * 3
    assert len(_records(out)) == 4  # nothing appended

    (tree / "season 1" / "ep2.mp4").unlink()
    shutil.copy(SAMPLE_DIR / "sample.mp4", tree / "season 1" / "ep2.mp4")
    fixed = run("batch", "sync", tree, "-o", out, "-q")
    assert fixed.exit_code == 0, fixed.output
    assert (out / "season 1" / "ep2.vtt").read_bytes() == single.read_bytes()


def test_batch_sync_from_a_manifest_on_stdin(tree, tmp_path):
    out = tmp_path / "out"
    line = json.dumps({"media": str(tree / "film.mp4"), "subs": str(tree / "film.en.vtt"), "out": "x/film.srt"})
    result = run("batch", "sync", "--manifest", "-", "-o", out, "-f", "srt", input=line + "\n")
    assert result.exit_code == 0, result.output
    assert (out / "x" / "film.srt").read_text().startswith("1\n")
    assert "batch sync: 1 jobs (1 done)" in result.stderr


def test_batch_sync_usage_errors(tree, tmp_path):
    result = run("batch", "sync", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "(ROOT...) or --manifest" in result.stderr
    bad = run("batch", "sync", "--manifest", "-", "-o", tmp_path / "out", input="{oops\n")
    assert bad.exit_code == 3 and "<stdin>:1: not a JSON object" in bad.stderr


@pytest.mark.slow
def test_batch_sync_on_a_dask_cluster_matches_local_processes(tree, tmp_path):
    pytest.importorskip("distributed")
    local = run("batch", "sync", tree, "-o", tmp_path / "local", "-j", "2", "-q")
    dask = run("batch", "sync", tree, "-o", tmp_path / "dask", "--scheduler", "local:2", "-q")
    assert local.exit_code == dask.exit_code == 3
    for name in ("film.en.vtt", "season 1/ep1.vtt"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()

    def comparable(out):
        drop = {"seconds", "output", "inputs"}
        return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True) for r in _records(out))

    assert comparable(tmp_path / "dask") == comparable(tmp_path / "local")


def test_batch_sync_check_gates_a_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SAMPLE_DIR / "sample.mp4", src / "good.mp4")
    shutil.copy(SAMPLE_DIR / "sample.vtt", src / "good.vtt")
    shutil.copy(SAMPLE_DIR / "sample.mp4", src / "late.mp4")
    shutil.copy(SAMPLE_DIR / "sample.mistimed.vtt", src / "late.vtt")
    out = tmp_path / "out"
    result = run("batch", "sync", src, "-o", out, "--check", "-j", "2")
    assert result.exit_code == 5, result.output
    assert "failed: " in result.stderr and "late.vtt: out of sync: 16 of 16 spoken cues" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["results.jsonl"]  # nothing else written
    good = next(r for r in _records(out) if r["key"] == "good.vtt")
    assert good["status"] == "done" and good["check"]["in_sync"] is True
