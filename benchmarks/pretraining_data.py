"""Pretraining data: matching pairs, masks, the contrastive batch sampler, the split by source, loading speed.

Generates under ``--dir`` (default: a temporary folder) ``--sources`` recordings (default
40, 16 kHz WAV: noise bursts under each cue) with ``--cues`` cues each (default 260), whose
texts repeat the way real subtitles do: short lines said everywhere ("Yes.", "<i>Thank
you!</i>", "THANK YOU"; the same after normalisation), sentences repeated across
recordings with other case and punctuation, and overlapping cues (two speakers). The
corpus recordings (``../shared/corpus``) are added as sources when present. Then, with
the ``mmalign export`` command line, checked from the files alone (manifest, shards):

- matching pairs, ``--hard-negatives none`` (frames, ``--pool none``, with masks),
  ``same-source`` (``--negatives 3``, pooled) and ``nearest`` (``--swap media``, pooled):
  false negatives by the rules (the same normalised text; the same source and
  overlapping, or nearer than ``--min-gap``; the same text twice among one sample's
  negatives), against what uniformly random negatives would have had; the label ratio
  against ``1 / (K + 1)``;
- masks (``--mask audio:0.15:10 --mask text:0.15``): the realised rates counted in the
  shards, the mean run length, padding never masked (after ``collate``);
- two runs with one seed: byte-identical folders;
- ``ContrastiveBatches`` (batch 64): in-batch duplicates (same normalised text, or one
  source and overlapping) over 1,000 batches, against plain shuffled batches;
- ``split_by_source``: sources shared between train and validation over 20 seeds;
- ``AlignedDataset`` + ``DataLoader`` (``collate``): samples per second, pooled and frame
  sequences, 0 and 2 workers.

Targets (issue 20): 0 false negatives, label ratio and mask rates within 1 % of what was
asked, byte-identical, 0 in-batch duplicates, 0 shared sources, ≥ 5,000 pooled and ≥ 500
frame-sequence samples/s on 2 cores.

Run::

    python benchmarks/pretraining_data.py [--sources 40] [--cues 260] [--dir DIR] [--seed 0] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _common as C  # noqa: E402

SR = 16000
MIN_GAP = 5.0
SHORT = ["Yes.", "yes!", "YES", "No.", "no...", "Thank you.", "<i>Thank you!</i>", "thank you", "OK.", "Okay!", "What?"]
WORDS = (
    "the a boat harbour sea morning evening ship captain storm light house wind rain market fish bread "
    "we you they go come see know want need find give tell ask late early now never always here there "
    "red blue old new small big quiet loud town road bridge river door window table letter train"
).split()


# ----------------------------------------------------------------------------- the rules, written afresh

_MARKUP = re.compile(r"<[^>]*>|\{[^}]*\}")
_NON_WORD = re.compile(r"[\W_]+")


def norm(text: str | None) -> str:
    """The documented normalisation: NFKC, markup out, case folded, runs of non-word characters one space."""
    if not text:
        return ""
    t = _MARKUP.sub(" ", unicodedata.normalize("NFKC", text)).casefold()
    return _NON_WORD.sub(" ", t).strip()


def too_close(a: dict, b: dict, min_gap: float) -> bool:
    if a["source"] != b["source"]:
        return False
    overlap = min(a["end"], b["end"]) - max(a["start"], b["start"]) > 0
    return overlap or max(b["start"] - a["end"], a["start"] - b["end"]) < min_gap


def false_negative(anchor: dict, other: dict, min_gap: float) -> bool:
    return (
        anchor["id"] == other["id"] or norm(anchor["text"]) == norm(other["text"]) or too_close(anchor, other, min_gap)
    )


# ----------------------------------------------------------------------------- data


def sentence(rng: np.random.Generator) -> str:
    words = [WORDS[i] for i in rng.integers(len(WORDS), size=int(rng.integers(3, 10)))]
    return " ".join(words).capitalize() + str(rng.choice([".", "!", "?", "..."]))


def vary(text: str, rng: np.random.Generator) -> str:
    """The same text after normalisation: other case, punctuation, markup."""
    r = rng.integers(4)
    return [text, text.upper(), f"<i>{text.rstrip('.!?')}!</i>", text.lower().rstrip(".!?")][r]


def generate(folder: Path, sources: int, cues: int, seed: int) -> list[Path]:
    """``sources`` WAV + VTT pairs; returns the export's inputs (MEDIA SUBS ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    repeated = [sentence(rng) for _ in range(300)]
    inputs: list[Path] = []
    for s in range(sources):
        out: list[C.Cue] = []
        t = 0.5
        for _ in range(cues):
            start = t - (rng.uniform(0.2, 0.8) if out and rng.random() < 0.08 else 0.0)  # overlapping speakers
            end = start + rng.uniform(0.6, 2.4)
            r = rng.random()
            if r < 0.15:
                text = str(rng.choice(SHORT))
            elif r < 0.35:
                text = vary(repeated[int(rng.integers(len(repeated)))], rng)
            else:
                text = sentence(rng)
            out.append(C.Cue(start, end, text))
            t = end + rng.uniform(0.05, 0.6)
        n = int((t + 1.0) * SR)
        y = 0.01 * rng.standard_normal(n)
        for c in out:
            a, b = int(c.start * SR), int(c.end * SR)
            env = np.sin(np.linspace(0, np.pi, b - a)) * (0.5 + 0.5 * np.sin(np.arange(b - a) / SR * 2 * np.pi * 4))
            y[a:b] += 0.2 * env * rng.standard_normal(b - a)
        media = folder / f"rec{s:03d}.wav"
        C.write_wav(y.astype(np.float32), media, SR)
        subs = folder / f"rec{s:03d}.vtt"
        C.write_subtitles(out, subs)
        inputs += [media, subs]
    corpus = C.DEFAULT_CORPUS
    if corpus.is_dir():
        for case in C.load_manifest(corpus):
            inputs += [corpus / case["audio"], corpus / case["reference"]]
    return inputs


# ----------------------------------------------------------------------------- exports and checks


def export(inputs: list[Path], out: Path, *args: str) -> float:
    cmd, env = C.mmalign_command()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "export", *map(str, inputs), "-o", str(out), "-q", "-j", "1", "--audio-features", "logmel", "--n-mels",
         "32", "--text-features", "activity,embedding", "--min-gap", str(MIN_GAP), *args],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        raise C.BenchError(f"export failed ({proc.returncode}): {C.last_line(proc.stderr)}")
    return time.perf_counter() - t0


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]


def check_pairs(folder: Path, k: int, swap: str, hard: str) -> dict:
    recs = manifest(folder)
    by_id = {r["id"]: r for r in recs}
    positives = [r for r in recs if r["label"] == 1]
    negatives = [r for r in recs if r["label"] == 0]
    bad = repeated = wrong_half = foreign = 0
    seen: dict[str, set[str]] = {}
    for n in negatives:
        anchor = by_id[n["pair_of"]]
        other = by_id[n["text_from"] if swap == "text" else n["media_from"]]
        bad += false_negative(anchor, other, MIN_GAP)
        texts = seen.setdefault(anchor["id"], set())
        repeated += norm(other["text"]) in texts
        texts.add(norm(other["text"]))
        lender = by_id[n["text_from"]]
        wrong_half += n["text"] != lender["text"] or anchor["label"] != 1
        foreign += hard == "same-source" and other["source"] != anchor["source"]
    ratio = len(positives) / len(recs)
    # what uniformly random negatives (another sample; of the same source for same-source) would have had
    rng = np.random.default_rng(0)
    naive = 0
    pools: dict[str, list[dict]] = {}
    for r in positives:
        pools.setdefault(r["source"] if hard == "same-source" else "", []).append(r)
    for a in positives:
        pool = pools[a["source"] if hard == "same-source" else ""]
        for _ in range(k):
            b = pool[int(rng.integers(len(pool)))]
            naive += false_negative(a, b, MIN_GAP)
    return {
        "positives": len(positives),
        "negatives": len(negatives),
        "false_negatives": bad + repeated + wrong_half,
        "naive_false_negatives": naive,
        "label_ratio": ratio,
        "asked_ratio": 1 / (k + 1),
        "other_source": foreign,
    }


def check_masks(folder: Path, asked: dict[str, float]) -> dict:
    from safetensors.numpy import load_file

    hidden = Counter()
    frames = Counter()
    runs: dict[str, list[int]] = {m: [] for m in asked}
    for shard in sorted(folder.glob("shard-*.safetensors")):
        for name, arr in load_file(str(shard)).items():
            if not name.endswith(".masked"):
                continue
            modality = name.split("/", 1)[1].split(".")[0]
            hidden[modality] += int(arr.sum())
            frames[modality] += len(arr)
            edges = np.diff(np.concatenate(([0], arr.astype(np.int8), [0])))
            runs[modality] += list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
    info = json.loads((folder / "dataset.json").read_text())["masks"]
    out = {}
    for m, rate in asked.items():
        realised = hidden[m] / frames[m]
        out[m] = {
            "asked": rate,
            "realised": realised,
            "reported": info[m]["realised_rate"],
            "mean_run": float(np.mean(runs[m])) if runs[m] else 0.0,
            "frames": frames[m],
        }
    return out


def padding_never_masked(folder: Path, batches: int = 50) -> int:
    import torch  # noqa: F401  (collate needs it)
    from torch.utils.data import DataLoader

    from mmalign.data import AlignedDataset, collate

    ds = AlignedDataset(folder)
    bad = 0
    for i, batch in enumerate(DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate)):
        for name in [n for n in batch if n.endswith(".masked")]:
            valid = batch[name[: -len(".masked")] + ".mask"]
            bad += int((batch[name] & ~valid).sum())
        if i + 1 == batches:
            break
    return bad


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def in_batch_conflicts(batch: list[int], recs) -> int:
    bad = 0
    for x in range(len(batch)):
        for y in range(x + 1, len(batch)):
            a, b = recs[batch[x]], recs[batch[y]]
            da = {"id": a.id, "source": a.source, "start": a.start, "end": a.end, "text": a.text}
            db = {"id": b.id, "source": b.source, "start": b.start, "end": b.end, "text": b.text}
            bad += norm(a.text) == norm(b.text) or too_close(da, db, 0.0)
    return bad


def check_sampler(folder: Path, n_batches: int, batch_size: int, seed: int) -> dict:
    from mmalign.data import AlignedDataset, ContrastiveBatches

    ds = AlignedDataset(folder)
    sampler = ContrastiveBatches(ds, batch_size, seed=seed)
    conflicts = seen = epoch = 0
    sizes: list[int] = []
    t0 = time.perf_counter()
    while seen < n_batches:
        sampler.set_epoch(epoch)
        for batch in sampler:
            conflicts += in_batch_conflicts(batch, ds.records)
            sizes.append(len(batch))
            seen += 1
            if seen == n_batches:
                break
        epoch += 1
    seconds = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    pos = np.array(sampler.indices)
    naive = 0
    for _ in range(min(n_batches, 200)):
        naive += in_batch_conflicts(list(rng.choice(pos, batch_size, replace=False)), ds.records)
    most = max(Counter(norm(ds.records[i].text) for i in sampler.indices).values())
    return {
        "least_batches": max(most, -(-len(sampler.indices) // batch_size)),
        "per_epoch": len(sampler),
        "batches": seen,
        "epochs": epoch,
        "conflicts": conflicts,
        "naive_conflicts_per_batch": naive / min(n_batches, 200),
        "full_share": sum(s == batch_size for s in sizes) / len(sizes),
        "seconds_per_epoch": round(seconds / max(epoch, 1), 3),
    }


def check_split(folder: Path, seeds: int) -> dict:
    from mmalign.data import AlignedDataset, split_by_source

    ds = AlignedDataset(folder)
    shared = left_out = 0
    shares = []
    for seed in range(seeds):
        split = split_by_source(ds, 0.1, seed=seed)
        train = {ds.records[i].source for i in split.train}
        val = {ds.records[i].source for i in split.validation}
        shared += len(train & val)
        shares.append(len(split.validation) / (len(split.train) + len(split.validation)))
        left_out += len(split.left_out)
        # negatives follow their sample's side, and borrow from that side only
        for i in split.validation:
            r = ds.records[i]
            for key in ("text_from", "media_from", "pair_of"):
                if key in r.extra:
                    shared += ds.records[ds.index_of(r.extra[key])].source not in val
    return {
        "seeds": seeds,
        "shared_sources": shared,
        "validation_share": (min(shares), max(shares)),
        "left_out": left_out / seeds,
        "samples": len(ds),
    }


def throughput(folder: Path, workers: int, batch_size: int = 64, min_seconds: float = 3.0) -> float:
    import torch
    from torch.utils.data import DataLoader

    from mmalign.data import AlignedDataset, collate

    torch.set_num_threads(1)
    ds = AlignedDataset(folder)
    loader = DataLoader(
        ds, batch_size=batch_size, shuffle=True, collate_fn=collate, num_workers=workers, persistent_workers=workers > 0
    )
    n = 0
    t0 = time.perf_counter()
    while True:
        for batch in loader:
            n += len(batch["id"])
        if time.perf_counter() - t0 >= min_seconds:
            return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=40)
    ap.add_argument("--cues", type=int, default=260)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="mmalign-pretraining-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min), {os.cpu_count()} cores; work in {work}")
    try:
        t0 = time.perf_counter()
        inputs = generate(work / "src", args.sources, args.cues, args.seed)
        print(f"generated {len(inputs) // 2} sources in {time.perf_counter() - t0:.1f} s")
        frames = ("--pairs", "matching", "--pool", "none", "--mask", "audio:0.15:10", "--mask", "text:0.15")
        runs = {
            "none": (work / "frames-1", frames + ("--seed", "7")),
            "none (again)": (work / "frames-2", frames + ("--seed", "7")),
            "same-source": (
                work / "same",
                ("--pairs", "matching", "--negatives", "3", "--hard-negatives", "same-source"),
            ),
            "nearest": (work / "nearest", ("--pairs", "matching", "--hard-negatives", "nearest", "--swap", "media")),
        }
        rows = []
        for name, (out, extra) in runs.items():
            if out.exists():
                shutil.rmtree(out)
            seconds = export(inputs, out, *extra)
            if name == "none (again)":
                continue
            k = int(extra[extra.index("--negatives") + 1]) if "--negatives" in extra else 1
            swap = "media" if "--swap" in extra else "text"
            res = check_pairs(out, k, swap, name)
            rows.append([
                name, str(k), swap, str(res["positives"]), str(res["negatives"]), str(res["false_negatives"]),
                str(res["naive_false_negatives"]), f"{res['label_ratio']:.4f}", f"{res['asked_ratio']:.4f}",
                f"{seconds:.1f}",
            ])  # fmt: skip
        print("\nmatching pairs (false negatives: by the rules, checked from the files; naive: uniformly random)")
        C.print_table(
            rows, ["hard", "K", "swap", "positives", "negatives", "false neg", "naive", "ratio", "asked", "s"]
        )
        same = digest(runs["none"][0]) == digest(runs["none (again)"][0])
        print(f"\ntwo runs with --seed 7: byte-identical: {same} ({len(digest(runs['none'][0]))} files)")
        masks = check_masks(runs["none"][0], {"audio": 0.15, "text": 0.15})
        print("\nmasks (counted in the shards)")
        C.print_table(
            [
                [m, f"{v['asked']:.4f}", f"{v['realised']:.4f}", f"{v['reported']:.4f}", f"{v['mean_run']:.1f}",
                 str(v["frames"])]
                for m, v in masks.items()
            ],
            ["modality", "asked", "realised", "dataset.json", "mean run", "frames"],
        )  # fmt: skip
        print(f"padding masked after collate (50 batches): {padding_never_masked(runs['none'][0])}")
        sampler = check_sampler(runs["none"][0], 1000, 64, args.seed)
        print(
            f"\nContrastiveBatches (64): {sampler['conflicts']} in-batch duplicates over {sampler['batches']} batches "
            f"({sampler['epochs']} epochs, {sampler['full_share']:.1%} full, {sampler['seconds_per_epoch']} s/epoch); "
            f"plain shuffled batches: {sampler['naive_conflicts_per_batch']:.2f} per batch\n"
            f"  {sampler['per_epoch']} batches per epoch, at least {sampler['least_batches']} needed "
            "(the most repeated text needs a batch per saying)"
        )
        for name in ("same-source", "none"):
            split = check_split(runs[name][0], 20)
            lo, hi = split["validation_share"]
            print(
                f"split_by_source (0.1, {split['seeds']} seeds, {name} export): {split['shared_sources']} shared "
                f"sources or borrowed across, validation share {lo:.3f}-{hi:.3f}, negatives left out "
                f"{split['left_out']:.0f} of {split['samples']} samples"
            )
        print(f"\nload before loading: {os.getloadavg()[0]:.2f}")
        speed = []
        for label, folder in (("pooled", runs["same-source"][0]), ("frames", runs["none"][0])):
            for workers in (0, 2):
                speed.append([label, str(workers), f"{throughput(folder, workers):,.0f}"])
        print("AlignedDataset + DataLoader (batch 64, collate), samples/s")
        C.print_table(speed, ["samples", "workers", "samples/s"])
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(C.run_main(main, sys.argv[1:]))
