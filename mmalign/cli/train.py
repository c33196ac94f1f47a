"""``mmalign train make-data|aligner|clip``: synthetic training data, the attention aligner, a dual encoder."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from . import app
from ._common import EXIT_CODES, Debug, Jobs, Json, Quiet, finish, guard, stderr_console

__all__ = ["train_aligner", "train_app", "train_clip", "train_make_data"]

train_app = typer.Typer(
    help="Train models: synthetic training data from text (make-data), the attention aligner (aligner), "
    "a dual encoder of audio and text on an export (clip).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(train_app, name="train")


class Device(str, Enum):
    """Where training runs."""

    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


class Keep(str, Enum):
    """Which epoch's weights a training run writes."""

    best = "best"
    last = "last"


Seed = Annotated[int, typer.Option("--seed", help="Everything random follows from it.")]


class _LossBar:
    """A rich progress bar with the running loss on a terminal; nothing when piped or quiet."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar: Any = None
        console = stderr_console()
        if enabled and console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[loss]}"), TimeRemainingColumn(), console=console, transient=True,
            )  # fmt: skip
            self.task = self.bar.add_task(label, total=None, loss="")

    def __enter__(self) -> _LossBar:
        if self.bar:
            self.bar.start()
        return self

    def __call__(self, done: float, total: float, loss: float | None = None) -> None:
        if self.bar:
            self.bar.update(self.task, completed=done, total=total, loss="" if loss is None else f"loss {loss:.3f}")

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()


@train_app.command("make-data", epilog=EXIT_CODES)
def train_make_data(
    texts: Annotated[list[Path], typer.Argument(metavar="TEXT.txt...", help="UTF-8 text, one utterance a line.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="The data folder (created).")],
    language: Annotated[
        str | None,
        typer.Option("--language", help="Language of every file (default: detected per file).", show_default=False),
    ] = None,
    copies: Annotated[int, typer.Option("--copies", min=1, help="Readings of each line, differently augmented.")] = 1,
    augmented: Annotated[
        bool, typer.Option("--augmented/--clean", help="Augment (speed, noise, music, reverberation, level).")
    ] = True,
    speakers: Annotated[
        bool,
        typer.Option(
            "--speakers/--one-speaker",
            help="Vary the reader: eSpeak voice variants (male, female, Klatt), pitch and pitch range.",
        ),
    ] = False,
    seed: Seed = 0,
    jobs: Jobs = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Synthesise training data: each line read by eSpeak NG, with exact word and phoneme times."""
    from ..train import make_data

    t0 = time.perf_counter()
    summary: dict[str, Any] = {"output": str(output)}
    with guard(debug, as_json, summary), _LossBar(not (quiet or as_json), "synthesising") as bar:
        summary.update(make_data(
            texts, output, language=language, copies=copies, augmented=augmented, speakers=speakers, seed=seed,
            jobs=jobs, progress=bar,
        ))  # fmt: skip
    finish(summary, t0)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        typer.echo(
            f"{summary['utterances']} utterances, {summary['speech_seconds']:.0f} s of speech in {output}", err=True
        )


@train_app.command("aligner", epilog=EXIT_CODES)
def train_aligner(
    data: Annotated[
        list[Path],
        typer.Argument(
            metavar="DATA...",
            help="Folders made by mmalign train make-data, and/or exports of real media's cues made by "
            "mmalign export with the aligner's front end (see below).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="MODEL.safetensors", help="The weights file (written atomically).")
    ],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data, in all.")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Utterances per step.")] = 16,
    lr: Annotated[float, typer.Option("--lr", min=1e-7, max=0.999, help="Learning rate (Adam).")] = 1e-3,
    decay: Annotated[
        float,
        typer.Option(
            "--decay",
            min=0.0,
            max=0.99,
            help="Share of the last steps over which the learning rate falls to 0 (half cosine); 0: constant.",
        ),
    ] = 0.3,
    keep: Annotated[
        Keep, typer.Option("--keep", help="Write the weights of the epoch with the best validation score, or the last.")
    ] = Keep.best,
    device: Annotated[Device, typer.Option("--device", help="Where to train.")] = Device.auto,
    seed: Seed = 0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Go on from MODEL.checkpoint.safetensors (written every epoch).")
    ] = False,
    cepstra: Annotated[
        int,
        typer.Option(
            "--cepstra",
            min=0,
            max=80,
            help="The audio encoder reads this many cepstra of the log-mel (0: the log-mel itself). "
            "A resumed run keeps its checkpoint's.",
        ),
    ] = 20,
    joined: Annotated[
        float,
        typer.Option(
            "--joined",
            min=0.0,
            max=1.0,
            help="Share of the training utterances joined in pairs each epoch, so the model learns pauses "
            "inside an utterance.",
        ),
    ] = 0.0,
    language: Annotated[
        str | None,
        typer.Option(
            "--language", help="Language of the exports' cues (default: detected per source).", show_default=False
        ),
    ] = None,
    words: Annotated[
        bool,
        typer.Option(
            "--words/--no-words",
            help="Where every word's start is known (synthetic data), sum only the alignments that keep each "
            "word inside its times (20 ms either side); an export's cues are trained as they are.",
        ),
    ] = True,
    augment: Annotated[
        bool,
        typer.Option(
            "--augment/--no-augment",
            help="Warp each training utterance's bands by up to 10 % (vocal tract length) and mask two runs "
            "of bands and two of frames, anew each epoch, so the model leans less on the voices it was trained on.",
        ),
    ] = True,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            metavar="MODEL.safetensors|default",
            help="Start from these weights (default: the shipped ones) to fine-tune them; their sizes and "
            "--cepstra replace the options'.",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train the attention aligner; print the validation score (word starts within 0.05/0.1/0.25 s) each epoch.

    An export of real media teaches the model real voices: each cue is an utterance, and
    only its start is known, so its validation score counts cue starts (held-out cues are
    joined in pairs). Make the export with the aligner's front end:

    \b
      mmalign export films/ -o cues/ --sync --grid cues --pool none --audio-features logmel \\
          --video-features none --text-features none --sr 16000 --audio-hop 0.01 --n-mels 80 \\
          --fmin 20 --fmax 7600
      mmalign train aligner cues/ synthetic/ -o mine.safetensors --init default --epochs 5 --lr 3e-4
    """
    from ..align.attention import AlignerConfig, default_model_path
    from ..train import best_epoch
    from ..train import train_aligner as train

    t0 = time.perf_counter()
    summary: dict[str, Any] = {"output": str(output)}

    def report(r: Any) -> None:
        if not (quiet or as_json):
            shares = ", ".join(f"{float(k):.2f} s {v:.1%}" for k, v in r.within.items())
            typer.echo(
                f"epoch {r.epoch}: loss {r.loss:.3f}; word starts within {shares} "
                f"(junction {r.junction * 1000:.1f} ms; {r.seconds:.0f} s)",
                err=True,
            )

    with guard(debug, as_json, summary), _LossBar(not (quiet or as_json), "training") as bar:
        history = train(
            data, output, epochs=epochs, batch_size=batch_size, lr=lr, decay=decay, keep=keep.value,
            device=device.value, seed=seed, resume=resume, progress=bar, on_epoch=report,
            config=AlignerConfig(n_cepstra=cepstra), joined=joined, language=language, words=words,
            augment=augment,
            init=default_model_path() if init == "default" else init,
        )  # fmt: skip
    summary["epochs"] = [
        {"epoch": r.epoch, "loss": r.loss, "within": r.within, "junction": r.junction, "within_raw": r.within_raw}
        for r in history
    ]
    summary["epoch_kept"] = (best_epoch(history) if keep is Keep.best else len(history)) if history else 0
    finish(summary, t0)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet and history:
        typer.echo(f"wrote epoch {summary['epoch_kept']}'s weights to {output}", err=True)


@train_app.command("clip", epilog=EXIT_CODES)
def train_clip(
    exports: Annotated[
        list[Path], typer.Argument(metavar="EXPORT...", help="Folders written by mmalign export (audio and text).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="MODEL.safetensors", help="The weights file (written atomically).")
    ],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data, in all.")] = 10,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=2, help="Samples per step (each one's negatives are the others).")
    ] = 64,
    lr: Annotated[float, typer.Option("--lr", min=1e-7, max=0.999, help="Learning rate (Adam).")] = 1e-3,
    device: Annotated[Device, typer.Option("--device", help="Where to train.")] = Device.auto,
    seed: Seed = 0,
    resume: Annotated[
        bool, typer.Option("--resume", help="Go on from MODEL.checkpoint.safetensors (written every epoch).")
    ] = False,
    validation: Annotated[
        float, typer.Option("--validation", min=0.01, max=0.9, help="Share of the samples held out, by whole sources.")
    ] = 0.1,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train a dual encoder (audio, text) by InfoNCE with a learned temperature; print retrieval R@1 and R@5
    on the held-out sources each epoch."""
    from ..train import train_clip as train

    t0 = time.perf_counter()
    summary: dict[str, Any] = {"output": str(output)}

    def report(r: Any) -> None:
        if not (quiet or as_json):
            rec = r.recall
            typer.echo(
                f"epoch {r.epoch}: loss {r.loss:.3f}, temperature {r.temperature:.3f}; audio→text "
                f"R@1 {rec['audio_text_r1']:.1%} R@5 {rec['audio_text_r5']:.1%}, text→audio R@1 "
                f"{rec['text_audio_r1']:.1%} R@5 {rec['text_audio_r5']:.1%} on {r.validation} held-out samples "
                f"(chance R@1 {r.chance:.1%}) ({r.seconds:.0f} s)",
                err=True,
            )

    with guard(debug, as_json, summary), _LossBar(not (quiet or as_json), "training") as bar:
        history = train(
            exports, output, epochs=epochs, batch_size=batch_size, lr=lr, device=device.value, seed=seed,
            resume=resume, validation=validation, progress=bar, on_epoch=report,
        )  # fmt: skip
    summary["epochs"] = [
        {"epoch": r.epoch, "loss": r.loss, "temperature": r.temperature, "chance": r.chance, **r.recall}
        for r in history
    ]
    finish(summary, t0)
    if as_json:
        typer.echo(json.dumps(summary))
