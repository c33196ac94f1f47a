"""stage_source + assemble: sources staged in any order, one export in the order given."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load

from mmalign.data import AlignedDataset
from mmalign.errors import InputError, UsageError
from mmalign.export import ExportOptions, assemble, export_sources, stage_source
from mmalign.export.shards import safetensors_bytes

RMS = {"audio_features": ("rms", "speech"), "video_features": (), "text_features": ()}


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_assembly_does_not_depend_on_the_order_sources_were_staged(make_media, tmp_path):
    a = make_media("a.wav", seconds=2.0)
    b = make_media("b.wav", tones=(880.0,), seconds=3.0)
    opts = ExportOptions(grid="windows", window=1.0, stride=0.5, **RMS)
    for name, first in (("ab", [a, b]), ("ba", [b, a])):  # staged in two orders
        for media in first:
            assert stage_source(media, None, tmp_path / name / f"{media.stem}.safetensors", opts) > 0
    sources = [("x/a", tmp_path / "ab" / "a.safetensors"), ("x/b", tmp_path / "ab" / "b.safetensors")]
    one = assemble(sources, tmp_path / "one", opts, shard_size=3)
    two = assemble([(n, tmp_path / "ba" / p.name) for n, p in sources], tmp_path / "two", opts, shard_size=3)
    assert one["samples"] == two["samples"] == 3 + 5
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    ds = AlignedDataset(tmp_path / "one")
    assert len(ds) == 8 and ds[0]["id"] == "x/a/window-000000" and ds[3]["source"] == "x/b"
    # the same samples as one export_sources run over both
    plain = export_sources([(a, None), (b, None)], tmp_path / "plain", opts, shard_size=3)
    ref = AlignedDataset(tmp_path / "plain")
    assert plain["samples"] == 8
    for k in range(8):
        assert ds[k]["start"] == ref[k]["start"]
        np.testing.assert_array_equal(ds[k]["audio.rms"], ref[k]["audio.rms"])


def test_assembly_starts_afresh_and_fuses_over_every_source(make_media, tmp_path):
    a = make_media("a.wav", seconds=2.0)
    b = make_media("b.wav", seconds=2.0)
    windows = {"grid": "windows", "window": 1.0, "stride": 1.0}
    stage_source(a, None, tmp_path / "a.safetensors", ExportOptions(**windows, **RMS))
    stage_source(b, None, tmp_path / "b.safetensors", ExportOptions(**windows, **{**RMS, "audio_features": ("rms",)}))
    out = tmp_path / "data"
    fused = ExportOptions(**windows, **RMS, fuse="concat")
    assemble([("a", tmp_path / "a.safetensors"), ("b", tmp_path / "b.safetensors")], out, fused)
    ds = AlignedDataset(out)
    assert [ds[k]["fused"].shape for k in range(len(ds))] == [(2,)] * 4
    assert [r.missing for r in ds.records] == [[], [], ["audio.speech"], ["audio.speech"]]
    assert ds[2]["fused"][1] == 0.0  # b has no speech feature: zeros, listed as missing
    assemble([("b", tmp_path / "b.safetensors")], out, fused)  # afresh: only what is given now
    assert [r.source for r in AlignedDataset(out).records] == ["b", "b"]
    with pytest.raises(UsageError, match="holds an export with other settings"):
        assemble([("b", tmp_path / "b.safetensors")], out, ExportOptions(**windows, **RMS))
    (tmp_path / "junk.safetensors").write_bytes(b"nope")
    with pytest.raises(InputError, match="junk.safetensors: not a staged export source"):
        assemble([("j", tmp_path / "junk.safetensors")], tmp_path / "other", fused)


def test_stage_source_refuses_missing_inputs(tmp_path):
    with pytest.raises(InputError, match="nope.wav: media file not found"):
        stage_source(tmp_path / "nope.wav", None, tmp_path / "s.safetensors", ExportOptions(**RMS))


def test_safetensors_bytes_sort_the_metadata():
    tensors = {"b": np.ones(3, np.float32), "a": np.zeros((2, 2), np.float32)}
    meta = {k: f"value {k} é" for k in "zyxwvutsrq"}
    blobs = {safetensors_bytes(tensors, meta) for _ in range(5)}
    assert len(blobs) == 1
    blob = blobs.pop()
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    assert list(header["__metadata__"]) == sorted(meta)
    assert {k: v.tolist() for k, v in load(blob).items()} == {k: v.tolist() for k, v in tensors.items()}
