"""Pretraining data end to end: an export with matching pairs and masks, read back, split and batched."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from safetensors.numpy import load_file

from mmalign.data import AlignedDataset, ContrastiveBatches, split_by_source
from mmalign.errors import UsageError
from mmalign.export import ExportOptions, ManifestRecord, assemble, export_sources, normalize_text, stage_source

FEATURES = {"audio_features": ("rms",), "video_features": (), "text_features": ("activity",)}
TEXTS = ["Yes.", "yes!", "<i>Thank you.</i>", "thank you", "Where is the harbour?", "The boat is late today."]
PAIRED = ExportOptions(
    pool="none", pairs="matching", negatives=2, min_gap=2.0, seed=5, mask=("audio:0.2:5", "text:0.3"), **FEATURES
)


@pytest.fixture
def sources(make_media, write_vtt):
    """Three sources of 12 s, 8 cues each: repeated texts within and across them, two cues that overlap."""
    out = []
    for s, freq in enumerate((220.0, 330.0, 440.0)):
        media = make_media(f"film{s}.wav", tones=(freq,), seconds=12.0)
        starts = [0.2 + 1.4 * i for i in range(8)]
        ends = [a + 1.1 for a in starts]
        starts[3] -= 0.5  # overlaps cue 2
        texts = [TEXTS[(i + s) % len(TEXTS)] if i % 3 else f"line {i} of film {s}" for i in range(8)]
        out.append((media, write_vtt(f"film{s}.vtt", starts, ends, texts)))
    return out


def manifest(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_pairs_and_masks_export(sources, tmp_path):
    out = tmp_path / "paired"
    result = export_sources(sources, out, PAIRED)
    assert result["samples"] == 24 and result["pairs"]["negatives"] == 48
    recs = manifest(out)
    by_id = {r["id"]: r for r in recs}
    positives = [r for r in recs if r["label"] == 1]
    assert len(positives) == 24 and len(recs) == 72
    for pos in positives:  # each aligned sample, then its negatives
        at = recs.index(pos)
        negs = recs[at + 1 : at + 3]
        assert [n["id"] for n in negs] == [f"{pos['id']}/negative-{j}" for j in range(2)]
        assert {n["text"] for n in negs} != {pos["text"]} and len({normalize_text(n["text"]) for n in negs}) == 2
        for n in negs:
            assert n["label"] == 0 and n["pair_of"] == pos["id"] and n["media_from"] == pos["id"]
            other = by_id[n["text_from"]]
            assert normalize_text(other["text"]) != normalize_text(pos["text"]) and other["text"] == n["text"]
            if other["source"] == pos["source"]:
                assert max(other["start"] - pos["end"], pos["start"] - other["end"]) >= 2.0
            assert n["tensors"]["text.activity"] == other["tensors"]["text.activity"]
            assert n["tensors"]["audio.rms"] == pos["tensors"]["audio.rms"]
    info = json.loads((out / "dataset.json").read_text())
    assert info["format_version"] == 2 and info["pairs"]["label_ratio"] == pytest.approx(1 / 3, abs=1e-6)
    # the realised mask rates, counted from the shards
    hidden = {"audio": [0, 0], "text": [0, 0]}
    for shard in sorted(out.glob("shard-*.safetensors")):
        for name, arr in load_file(str(shard)).items():
            if name.endswith(".masked"):
                feature = name.split("/", 1)[1][: -len(".masked")]
                row = name.split("/", 1)[0]
                assert arr.dtype == bool and len(arr) == len(load_file(str(shard))[f"{row}/{feature}"])
                hidden[feature.split(".")[0]][0] += int(arr.sum())
                hidden[feature.split(".")[0]][1] += len(arr)
    for modality, rate in (("audio", 0.2), ("text", 0.3)):
        summary = info["masks"][modality]
        assert [summary["masked_frames"], summary["frames"]] == hidden[modality] and summary["rate"] == rate
        assert summary["realised_rate"] == pytest.approx(rate, abs=0.08)  # 24 short samples; 10k: the benchmark


def test_an_export_with_one_seed_is_the_same_bytes_and_resumes(sources, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    export_sources(sources, one, PAIRED)
    export_sources(sources, two, PAIRED)
    assert files(one) == files(two)
    again = export_sources(sources, one, PAIRED)
    assert all(r["skipped"] for r in again["sources"]) and files(one) == files(two)
    # interrupted after the first source: the rest is exported, the negatives drawn over all three
    (one / "manifest.jsonl").unlink()
    progress = (one / "progress.jsonl").read_text().splitlines()
    (one / "progress.jsonl").write_text(progress[0] + "\n")
    export_sources(sources, one, PAIRED)
    assert files(one) == files(two)
    other = tmp_path / "other"
    export_sources(sources, other, ExportOptions(**{**PAIRED.__dict__, "seed": 6}))
    assert manifest(other) != manifest(one)


def test_a_plain_export_is_still_format_1_without_labels(sources, tmp_path):
    out = tmp_path / "plain"
    export_sources(sources, out, ExportOptions(pool="none", **FEATURES))
    info = json.loads((out / "dataset.json").read_text())
    assert info["format_version"] == 1 and "pairs" not in info and "masks" not in info
    assert not any("label" in r or any(t.endswith(".masked") for t in r["tensors"]) for r in manifest(out))


def test_dataset_items_of_negatives_and_masks(sources, tmp_path):
    torch = pytest.importorskip("torch")
    from mmalign.data import collate

    out = tmp_path / "paired"
    export_sources(sources, out, PAIRED)
    ds = AlignedDataset(out)
    neg = ds[1]
    pos = ds[ds.index_of(neg["pair_of"])]
    lender = ds[ds.index_of(neg["text_from"])]
    assert neg["label"] == 0 and pos["label"] == 1 and "pair_of" not in pos
    np.testing.assert_array_equal(neg["audio.rms"], pos["audio.rms"])
    np.testing.assert_array_equal(neg["audio.rms.masked"], pos["audio.rms.masked"])
    np.testing.assert_array_equal(neg["text.activity"], lender["text.activity"])
    np.testing.assert_array_equal(neg["text.activity.masked"], lender["text.activity.masked"])
    assert neg["text"] == lender["text"] and (neg["start"], neg["source"]) == (pos["start"], pos["source"])
    batch = collate([ds[i] for i in range(6)])
    assert batch["label"].tolist() == [1, 0, 0, 1, 0, 0] and batch["label"].dtype == torch.int64
    masked, valid = batch["audio.rms.masked"], batch["audio.rms.mask"]
    assert masked.dtype == torch.bool and masked.shape == valid.shape
    assert not bool((masked & ~valid).any())  # padding is never masked
    assert batch["pair_of"][1] == pos["id"] and batch["pair_of"][0] is None
    # swapping media: the text stays, the media features are another sample's
    media = tmp_path / "media"
    export_sources(sources, media, ExportOptions(**{**PAIRED.__dict__, "swap": "media", "negatives": 1}))
    ds = AlignedDataset(media)
    neg = ds[1]
    pos, lender = ds[ds.index_of(neg["pair_of"])], ds[ds.index_of(neg["media_from"])]
    assert neg["text"] == pos["text"] and neg["text_from"] == pos["id"]
    np.testing.assert_array_equal(neg["text.activity"], pos["text.activity"])
    np.testing.assert_array_equal(neg["audio.rms"], lender["audio.rms"])


@pytest.mark.slow
def test_staged_sources_assemble_to_the_same_pairs(sources, tmp_path):
    export_sources(sources, tmp_path / "direct", PAIRED)
    staged = []
    for media, subs in sources:
        path = tmp_path / "stage" / f"{media.stem}.safetensors"
        stage_source(media, subs, path, PAIRED)
        staged.append((media.stem, path))
    assemble(staged, tmp_path / "assembled", PAIRED)
    direct, assembled = files(tmp_path / "direct"), files(tmp_path / "assembled")
    for name in direct:
        if name.startswith("shard-") or name == "manifest.jsonl":
            assert direct[name] == assembled[name], name
    info = json.loads((tmp_path / "assembled" / "dataset.json").read_text())
    assert info["masks"] == json.loads((tmp_path / "direct" / "dataset.json").read_text())["masks"]


def test_reading_splitting_and_batching_import_no_torch(sources, tmp_path):
    out = tmp_path / "paired"
    export_sources(sources, out, PAIRED)
    code = (
        "import sys\n"
        "from mmalign.data import AlignedDataset, ContrastiveBatches, split_by_source\n"
        f"ds = AlignedDataset({str(out)!r})\n"
        "split = split_by_source(ds, 0.3)\n"
        "batches = list(ContrastiveBatches(ds, 4, indices=split.train))\n"
        "items = [ds[i] for b in batches for i in b]\n"
        "assert items and 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- split and sampler, on records


def records(n_sources=6, per_source=50, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_sources):
        t = 0.0
        for i in range(per_source):
            start = t - (0.4 if i and rng.random() < 0.2 else 0.0)
            end = start + rng.uniform(0.5, 2.0)
            text = TEXTS[rng.integers(len(TEXTS))] if rng.random() < 0.4 else f"line {rng.integers(60)}"
            out.append(ManifestRecord(f"s{s}/cue-{i}", f"s{s}", start, end, text, "shard", i, {}))
            t = end + rng.uniform(0, 1)
    return out


def conflicts(batch, recs, min_gap=0.0):
    """Pairs of a batch with one normalised text, or of one source and overlapping (a plain loop)."""
    bad = 0
    for x in range(len(batch)):
        for y in range(x + 1, len(batch)):
            a, b = recs[batch[x]], recs[batch[y]]
            bad += normalize_text(a.text) == normalize_text(b.text)
            bad += a.source == b.source and max(a.start - b.end, b.start - a.end) < min_gap
            bad += a.source == b.source and min(a.end, b.end) > max(a.start, b.start)
    return bad


@pytest.mark.parametrize("seed", range(3))
def test_contrastive_batches_hold_no_false_negative(seed):
    recs = records(seed=seed)
    sampler = ContrastiveBatches(recs, 16, seed=seed)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert all(conflicts(b, recs) == 0 for b in batches) and all(len(b) <= 16 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(len(recs)))  # every sample once
        # no more batches than needed (a text said k times needs k batches), give or take a few
        most = max(Counter(normalize_text(r.text) for r in recs).values())
        assert len(sampler) == len(batches) <= max(-(-len(recs) // 16), most) + 3
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first == list(ContrastiveBatches(recs, 16, seed=seed))
    gapped = ContrastiveBatches(recs, 16, seed=seed, min_gap=3.0, drop_last=True)
    assert all(conflicts(b, recs, 3.0) == 0 and len(b) == 16 for b in gapped)


def test_contrastive_batches_options():
    recs = records(2, 10)
    assert list(ContrastiveBatches(recs, 100, shuffle=False, indices=[3, 1]))[0] in ([3, 1], [3], [1])
    negatives = [ManifestRecord("x/n", "s0", 0, 1, "a negative", "shard", 0, {}, extra={"label": 0})]
    assert 20 not in [i for b in ContrastiveBatches(recs + negatives, 4) for i in b]
    assert list(ContrastiveBatches(recs + negatives, 4, indices=[20, 0])) == [[0]]  # negatives: never
    repeated = [ManifestRecord(f"s/{i}", "s", 10.0 * i, 10.0 * i + 1, "Yes!", "shard", i, {}) for i in range(5)]
    assert [len(b) for b in ContrastiveBatches(repeated, 4)] == [1] * 5  # one "yes" per batch
    assert list(ContrastiveBatches(repeated, 4, drop_last=True)) == []
    for bad, message in (
        ({"batch_size": 0}, "batch size"),
        ({"min_gap": -1.0}, "min_gap"),
        ({"indices": [99]}, "range"),
    ):
        with pytest.raises(UsageError, match=message):
            ContrastiveBatches(recs, **{"batch_size": 4, **bad})


@pytest.mark.parametrize("seed", range(5))
def test_split_by_source_shares_no_source(seed):
    recs = records(n_sources=10, seed=seed)
    split = split_by_source(recs, 0.2, seed=seed)
    train = {recs[i].source for i in split.train}
    val = {recs[i].source for i in split.validation}
    assert not train & val and train | val == {r.source for r in recs}
    assert train == set(split.train_sources) and val == set(split.validation_sources)
    assert sorted(split.train + split.validation) == list(range(len(recs))) and split.left_out == []
    assert len(split.validation) / len(recs) == pytest.approx(0.2, abs=0.06)


def test_split_by_source_leaves_out_negatives_that_cross():
    recs = records(n_sources=4, per_source=5)
    neg = [
        ManifestRecord("s0/cue-0/negative-0", "s0", 0, 1, "x", "shard", 0, {}, extra={"label": 0, "text_from": r.id})
        for r in (recs[1], recs[19])
    ]
    split = split_by_source(recs + neg, 0.5, seed=1)
    held = set(split.validation_sources)
    crossing = ("s0" in held) != ("s3" in held)
    assert (len(recs) + 1 in split.left_out) == crossing and len(recs) not in split.left_out
    with pytest.raises(UsageError, match="at least two sources"):
        split_by_source(recs[:5])
    with pytest.raises(UsageError, match="between 0 and 1"):
        split_by_source(recs, 1.0)
