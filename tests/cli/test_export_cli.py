"""``mmalign export`` end to end on the sample clip, checked from the files alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from mmalign import subtitles as S
from mmalign.cli import app


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def records(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def synced_export(tmp_path_factory):
    """sample.mp4 + the mis-timed subtitles, synced, one sample per cue, frames kept."""
    from conftest import SAMPLE_DIR

    out = tmp_path_factory.mktemp("export") / "data"
    result = run(
        "export",
        SAMPLE_DIR / "sample.mp4",
        SAMPLE_DIR / "sample.mistimed.vtt",
        "-o",
        out,
        "--sync",
        "--grid",
        "cues",
        "--fuse",
        "none",
        "--pool",
        "none",
        "--text-features",
        "activity,embedding",
        "--json",
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_a_folder_is_paired_as_batch_export_pairs_it(sample, tmp_path):
    # nested folders, a tagged subtitle name, and media with no subtitles at all
    src = tmp_path / "src"
    (src / "season1").mkdir(parents=True)
    (sample / "sample.mp4").rename(src / "season1" / "film.mp4")
    (sample / "sample.vtt").rename(src / "season1" / "film.en.vtt")
    (src / "notes.txt").write_text("not media")
    out = tmp_path / "out"
    args = ["--grid", "windows", "--window", "8", "--stride", "8", "--fuse", "none"]
    result = run("export", src, "-o", out, *args, "--audio-features", "rms", "--video-features", "none", "--json")
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert {r["source"] for r in recs} == {"film"}
    assert all("text.activity" in r["tensors"] and not r["missing"] for r in recs)  # film.en.vtt was read
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("export", empty, "-o", tmp_path / "out2", *args)
    assert result.exit_code == 3 and "no media files" in result.output


@pytest.mark.slow
def test_every_modality_lies_inside_its_synced_cue(synced_export):
    out, summary = synced_export
    from conftest import SAMPLE_DIR

    truth = S.read(SAMPLE_DIR / "sample.vtt").cues  # the true timing the sync should recover
    recs = records(out)
    assert summary["samples"] == len(recs) == len(truth) == 16
    shards = {}
    for rec, cue in zip(recs, truth):
        assert rec["start"] == pytest.approx(cue.start, abs=0.1) and rec["end"] == pytest.approx(cue.end, abs=0.1)
        assert rec["text"] == cue.text
        shard = shards.setdefault(rec["shard"], load_file(str(out / rec["shard"])))
        for feature in ("audio.logmel", "video.hist", "video.luma", "video.motion", "text.activity", "text.embedding"):
            values = shard[f"{rec['row']}/{feature}"]
            times = shard[f"{rec['row']}/{feature}.times"]
            assert values.shape == tuple(rec["tensors"][feature]) and len(times) == len(values) > 0, feature
            assert times.min() >= rec["start"] - 1e-6 and times.max() < rec["end"], feature
        # text activity is on throughout its own cue (partly on in the edge frames)
        act = shard[f"{rec['row']}/text.activity"]
        assert act.min() > 0 and np.median(act) == pytest.approx(1.0)
    info = json.loads((out / "dataset.json").read_text())
    assert info["config"]["sync"] is True and info["samples"] == 16
    assert info["sources"][0]["sync"]["confidence"] > 0.5
    assert len(info["sources"][0]["media"]["sha256"]) == 64
    assert "audio.logmel" in info["features"]["order"]


@pytest.mark.slow
def test_reading_back_with_the_dataset_and_training_a_few_steps(synced_export):
    torch = pytest.importorskip("torch")
    from mmalign.data import AlignedDataset, collate

    out, _ = synced_export
    ds = AlignedDataset(out, features=["audio.logmel", "text.embedding"])
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, collate_fn=collate, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    batch = next(iter(loader))
    assert batch["audio.logmel"].shape[0] == 4 and batch["audio.logmel.mask"].dtype == torch.bool
    # mean-pool each padded sequence under its mask, then a linear classifier on both modalities
    model = torch.nn.Linear(64 + 128, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    torch.manual_seed(0)
    for _ in range(5):
        for b in loader:

            def pooled(name, b=b):
                m = b[name + ".mask"].unsqueeze(-1).float()
                return (b[name] * m).sum(1) / m.sum(1).clamp(min=1)

            x = torch.cat([pooled("audio.logmel") / 100, pooled("text.embedding")], dim=1)
            y = (b["end"] - b["start"] > 2.5).long()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.isfinite(losses).all()


@pytest.mark.slow
def test_pooled_fused_export_and_resume(sample, tmp_path):
    out = tmp_path / "fused"
    args = [
        "export",
        sample / "sample.mp4",
        sample / "sample.vtt",
        "-o",
        out,
        "--pool",
        "overlap",
        "--fuse",
        "sum",
        "--dim",
        "16",
        "--json",
    ]
    first = run(*args)
    assert first.exit_code == 0, first.output
    recs = records(out)
    assert len(recs) == 16 and all(r["tensors"] == {"fused": [16]} for r in recs)
    shard = load_file(str(out / "shard-000000.safetensors"))
    assert shard["0/fused"].dtype == np.float32 and np.isfinite(shard["0/fused"]).all()
    before = (out / "shard-000000.safetensors").read_bytes()
    info = json.loads((out / "dataset.json").read_text())
    again = run(*args)
    assert again.exit_code == 0 and json.loads(again.stdout)["sources"][0]["skipped"] is True
    assert (out / "shard-000000.safetensors").read_bytes() == before
    assert json.loads((out / "dataset.json").read_text())["features"] == info["features"]  # kept on resume
    # other settings in the same folder are refused, unless --overwrite
    other = run("export", sample / "sample.mp4", sample / "sample.vtt", "-o", out, "--pool", "max")
    assert other.exit_code == 2 and "other settings" in other.stderr
    assert (
        run(
            "export", sample / "sample.mp4", sample / "sample.vtt", "-o", out, "--pool", "max", "--overwrite", "-q"
        ).exit_code
        == 0
    )
    assert json.loads((out / "dataset.json").read_text())["config"]["pool"] == "max"


def test_windows_without_subtitles_and_deterministic_bytes(sample, tmp_path):
    outs = []
    for name in ("w1", "w2"):
        out = tmp_path / name
        result = run(
            "export",
            sample / "sample.mp4",
            "-o",
            out,
            "--grid",
            "windows",
            "--window",
            "4",
            "--stride",
            "2",
            "--fuse",
            "compact-bilinear",
            "--dim",
            "64",
            "--audio-features",
            "logmel,rms",
            "--video-features",
            "none",
            "-q",
        )
        assert result.exit_code == 0, result.output
        outs.append(load_file(str(out / "shard-000000.safetensors")))
    assert outs[0].keys() == outs[1].keys() and len(outs[0]) == 30
    assert all(outs[0][k].tobytes() == outs[1][k].tobytes() for k in outs[0])  # same seed, same bytes
    recs = records(tmp_path / "w1")
    assert recs[1]["start"] == 2.0 and recs[1]["end"] == 6.0 and recs[0]["text"] is None


@pytest.mark.slow
def test_a_bad_source_is_reported_and_the_others_exported(sample, tmp_path):
    out = tmp_path / "mixed"
    (tmp_path / "broken.mp4").write_bytes(b"not a film")
    result = run(
        "export",
        tmp_path / "broken.mp4",
        sample / "sample.vtt",
        sample / "sample.mp4",
        sample / "sample.vtt",
        "-o",
        out,
        "--json",
    )
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["sources"][0]["exit_code"] == 3 and data["sources"][1]["samples"] == 16
    assert len(records(out)) == 16


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid", "frames"], "--grid frames needs --grid-hop"),
        (["--fuse", "sum"], "needs --dim"),
        (["--pool", "none", "--fuse", "concat"], "choose a --pool other than none"),
        (["--audio-features", "none", "--video-features", "none", "--text-features", "none"], "nothing to export"),
        (["--pool", "median"], "unknown pooling"),
    ],
)
def test_export_usage_errors(sample, tmp_path, args, message):
    result = run("export", sample / "sample.mp4", sample / "sample.vtt", "-o", tmp_path / "x", *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_fused_sources_share_one_width(sample, tmp_path):
    import soundfile as sf

    from mmalign.media import load_audio

    wav = sample / "voice.wav"  # the same speech with no picture, and its subtitles
    sf.write(wav, load_audio(sample / "sample.mp4", 16000)[0], 16000)
    (sample / "voice.vtt").write_text((sample / "sample.vtt").read_text())
    out = tmp_path / "fused2"
    result = run(
        "export",
        sample / "sample.mp4",
        sample / "sample.vtt",
        wav,
        sample / "voice.vtt",
        "-o",
        out,
        "--fuse",
        "concat",
        "--json",
    )
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert len(recs) == 32 and len({tuple(r["tensors"]["fused"]) for r in recs}) == 1
    assert all("video.hist" in r["missing"] for r in recs[16:]) and not any(r["missing"] for r in recs[:16])
    # the other way round, the film has features the first source lacks: refused, the first is kept
    out = tmp_path / "fused3"
    result = run(
        "export",
        wav,
        sample / "voice.vtt",
        sample / "sample.mp4",
        sample / "sample.vtt",
        "-o",
        out,
        "--fuse",
        "concat",
        "--json",
    )
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert "which the sources before it lack" in data["sources"][1]["error"] and len(records(out)) == 16


def test_frame_grid_means_match_the_extracted_features(sample, tmp_path):
    """Export and extract agree: each 1 s sample is the mean of the log-mel frames inside it."""
    from mmalign.features.io import load_features

    out = tmp_path / "frames"
    assert (
        run(
            "export",
            sample / "sample.mp4",
            "-o",
            out,
            "--grid",
            "frames",
            "--grid-hop",
            "1",
            "--video-features",
            "none",
            "--text-features",
            "none",
            "-q",
        ).exit_code
        == 0
    )
    feats = tmp_path / "a.safetensors"
    assert run("extract", "audio", sample / "sample.mp4", "-o", feats, "--features", "logmel", "-q").exit_code == 0
    logmel = load_features(feats)["audio.logmel"]
    t = logmel.times
    recs = records(out)
    assert len(recs) == 64 and recs[10]["start"] == 10.0 and recs[10]["end"] == 11.0
    shard = load_file(str(out / recs[0]["shard"]))
    for rec in recs[:-1]:
        inside = (t >= rec["start"]) & (t < rec["end"])
        want = logmel.values[inside].mean(axis=0)
        np.testing.assert_allclose(shard[f"{rec['row']}/audio.logmel"], want, rtol=1e-4, atol=1e-3)


def test_a_failing_source_is_one_unwrapped_error_line_even_when_quiet(tmp_path):
    """Each failing source is one ``error:`` line (never wrapped, even with -q); the summary
    line comes only when some source was exported."""
    from conftest import SAMPLE_DIR

    bad = tmp_path / ("a-rather-long-name-so-that-a-wrapped-line-would-show-" * 2 + ".mp4")
    bad.write_text("not media at all")
    result = run("export", bad, "-o", tmp_path / "out", "--video-features", "none")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}"), result.stderr
    result = run("export", bad, "-o", tmp_path / "out", "--video-features", "none", "-q")
    assert result.exit_code == 3 and result.stderr.strip().splitlines() == lines
    result = run(
        "export",
        SAMPLE_DIR / "sample.mp4",
        SAMPLE_DIR / "sample.vtt",
        bad,
        "-o",
        tmp_path / "out2",
        "--video-features",
        "none",
    )
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert [ln for ln in lines if ln.startswith("error:")] == [lines[1]] and lines[1].startswith(f"error: {bad}")
    assert lines[-1].startswith("wrote ") and lines[-1].endswith("1 failed (see above)")


def test_export_hop_is_grid_hop_and_the_old_flag_still_works(sample, tmp_path):
    out = tmp_path / "old"
    args = ["--grid", "frames", "--audio-features", "rms", "--video-features", "none", "--text-features", "none", "-q"]
    result = run("export", sample / "sample.mp4", "-o", out, "--hop", "5", *args)
    assert result.exit_code == 0, result.output
    assert "warning: --hop is deprecated since 0.2.0 and goes in 0.3.0; use --grid-hop" in result.stderr
    new = run("export", sample / "sample.mp4", "-o", out, "--grid-hop", "5", *args[:-1])
    assert new.exit_code == 0 and "already exported" in new.stderr and "deprecated" not in new.stderr
    assert json.loads((out / "dataset.json").read_text())["config"]["hop"] == 5.0


def test_export_video_stream_that_does_not_exist(sample, tmp_path):
    only_video = ["--audio-features", "none", "--text-features", "none", "--video-features", "luma", "--fps", "1"]
    result = run(
        "export", sample / "sample.mp4", sample / "sample.vtt", "-o", tmp_path / "x", "--video-stream", "3", *only_video
    )
    assert result.exit_code == 2 and "video stream 3 does not exist" in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch >= 2.10 deprecates torch.jit
def test_export_width_stream_and_embed_as_extract_video(sample, tmp_path):
    import warnings

    torch = pytest.importorskip("torch")

    class MeanColour(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(1, 2, 3))[:, None]], dim=1)

    model = tmp_path / "mean_colour.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(MeanColour()), str(model))
    out = tmp_path / "data"
    only_video = ["--audio-features", "none", "--text-features", "none", "--video-features", "luma", "--fps", "1"]
    args = ["--video-stream", "0", "--width", "64", "--embed", model, "-q", *only_video]
    result = run("export", sample / "sample.mp4", sample / "sample.vtt", "-o", out, *args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "dataset.json").read_text())
    assert info["config"]["width"] == 64 and info["config"]["video_stream"] == 0
    assert info["config"]["embed"] == str(model)
    assert info["features"]["order"] == ["video.embed", "video.luma"]
    assert info["features"]["features"]["video.embed"]["dim"] == 4
    recs = records(out)
    assert len(recs) == 16 and recs[0]["tensors"] == {"video.embed": [4], "video.luma": [2]}
    missing = run("export", sample / "sample.mp4", "-o", tmp_path / "y", "--embed", tmp_path / "no.pt", *only_video)
    assert missing.exit_code == 3 and "no.pt: model file not found" in missing.stderr


def test_pairs_and_masks_by_command(sample, tmp_path):
    out = tmp_path / "pairs"
    r = run("export", sample / "sample.mp4", sample / "sample.vtt", "-o", out, "--pool", "none", "--pairs", "matching",
            "--negatives", "2", "--hard-negatives", "nearest", "--mask", "audio:0.2:5", "--mask", "text:0.1",
            "--video-features", "luma")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[-1].startswith("wrote 16 samples (and 32 negatives) from 1 of 1 sources")
    recs = records(out)
    assert [rec["label"] for rec in recs[:3]] == [1, 0, 0] and recs[1]["pair_of"] == recs[0]["id"]
    info = json.loads((out / "dataset.json").read_text())
    assert info["format_version"] == 2 and info["config"]["mask"] == ["audio:0.2:5", "text:0.1:1"]
    assert set(info["masks"]) == {"audio", "text"} and info["pairs"]["label_ratio"] == pytest.approx(1 / 3, abs=1e-6)
    r = run("export", sample / "sample.mp4", sample / "sample.vtt", "-o", tmp_path / "x", "--mask", "audio:0.2")
    assert r.exit_code == 2 and r.stderr == "error: --mask hides frames of frame sequences: it needs --pool none\n"
    r = run("export", sample / "sample.mp4", sample / "sample.vtt", "-o", tmp_path / "x", "--negatives", "2")
    assert r.exit_code == 2 and r.stderr == "error: --negatives is for --pairs matching\n"
    r = run("export", sample / "sample.mp4", "-o", tmp_path / "x", "--pairs", "matching", "--grid", "frames",
            "--grid-hop", "1")  # fmt: skip
    assert r.exit_code == 2 and "--pairs matching pairs each cue's media with another cue's text" in r.stderr
