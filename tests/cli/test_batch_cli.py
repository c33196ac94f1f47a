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


# ---------------------------------------------------------------- batch extract


@pytest.mark.slow
def test_batch_extract_decodes_each_media_once_with_a_text_file_per_subtitle_file(tree, tmp_path):
    shutil.copy(SAMPLE_DIR / "sample.vtt", tree / "film.fr.vtt")
    out = tmp_path / "out"
    result = run("batch", "extract", tree, "-o", out, "-j", "2", "--video-features", "none", "--json")
    assert result.exit_code == 3, result.output  # the broken ep2.mp4
    status = {r["key"]: r["status"] for r in map(json.loads, result.stdout.splitlines())}
    assert status == {
        str(tree / "notes.en.srt"): "skipped",
        "film": "done",
        "season 1/ep1": "done",
        "season 1/ep2": "failed",
    }
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.safetensors")) == [
        "film.audio.safetensors",
        "film.en.text.safetensors",
        "film.fr.text.safetensors",
        "season 1/ep1.audio.safetensors",
        "season 1/ep1.text.safetensors",
    ]
    failed = next(r for r in _records(out) if r["status"] == "failed")
    assert failed["error"].startswith(str(tree / "season 1" / "ep2.mp4"))
    single = tmp_path / "single"
    args = ("--video-features", "none", "-q")
    assert run("extract", "all", tree / "film.mp4", tree / "film.en.vtt", "-o", single, *args).exit_code == 0
    assert (out / "film.audio.safetensors").read_bytes() == (single / "film.audio.safetensors").read_bytes()
    assert (out / "film.en.text.safetensors").read_bytes() == (single / "film.text.safetensors").read_bytes()

    (out / "film.fr.text.safetensors").unlink()  # a lost output: that job runs again, the others resume
    again = run("batch", "extract", tree, "-o", out, "--video-features", "none", "--json")
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    assert {r["key"]: r.get("resumed", False) for r in lines if r["key"] != str(tree / "notes.en.srt")} == {
        "film": False,
        "season 1/ep1": True,
        "season 1/ep2": True,
    }
    assert (out / "film.fr.text.safetensors").exists()


# ---------------------------------------------------------------- batch export


def _export_files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} | {
        "results.jsonl": b""
    }


EXPORT = ("--video-features", "none", "--audio-features", "rms,speech", "--shard-size", "10")


@pytest.mark.slow
def test_batch_export_is_one_dataset_the_same_for_any_jobs_and_after_a_kill(tree, tmp_path):
    from mmalign.data import AlignedDataset

    one, two = tmp_path / "one", tmp_path / "two"
    first = run("batch", "export", tree, "-o", one, "-j", "1", *EXPORT)
    assert first.exit_code == 3, first.output
    assert "season 1/ep2.mp4: not a media file" in first.stderr and "notes.en.srt: no media file" in first.stderr
    assert "export: 32 samples from 2 sources in" in first.stderr
    assert run("batch", "export", tree, "-o", two, "-j", "2", "-q", *EXPORT).exit_code == 3
    assert _export_files(one) == _export_files(two)  # byte for byte, the log aside
    ds = AlignedDataset(one)
    assert len(ds) == 32 and ds[0]["id"] == "film.en/cue-000000" and ds[16]["source"] == "season 1/ep1"
    assert set(ds[0]) >= {"audio.rms", "audio.speech", "text.activity", "text.embedding"}

    # kill -9 while season 1/ep1 was running: its record and staged source never came
    log = two / "results.jsonl"
    kept = [line for line in log.read_text().splitlines() if '"key":"season 1/ep1"' not in line]
    log.write_text("\n".join(kept) + '\n{"key":"season 1/ep1","stat')  # and a torn last line
    (two / "sources" / "season 1" / "ep1.safetensors").unlink()
    (two / "manifest.jsonl").unlink()
    again = run("batch", "export", tree, "-o", two, "-j", "2", "--json", *EXPORT)
    records = [json.loads(line) for line in again.stdout.splitlines()]
    ran = [r["key"] for r in records if r.get("status") in ("done", "failed") and not r.get("resumed")]
    assert ran == ["season 1/ep1"]
    assert records[-1]["export"]["samples"] == 32
    assert _export_files(one) == _export_files(two)


@pytest.mark.slow
def test_batch_export_on_a_dask_cluster_matches_local_processes(tree, tmp_path):
    pytest.importorskip("distributed")
    local = run("batch", "export", tree, "-o", tmp_path / "local", "-j", "2", "-q", "--fuse", "concat", *EXPORT)
    dask = run(
        "batch", "export", tree, "-o", tmp_path / "dask", "--scheduler", "local:2", "-q", "--fuse", "concat", *EXPORT
    )
    assert local.exit_code == dask.exit_code == 3
    assert _export_files(tmp_path / "local") == _export_files(tmp_path / "dask")


def test_batch_export_refuses_a_folder_with_another_export_before_running(tree, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset.json").write_text(json.dumps({"format": "mmalign-export", "config_hash": "other"}))
    result = run("batch", "export", tree, "-o", out, *EXPORT)
    assert result.exit_code == 2 and "holds an export with other settings" in result.stderr
    assert "--overwrite" in result.stderr and not (out / "results.jsonl").exists()


def test_batch_export_makes_matching_pairs_and_masks_as_export_does(tree, tmp_path):
    from mmalign.data import AlignedDataset

    out = tmp_path / "pairs"
    r = run("batch", "export", tree, "-o", out, "--pool", "none", "--pairs", "matching", "--negatives", "2",
            "--hard-negatives", "same-source", "--mask", "audio:0.2:5", "--mask", "text:0.1", *EXPORT)  # fmt: skip
    assert r.exit_code == 3, r.output  # season 1/ep2.mp4 is no media; the two others are exported
    info = json.loads((out / "dataset.json").read_text())
    assert info["format_version"] == 2 and info["config"]["mask"] == ["audio:0.2:5", "text:0.1:1"]
    assert info["config"]["hard_negatives"] == "same-source" and set(info["masks"]) == {"audio", "text"}
    recs = AlignedDataset(out).records
    assert [rec.extra["label"] for rec in recs[:3]] == [1, 0, 0] and len(recs) == 3 * 32
    source = {rec.id: rec.source for rec in recs}
    negatives = [rec for rec in recs if rec.extra["label"] == 0]
    assert all(source[rec.extra["pair_of"]] == source[rec.extra["text_from"]] for rec in negatives)
    sample = AlignedDataset(out)[0]
    assert sample["audio.rms.masked"].dtype == bool and sample["audio.rms.masked"].any()


def test_batch_export_refuses_pair_options_without_pairs_in_one_line(tree, tmp_path):
    r = run("batch", "export", tree, "-o", tmp_path / "out", "--negatives", "2", *EXPORT)
    assert r.exit_code == 2 and r.stderr == "error: --negatives is for --pairs matching\n"
    r = run("batch", "export", tree, "-o", tmp_path / "out", "--mask", "audio:0.2", *EXPORT)
    assert r.exit_code == 2 and r.stderr == "error: --mask hides frames of frame sequences: it needs --pool none\n"
    assert not (tmp_path / "out" / "results.jsonl").exists()
