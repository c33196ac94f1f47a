"""mmalign.export (grids, pooling, shards, resume) and mmalign.data (dataset, collate)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from mmalign.data import AlignedDataset, collate
from mmalign.errors import UsageError
from mmalign.export import Exporter, Grid, frame_grid, pool_segments, segment_frames, window_grid
from mmalign.timeline import FeatureSeq, TimeMap


def seq(n=50, d=3, hop=0.1, t0=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return FeatureSeq(rng.normal(size=(n, d)).astype(np.float32), hop, t0, "audio.x")


# ----------------------------------------------------------------------------- grids


def test_frame_grid_covers_the_duration_back_to_back():
    g = frame_grid(1.05, 0.25)
    np.testing.assert_allclose(g.starts, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(g.ends, [0.25, 0.5, 0.75, 1.0, 1.05])
    assert g.ids[0] == "frame-000000" and g.kind == "frames" and g.texts == [None] * 5


def test_window_grid():
    g = window_grid(10.0, 4.0, 2.0)
    np.testing.assert_allclose(g.starts, [0, 2, 4, 6])
    np.testing.assert_allclose(g.ends, [4, 6, 8, 10])
    assert len(window_grid(3.0, 4.0, 2.0)) == 1  # shorter than a window: one short window
    with pytest.raises(UsageError):
        window_grid(10.0, 0.0, 1.0)


# ----------------------------------------------------------------------------- pooling


def naive_pool(s, starts, ends, how):
    t = s.times
    out, valid = [], []
    for a, b in zip(starts, ends):
        inside = s.values[(t >= a - 1e-9) & (t < b - 1e-9)]
        valid.append(len(inside) > 0)
        if not len(inside):
            out.append(np.zeros(s.values.shape[1]))
        else:
            out.append({"mean": inside.mean(0), "max": inside.max(0), "first": inside[0], "last": inside[-1]}[how])
    return np.array(out, np.float32), np.array(valid)


@pytest.mark.parametrize("how", ["mean", "max", "first", "last"])
@pytest.mark.parametrize("seed", range(3))
def test_pooling_matches_a_plain_loop(how, seed):
    s = seq(seed=seed, t0=0.05)
    rng = np.random.default_rng(10 + seed)
    starts = np.sort(rng.uniform(-1, 6, 20))
    ends = starts + rng.uniform(0, 1.5, 20)
    got, valid = pool_segments(s, starts, ends, how)
    want, want_valid = naive_pool(s, starts, ends, how)
    np.testing.assert_array_equal(valid, want_valid)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_overlap_pooling_weights_frames_by_their_share():
    # frames at 0, 1, 2 (hop 1): cells [-0.5, 0.5), [0.5, 1.5), [1.5, 2.5)
    s = FeatureSeq(np.array([[0.0], [10.0], [20.0]], np.float32), 1.0, 0.0)
    got, valid = pool_segments(s, [0.0, 1.0, 0.9, 5.0], [1.0, 2.0, 1.1, 6.0], "overlap")
    np.testing.assert_allclose(got[:, 0], [5.0, 15.0, 10.0, 0.0], atol=1e-5)
    assert valid.tolist() == [True, True, True, False]
    # a segment shorter than a frame still gets the frame it falls in; mean does not
    assert pool_segments(s, [1.6], [1.9], "overlap")[0][0, 0] == pytest.approx(20.0)
    values, valid = pool_segments(s, [1.6], [1.9], "mean")  # no frame time inside
    assert not valid[0] and values[0, 0] == 0


def test_timemap_brings_a_modality_onto_the_grid():
    s = seq(n=100, hop=0.1)  # frames at 0.0 .. 9.9 on the modality's own clock
    tm = TimeMap.linear(1.0, 2.0)  # the modality runs 2 s behind the grid
    i0, i1 = segment_frames(s, [2.0], [3.0], timemap=tm)
    assert (i0[0], i1[0]) == (0, 10)  # grid 2-3 s = own 0-1 s
    got, _ = pool_segments(s, [2.0], [3.0], "mean", timemap=tm)
    np.testing.assert_allclose(got[0], s.values[:10].mean(0), rtol=1e-5)


# ----------------------------------------------------------------------------- writing and reading


def write_export(out, n=7, shard_size=3, config=None, webdataset=False):
    grid = Grid(
        np.arange(n) * 1.0,
        np.arange(n) + 0.5,
        [f"cue-{i:06d}" for i in range(n)],
        [f"line {i}" for i in range(n)],
        "cues",
    )

    def samples(lo, hi):
        for k in range(lo, hi):
            yield {"audio.x": np.full((k % 3 + 1, 2), k, np.float32), "text.v": np.full(4, -k, np.float32)}

    ex = Exporter(out, config or {"grid": "cues"}, shard_size=shard_size, webdataset=webdataset)
    ex.write_header({"audio.x": {}, "text.v": {}})
    res = ex.add_source("sha-a", {"name": "film", "sha256": "sha-a"}, grid, samples)
    ex.finish({"audio.x": {}, "text.v": {}})
    return res


def test_export_writes_shards_manifest_and_dataset(tmp_path):
    out = tmp_path / "exp"
    res = write_export(out, webdataset=True)
    assert res.samples == 7 and not res.skipped
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dataset.json", "manifest.jsonl", "progress.jsonl"] + [
        f"shard-00000{i}.{ext}" for i in range(3) for ext in ("jsonl", "safetensors", "tar")
    ]
    recs = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == [f"film/cue-{i:06d}" for i in range(7)]
    assert recs[4]["shard"] == "shard-000001.safetensors" and recs[4]["row"] == 1
    assert recs[4]["tensors"] == {"audio.x": [2, 2], "text.v": [4]} and recs[4]["text"] == "line 4"
    # the plain safetensors reader sees each sample's tensors
    shard = load_file(str(out / "shard-000001.safetensors"))
    np.testing.assert_array_equal(shard["1/audio.x"], np.full((2, 2), 4, np.float32))
    info = json.loads((out / "dataset.json").read_text())
    assert info["samples"] == 7 and info["sources"][0]["name"] == "film" and info["config"] == {"grid": "cues"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files


def test_export_resumes_and_refuses_other_settings(tmp_path):
    out = tmp_path / "exp"
    write_export(out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    res = write_export(out)
    assert res.skipped and {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")} == before
    with pytest.raises(UsageError, match="other settings"):
        write_export(out, config={"grid": "frames"})
    # an interrupted run (no progress record) is redone
    (out / "progress.jsonl").unlink()
    assert not write_export(out).skipped


@pytest.mark.slow
def test_dataset_and_collate(tmp_path):
    torch = pytest.importorskip("torch")
    out = tmp_path / "exp"
    write_export(out)
    ds = AlignedDataset(out)
    assert len(ds) == 7
    item = ds[5]
    assert item["id"] == "film/cue-000005" and item["start"] == 5.0 and item["text"] == "line 5"
    np.testing.assert_array_equal(item["audio.x"], np.full((3, 2), 5, np.float32))
    batch = collate([ds[i] for i in range(4)])
    assert batch["audio.x"].shape == (4, 3, 2) and batch["audio.x"].dtype == torch.float32
    assert batch["audio.x.mask"].tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
        [True, False, False],
    ]
    assert batch["text.v"].shape == (4, 4) and batch["start"].dtype == torch.float64
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate, num_workers=0)
    assert sum(len(b["id"]) for b in loader) == 7
    with pytest.raises(UsageError):
        AlignedDataset(out, features=["video.nope"])
