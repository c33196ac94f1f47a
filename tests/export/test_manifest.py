"""The export format: ManifestRecord, format_version, and every reader's check of it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmalign import __version__
from mmalign.data import AlignedDataset
from mmalign.errors import InputError, UsageError
from mmalign.export import FORMAT_VERSION, Exporter, Grid, ManifestRecord, check_format


def write_export(out, config=None):
    grid = Grid(np.arange(3.0), np.arange(3.0) + 0.5, [f"cue-{i:06d}" for i in range(3)], ["a", "b", None], "cues")

    def samples(lo, hi):
        for k in range(lo, hi):
            yield {"audio.x": np.full(2, k, np.float32)}

    ex = Exporter(out, config or {"grid": "cues"})
    res = ex.add_source("sha-a", {"name": "film"}, grid, samples, extra={"missing": [[], ["text.v"], []]})
    ex.finish({"order": ["audio.x"]})
    return res


def set_version(out, version):
    path = out / "dataset.json"
    doc = json.loads(path.read_text())
    if version is None:
        del doc["format_version"]
    else:
        doc["format_version"] = version
    path.write_text(json.dumps(doc))


def test_record_round_trip_keeps_fields_and_their_order(tmp_path):
    write_export(tmp_path / "exp")
    lines = (tmp_path / "exp" / "manifest.jsonl").read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    assert list(docs[1]) == ["id", "source", "start", "end", "text", "shard", "row", "tensors", "missing"]
    records = [ManifestRecord.from_dict(d) for d in docs]
    assert records[1].missing == ["text.v"] and records[2].text is None and records[1].tensors == {"audio.x": [2]}
    assert [json.dumps(r.to_dict(), ensure_ascii=False) for r in records] == lines
    # a newer writer's fields survive, after the known ones
    newer = {**docs[0], "speaker": "A"}
    assert ManifestRecord.from_dict(newer).to_dict() == newer
    # a record written without "missing" is read and written without it
    bare = {k: v for k, v in docs[0].items() if k != "missing"}
    assert ManifestRecord.from_dict(bare).missing is None and ManifestRecord.from_dict(bare).to_dict() == bare


def test_record_without_its_fields_is_refused():
    with pytest.raises(InputError, match="x.jsonl: a record without shard, row"):
        ManifestRecord.from_dict(
            {"id": "a", "source": "s", "start": 0, "end": 1, "text": None, "tensors": {}}, "x.jsonl"
        )


def test_check_format():
    assert check_format({"format": "mmalign-export", "format_version": 1}, "d.json") == 1
    assert check_format({"format": "mmalign-export"}, "d.json") == 1  # written before the field: version 1
    with pytest.raises(InputError) as info:
        check_format({"format": "mmalign-export", "format_version": FORMAT_VERSION + 1}, "d.json")
    message = str(info.value)
    assert message == (
        f"d.json: export format version {FORMAT_VERSION + 1} is newer than this mmalign ({__version__}) reads "
        f"(up to {FORMAT_VERSION}); upgrade mmalign"
    )
    assert "\n" not in message and info.value.exit_code == 3
    for bad in ({"format": "other", "format_version": 1}, {"format_version": "1"}, {"format_version": True}):
        with pytest.raises(InputError, match="not an mmalign export header"):
            check_format(bad, "d.json")


def test_dataset_reads_its_version_and_refuses_a_newer_one(tmp_path):
    out = tmp_path / "exp"
    write_export(out)
    ds = AlignedDataset(out)
    assert ds.info["format_version"] == 1 and len(ds) == 3  # an export without pairs or masks: still version 1
    assert ds[1]["text"] == "b" and ds[1]["start"] == 1.0
    set_version(out, 2)
    assert len(AlignedDataset(out)) == 3
    set_version(out, None)  # an export without the field reads as version 1
    assert len(AlignedDataset(out)) == 3
    set_version(out, FORMAT_VERSION + 1)
    with pytest.raises(InputError, match=f"version {FORMAT_VERSION + 1} is newer .*; upgrade mmalign"):
        AlignedDataset(out)


def test_resuming_refuses_a_newer_export_and_reads_one_without_a_version(tmp_path):
    out = tmp_path / "exp"
    write_export(out)
    set_version(out, None)
    assert write_export(out).skipped  # the same export, written before the field: resumed
    set_version(out, FORMAT_VERSION + 1)
    with pytest.raises(InputError, match="upgrade mmalign"):
        write_export(out)
    with pytest.raises(InputError, match="upgrade mmalign"):  # overwrite replaces other settings, not a newer format
        Exporter(out, {"grid": "frames"}, overwrite=True)


def test_the_format_written_is_the_one_asked(tmp_path):
    ex = Exporter(tmp_path / "v2", {"grid": "cues"}, format_version=2)
    ex.write_header({})
    assert json.loads((tmp_path / "v2" / "dataset.json").read_text())["format_version"] == 2
    with pytest.raises(UsageError, match=f"export format version {FORMAT_VERSION + 1}: this mmalign writes 1 to"):
        Exporter(tmp_path / "v3", {"grid": "cues"}, format_version=FORMAT_VERSION + 1)
