"""Why alignment pays: a dual encoder trained on true, mistimed and re-synced subtitles (issue 20, item 5).

From the same media, three exports (``mmalign export --pool none``, log-mel 40 and the text
embedding, the same options each time) whose only difference is the subtitle timing:

- **true**: the cue times the speech was made with;
- **mistimed**: those times as badly off as downloaded subtitles are: a framerate drift
  (×25/23.976 or ×23.976/25, either way at random) plus an offset of 2–8 s, either sign;
- **synced**: the mistimed subtitles through ``--sync`` (``--force``: every source is exported
  whatever the sync's confidence, so that the three exports hold the same sources and the
  same number of samples; the confidences are printed).

``mmalign train clip`` is trained on each with the same seeds (``--seeds``, default 3), so that
for a seed the three runs hold out the same sources (:func:`mmalign.data.split_by_source`;
checked). Every model is then scored on the held-out sources of the **true** export (the
correct pairs: a model trained on bad pairs is not excused by a test made of the same bad
pairs): audio→text and text→audio R@1 and R@5, mean ± standard deviation over the seeds,
against chance. The mechanism is printed beside: the share of each export's samples whose
audio overlaps its text's true time at all, and by at least half of the cue.

Sources: ``--sources`` recordings (default 36) synthesised by eSpeak NG (English, American,
Scottish, French, German and Spanish voices, 130–210 words a minute), ``--cues`` sentences
each (default 40: 1–2 minutes) of 3–7 words from a 40-word vocabulary per language, with
pauses between sentences of 0.2–2.5 s and now and then a longer one (4–8 s); plus the five
recordings of the real-speech corpus (``../shared/corpus``, ``reference.vtt``) when present.
Every recording gets silence at both ends so that no mistimed cue falls outside it.

Knobs for time: ``--sources``, ``--cues``, ``--seeds``, ``--epochs`` (default 10), ``--jobs``
(training runs at once, default 2, each on one torch thread: ``OMP_NUM_THREADS=1``, as
torch's default thread count is far slower on a busy machine). The defaults take about
15–25 minutes on two busy cores.

Target (issue 20): R@1 with ``--sync`` within 10 % of the true timings' R@1, the mistimed
export clearly lower.

Run::

    python benchmarks/alignment_pays.py [--sources 36] [--cues 40] [--seeds 3] [--epochs 10]
        [--jobs 2] [--no-corpus] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _common as C  # noqa: E402

SR = 16000
#: 40 everyday words per language: sentences of 3–7 of them
VOCABULARY = {
    "en": "boat harbour sea morning evening ship captain storm light house wind rain market fish bread red blue old "
    "new small big quiet loud town road bridge river door window table letter train go come see know want need "
    "find give",
    "fr": "bateau port mer matin soir navire capitaine orage lumière maison vent pluie marché poisson pain rouge "
    "bleu vieux nouveau petit grand calme ville route pont rivière porte fenêtre table lettre train aller venir "
    "voir savoir vouloir chercher donner dire demander",
    "de": "Boot Hafen Meer Morgen Abend Schiff Kapitän Sturm Licht Haus Wind Regen Markt Fisch Brot rot blau alt "
    "neu klein groß leise laut Stadt Straße Brücke Fluss Tür Fenster Tisch Brief Zug gehen kommen sehen wissen "
    "wollen finden",
    "es": "barco puerto mar mañana tarde nave capitán tormenta luz casa viento lluvia mercado pez pan rojo azul "
    "viejo nuevo pequeño grande tranquilo ciudad camino puente río puerta ventana mesa carta tren ir venir ver "
    "saber querer buscar dar decir",
}
#: (eSpeak voice, vocabulary)
VOICES = (("en", "en"), ("fr", "fr"), ("en-us", "en"), ("de", "de"), ("en-gb-scotland", "en"), ("es", "es"))
CONDITIONS = ("true", "mistimed", "synced")
PAD = 12.0  # seconds of silence at each end of every recording: no mistimed cue leaves it
EXPORT = ["--pool", "none", "--audio-features", "logmel", "--n-mels", "40", "--text-features", "embedding"]


def mistime(cues: list[C.Cue], rng: np.random.Generator) -> tuple[list[C.Cue], str]:
    """The cues as downloaded subtitles have them: a framerate drift and an offset (either sign)."""
    ratio = 25 / 23.976 if rng.random() < 0.5 else 23.976 / 25
    offset = float(rng.uniform(2.0, 8.0)) * (1 if rng.random() < 0.5 else -1)
    offset = max(offset, 0.2 - cues[0].start * ratio)  # never before the recording's start
    out = [C.Cue(c.start * ratio + offset, c.end * ratio + offset, c.text, c.ident) for c in cues]
    return out, f"×{ratio:.4f} {offset:+.1f} s"


def synthesise(folder: Path, sources: int, cues: int, seed: int) -> list[str]:
    """``--sources`` eSpeak recordings with varied pauses: ``NAME.wav`` and ``NAME.true.vtt``."""
    from mmalign.speech import synthesize_segments

    names = []
    rng = np.random.default_rng(seed)
    for s in range(sources):
        voice, vocab = VOICES[s % len(VOICES)]
        words = VOCABULARY[vocab].split()
        texts = [" ".join(rng.choice(words, int(rng.integers(3, 8)))) for _ in range(cues)]
        syn = synthesize_segments(texts, language=voice, rate=int(rng.integers(130, 211)), sr=SR, gap=0.0)
        pieces, out, t = [np.zeros(int(PAD * SR), np.float32)], [], PAD
        for g in syn.segments:
            a = syn.audio[int(round(g.start * SR)) : int(round(g.end * SR))]
            out.append(C.Cue(t, t + len(a) / SR, g.text))
            pause = rng.uniform(4.0, 8.0) if rng.random() < 0.08 else rng.uniform(0.2, 2.5)
            pieces += [a, np.zeros(int(pause * SR), np.float32)]
            t += (len(a) + int(pause * SR)) / SR
        pieces.append(np.zeros(int(PAD * SR), np.float32))
        name = f"{voice}{s:02d}"
        C.write_wav(np.concatenate(pieces), folder / f"{name}.wav", SR)
        C.write_subtitles(out, folder / f"{name}.true.vtt")
        names.append(name)
    return names


def corpus_sources(folder: Path, corpus: Path) -> list[str]:
    """The corpus recordings (padded with silence at both ends) and their reference cues."""
    names = []
    for case in C.load_manifest(corpus):
        name = f"corpus_{case['case']}"
        src = corpus / case["case"]
        pad = np.zeros(int(PAD * SR), np.float32)
        C.write_wav(np.concatenate([pad, C.decode_audio(src / "audio.mp3", SR), pad]), folder / f"{name}.wav", SR)
        cues = [C.Cue(c.start + PAD, c.end + PAD, c.text) for c in C.parse_subtitles(src / "reference.vtt")]
        C.write_subtitles(cues, folder / f"{name}.true.vtt")
        names.append(name)
    return names


def mmalign(args: list[str], **kw) -> subprocess.CompletedProcess:
    cmd, env = C.mmalign_command()
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, **kw)


def export(work: Path, names: list[str], condition: str) -> dict:
    """One export of every source with the condition's subtitles; its JSON summary."""
    timing = "true" if condition == "true" else "mistimed"
    inputs = [str(p) for n in names for p in (work / "src" / f"{n}.wav", work / "src" / f"{n}.{timing}.vtt")]
    out = work / condition
    shutil.rmtree(out, ignore_errors=True)
    extra = ["--sync", "--force"] if condition == "synced" else []
    r = mmalign(["export", *inputs, "-o", str(out), *EXPORT, *extra, "--json", "-q", "-j", "2"])
    if r.returncode:
        raise C.BenchError(f"export {condition} failed: {C.last_line(r.stderr or r.stdout)}")
    return json.loads(r.stdout)


def sync_confidences(folder: Path) -> dict[str, dict]:
    """Each source's sync (offset, scale, confidence) from an export's ``dataset.json``."""
    doc = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    return {s["name"]: s.get("sync") or {} for s in doc["sources"]}


def overlap(work: Path, condition: str, truth: dict[str, list[C.Cue]]) -> tuple[float, float]:
    """Shares of the export's samples whose span overlaps its cue's true time at all, and by half of it."""
    from mmalign.data import AlignedDataset

    any_, half, n = 0, 0, 0
    seen: dict[str, int] = {}
    for rec in AlignedDataset(work / condition).records:
        k = seen.get(rec.source, 0)
        seen[rec.source] = k + 1
        cue = truth[Path(rec.source).stem][k]
        assert cue.text.split() == (rec.text or "").split(), (rec.source, k, cue.text, rec.text)
        inter = min(rec.end, cue.end) - max(rec.start, cue.start)
        any_ += inter > 0
        half += inter >= 0.5 * (cue.end - cue.start)
        n += 1
    return any_ / n, half / n


def train(work: Path, condition: str, seed: int, epochs: int) -> dict:
    """``mmalign train clip`` on one export; the run's JSON and the model's held-out sources."""
    from safetensors import safe_open

    model = work / "models" / f"{condition}-{seed}.safetensors"
    model.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    r = mmalign(["train", "clip", str(work / condition), "-o", str(model), "--epochs", str(epochs), "--batch-size",
                 "32", "--device", "cpu", "--validation", "0.2", "--seed", str(seed), "--json"])  # fmt: skip
    if r.returncode:
        raise C.BenchError(f"train clip ({condition}, seed {seed}) failed: {C.last_line(r.stderr)}")
    with safe_open(str(model), framework="pt") as fh:
        meta = json.loads((fh.metadata() or {})["mmalign.training"])
    return {"run": json.loads(r.stdout), "held": meta["validation_sources"], "model": model,
            "seconds": time.perf_counter() - t0}  # fmt: skip


def score(model: Path, work: Path, held: list[str]) -> tuple[dict[str, float], float, int]:
    """R@1 / R@5 both ways of a model on the held-out sources of the true export."""
    import torch

    from mmalign.data import AlignedDataset
    from mmalign.train import load_clip
    from mmalign.train.clip import retrieval

    torch.set_num_threads(1)
    net = load_clip(model)
    ds = AlignedDataset(work / "true")
    idx = [i for i, rec in enumerate(ds.records) if rec.source in set(held)]

    def stack(items: list[dict], names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [np.concatenate([np.asarray(it[n], np.float32).reshape(len(it[n]), -1) for n in names], 1)
                for it in items]  # fmt: skip
        x = np.zeros((len(seqs), max(1, max(len(s) for s in seqs)), seqs[0].shape[1]), np.float32)
        mask = np.zeros(x.shape[:2], bool)
        for b, s in enumerate(seqs):
            x[b, : len(s)], mask[b, : len(s)] = s, True
        return torch.from_numpy(x), torch.from_numpy(mask)

    audio, text = [], []
    with torch.no_grad():
        for lo in range(0, len(idx), 256):
            items = [ds[i] for i in idx[lo : lo + 256]]
            audio.append(net.encode_audio(*stack(items, net.config.audio_features)).numpy())
            text.append(net.encode_text(*stack(items, net.config.text_features)).numpy())
    recall, chance = retrieval(np.concatenate(audio), np.concatenate(text), [ds.records[i].text for i in idx])
    return recall, chance, len(idx)


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=36, help="synthesised recordings")
    ap.add_argument("--cues", type=int, default=40, help="sentences per synthesised recording")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per export (0, 1, ...)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2, help="training runs at once (one torch thread each)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthesis and of the mistiming")
    ap.add_argument("--corpus", type=Path, default=C.DEFAULT_CORPUS)
    ap.add_argument("--no-corpus", action="store_true")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="mmalign-pays-"))
    (work / "src").mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(f"load: {load[0]:.2f} {load[1]:.2f} (1, 5 min), {os.cpu_count()} cores; work in {work}")
    t_all = time.perf_counter()
    try:
        t0 = time.perf_counter()
        names = synthesise(work / "src", args.sources, args.cues, args.seed)
        if not args.no_corpus and args.corpus.is_dir():
            names += corpus_sources(work / "src", args.corpus)
        elif not args.no_corpus:
            print(f"(no corpus at {args.corpus}: synthesised speech only)")
        rng = C.stable_rng(args.seed, "mistime")
        truth, how = {}, {}
        for n in names:
            truth[n] = C.parse_subtitles(work / "src" / f"{n}.true.vtt")
            bad, how[n] = mistime(truth[n], rng)
            C.write_subtitles(bad, work / "src" / f"{n}.mistimed.vtt")
        minutes = sum(C.decode_audio(work / "src" / f"{n}.wav", SR).size for n in names) / SR / 60
        print(f"{len(names)} sources ({minutes:.0f} min, {sum(map(len, truth.values()))} cues) in "
              f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
        shares, sync_report = {}, {}
        for cond in CONDITIONS:
            t0 = time.perf_counter()
            summary = export(work, names, cond)
            shares[cond] = overlap(work, cond, truth)
            print(f"export {cond}: {summary['samples']} samples in {time.perf_counter() - t0:.0f} s")
            if cond == "synced":
                sync_report = sync_confidences(work / cond)
        rows = [[n, how[n], f"{sync_report.get(n, {}).get('confidence', float('nan')):.2f}"] for n in names]
        print("\nmistiming of each source, and the confidence of its --sync:")
        C.print_table(rows, ["source", "drift, offset", "sync confidence"])
        t0 = time.perf_counter()
        jobs = [(cond, seed) for seed in range(args.seeds) for cond in CONDITIONS]
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = dict(zip(jobs, pool.map(lambda j: train(work, j[0], j[1], args.epochs), jobs), strict=True))
        print(f"\n{len(jobs)} training runs of {args.epochs} epochs, {args.jobs} at once: "
              f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
        for seed in range(args.seeds):
            held = {cond: runs[cond, seed]["held"] for cond in CONDITIONS}
            if len({tuple(h) for h in held.values()}) != 1:
                raise C.BenchError(f"seed {seed}: the three exports held out different sources: {held}")
            print(f"seed {seed}: held out {', '.join(held['true'])}")
        results: dict[str, dict[str, list[float]]] = {c: {} for c in CONDITIONS}
        chance, held_n = 0.0, 0
        for (cond, _seed), run in runs.items():
            recall, chance_s, n = score(run["model"], work, run["held"])
            own = run["run"]["epochs"][-1]
            recall["own_a2t_r1"] = own["audio_text_r1"]
            for k, v in recall.items():
                results[cond].setdefault(k, []).append(v)
            chance, held_n = chance + chance_s / len(runs), held_n + n
        keys = ("audio_text_r1", "audio_text_r5", "text_audio_r1", "text_audio_r5", "own_a2t_r1")
        rows = [[cond, *(spread(results[cond][k]) for k in keys), f"{100 * shares[cond][0]:.1f}",
                 f"{100 * shares[cond][1]:.1f}"] for cond in CONDITIONS]  # fmt: skip
        print(f"\nretrieval on the held-out sources' true pairs ({held_n / len(runs):.0f} samples a run on average; "
              f"chance R@1 {100 * chance:.2f} %), % as mean ± sd over {args.seeds} seeds:")  # fmt: skip
        C.print_table(rows, ["export", "a→t R@1", "a→t R@5", "t→a R@1", "t→a R@5", "a→t R@1 own held-out",
                             "overlaps truth", "≥ half of cue"])  # fmt: skip
        r1 = {c: statistics.mean(results[c]["audio_text_r1"] + results[c]["text_audio_r1"]) for c in CONDITIONS}
        print(f"R@1 (both ways): synced / true = {r1['synced'] / r1['true']:.1%}; mistimed / true = "
              f"{r1['mistimed'] / r1['true']:.1%}")  # fmt: skip
        load = os.getloadavg()
        print(f"total {time.perf_counter() - t_all:.0f} s; load: {load[0]:.2f} {load[1]:.2f} (1, 5 min)")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(C.run_main(main, sys.argv[1:]))
