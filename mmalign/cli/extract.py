"""``mmalign extract audio|video|subs|all``: timestamped feature files, one per modality."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .. import source
from ..errors import UsageError
from ..source import require_input
from . import app
from ._common import (
    EXIT_CODES,
    AudioFeatureList,
    AudioHop,
    AudioStream,
    Debug,
    FMax,
    FMin,
    Fps,
    Jobs,
    Json,
    NMels,
    NMfcc,
    ProgressBar,
    Quiet,
    SampleRate,
    TextDim,
    TextFeatureList,
    TextHop,
    VideoFeatureList,
    VideoStream,
    Width,
    finish,
    guard,
    make_parent,
    no_stdout_clash,
    output_file,
    renamed_options,
)

__all__ = ["extract_app", "extract_audio", "extract_video", "extract_subs", "extract_all"]

extract_app = typer.Typer(
    help="Timestamped feature sequences from audio, video and subtitles, written as "
    "safetensors (or npz) files that say how they were made.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(extract_app, name="extract")


class FeatureFormat(str, Enum):
    safetensors = "safetensors"
    npz = "npz"


def _feature_output(
    raw: str, fmt: FeatureFormat | None, source: Path, kind: str, inputs: list
) -> tuple[Path | None, str]:
    """The feature file ``-o`` names (``None``: standard output) and its format."""
    if raw == "-":
        if sys.stdout.isatty():
            raise UsageError("-o - writes binary feature data; send standard output to a file or a pipe")
        return None, fmt.value if fmt else "safetensors"
    default = f"{source.stem}.{kind}.{fmt.value if fmt else 'safetensors'}"
    out = output_file(raw, default, inputs, stdout_ok=False)
    assert out is not None
    return out, fmt.value if fmt else ("npz" if out.suffix.lower() == ".npz" else "safetensors")


def _report(summary: dict, as_json: bool, quiet: bool, t0: float) -> None:
    finish(summary, t0)
    if as_json:
        typer.echo(json.dumps(summary))
    elif not quiet:
        for out in summary["outputs"]:
            feats = ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in out["features"].items())
            typer.echo(f"wrote {out['path']}: {feats}", err=True)


def _describe(path: Path, seqs: dict) -> dict:
    return {
        "path": str(path),
        "features": {k: list(v.values.shape) for k, v in seqs.items()},
        "hop": {k: v.hop for k, v in seqs.items()},
    }


def _extract_one(
    source: Path,
    what: str,
    kind: str,
    output: str,
    fmt: FeatureFormat | None,
    label: str | None,
    compute: Callable[[ProgressBar], dict],
    as_json: bool,
    quiet: bool,
    debug: bool,
    models: tuple = (),
) -> None:
    """The body every `extract <modality>` shares: check, compute (with a progress bar), save, report."""
    t0 = time.perf_counter()
    summary: dict = {"input": str(source)}
    with guard(debug, as_json, summary):
        no_stdout_clash(output, as_json)
        out, fmt_name = _feature_output(output, fmt, source, kind, [source, *models])
        require_input(source, what)
        with ProgressBar(label is not None and not (quiet or as_json), label or "") as bar:
            seqs = compute(bar)
        from ..features.io import dump_features, save_features

        if out is None:
            dump_features(sys.stdout.buffer, seqs, format=fmt_name, source=source)
            sys.stdout.buffer.flush()
        else:
            make_parent(out)
            save_features(out, seqs, format=fmt_name, source=source)
        summary["outputs"] = [_describe(out if out is not None else Path("-"), seqs)]
        cut = seqs.get("video.cut")
        if cut is not None:
            summary["cuts"] = cut.meta.get("cuts", [])
    _report(summary, as_json, quiet, t0)


_OUT = Annotated[
    str,
    typer.Option(
        "--output",
        "-o",
        metavar="OUT",
        help="Feature file to write (.safetensors, "
        "or .npz), atomically; a folder (existing, or DIR/ to create it): "
        "<stem>.<modality>.safetensors inside it; '-': standard output.",
        show_default=False,
    ),
]
_FMT = Annotated[
    FeatureFormat | None,
    typer.Option("--format", "-f", help="File format (overrides OUT's extension).", show_default=False),
]
_A_FEATS = Annotated[
    str, typer.Option("--features", help="Comma-separated: logmel, mfcc, chroma, contrast, onset, rms, speech.")
]
_DELTAS = Annotated[int, typer.Option("--deltas", min=0, max=2, help="MFCC deltas: 0, 1 or 2 orders.")]
_V_FEATS = Annotated[str, typer.Option("--features", help="Comma-separated: hist, luma, motion, flow (slower), cut.")]
_VEMBED = Annotated[
    Path | None,
    typer.Option(
        "--embed",
        metavar="MODEL.pt",
        help="Also embed every analysed frame with your own TorchScript image model (input: RGB 0-1, NCHW).",
        show_default=False,
    ),
]
_DEVICE = Annotated[str, typer.Option("--device", help="Where --embed models run: cpu, cuda, cuda:N or auto.")]
_BATCH = Annotated[int, typer.Option("--batch-size", min=1, help="Frames per --embed batch.")]
_ESIZE = Annotated[int, typer.Option("--embed-size", min=8, help="Side of the square --embed input, pixels.")]
_CROP = Annotated[
    bool, typer.Option("--crop", help="Centre-crop frames to a square before --embed (otherwise they are resized).")
]
_T_FEATS = Annotated[
    str,
    typer.Option(
        "--features", help="Comma-separated: activity, embedding (hashed character n-grams), cues (per-cue table)."
    ),
]
_TEMBED = Annotated[
    Path | None,
    typer.Option(
        "--embed",
        metavar="MODEL.pt",
        help="Embed cue texts with your own TorchScript sentence model instead of hashed n-grams.",
        show_default=False,
    ),
]


@extract_app.command("audio", epilog=EXIT_CODES, cls=renamed_options({"--hop": "--audio-hop"}))
def extract_audio(
    media: Annotated[
        Path, typer.Argument(metavar="MEDIA", help="Audio or video file (any format FFmpeg reads).", show_default=False)
    ],
    output: _OUT,
    fmt: _FMT = None,
    features: _A_FEATS = "logmel,mfcc,speech",
    sr: SampleRate = 16000,
    audio_hop: AudioHop = 0.01,
    n_mels: NMels = 64,
    n_mfcc: NMfcc = 20,
    deltas: _DELTAS = 0,
    fmin: FMin = 0.0,
    fmax: FMax = None,
    audio_stream: AudioStream = None,
    jobs: Jobs = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
):
    """Audio features on the media's clock: log-mel, MFCC, chroma, spectral contrast, onset
    strength, RMS and speech probability, from one streamed, parallel decode.

    \b
    Examples:
      mmalign extract audio film.mkv -o film.audio.safetensors
      mmalign extract audio talk.mp3 -o talk.npz --features mfcc --deltas 2 --audio-hop 0.02
    """
    _extract_one(
        media,
        "media file",
        "audio",
        output,
        fmt,
        "audio features",
        lambda bar: source.audio_sequences(
            media,
            features,
            sr=sr,
            hop=audio_hop,
            n_mels=n_mels,
            n_mfcc=n_mfcc,
            deltas=deltas,
            fmin=fmin,
            fmax=fmax,
            audio_stream=audio_stream,
            jobs=jobs,
            progress=bar.update,
        ),
        as_json,
        quiet,
        debug,
    )


@extract_app.command("video", epilog=EXIT_CODES)
def extract_video(
    media: Annotated[
        Path, typer.Argument(metavar="MEDIA", help="Video file (any format FFmpeg reads).", show_default=False)
    ],
    output: _OUT,
    fmt: _FMT = None,
    features: _V_FEATS = "hist,luma,motion,cut",
    fps: Fps = 5.0,
    width: Width = 320,
    video_stream: VideoStream = None,
    embed: _VEMBED = None,
    device: _DEVICE = "cpu",
    batch_size: _BATCH = 32,
    embed_size: _ESIZE = 224,
    crop: _CROP = False,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
):
    """Video features at --fps frames per second of the media's clock (the frame on screen
    at each instant, variable frame rate honoured): HSV colour histogram, luminance and
    contrast, motion energy, optical flow, scene-cut score (cut times in the metadata).

    \b
    Examples:
      mmalign extract video film.mp4 -o film.video.safetensors
      mmalign extract video film.mp4 -o clip.safetensors --fps 2 --embed clip_image.pt --device auto
    """
    _extract_one(
        media,
        "media file",
        "video",
        output,
        fmt,
        "video features",
        lambda bar: source.video_sequences(
            media,
            features,
            fps=fps,
            width=width,
            video_stream=video_stream,
            embed=embed,
            device=device,
            batch_size=batch_size,
            embed_size=embed_size,
            crop=crop,
            progress=bar.update,
        ),
        as_json,
        quiet,
        debug,
        models=(embed,),
    )


@extract_app.command("subs", epilog=EXIT_CODES, cls=renamed_options({"--hop": "--text-hop", "--dim": "--text-dim"}))
def extract_subs(
    subs: Annotated[
        Path, typer.Argument(metavar="SUBS", help="Subtitle file (.vtt, .srt, .ass, .ssa).", show_default=False)
    ],
    output: _OUT,
    fmt: _FMT = None,
    features: _T_FEATS = "activity,embedding,cues",
    text_hop: TextHop = 0.01,
    text_dim: TextDim = 128,
    embed: _TEMBED = None,
    device: _DEVICE = "cpu",
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
):
    """Subtitle features: cue activity and a text embedding per frame (every --text-hop seconds),
    and a per-cue table (start, end, duration, characters, words, characters per second,
    position).

    \b
    Examples:
      mmalign extract subs film.srt -o film.text.safetensors
      mmalign extract subs film.srt -o film.text.npz --text-hop 0.1 --embed sentence_model.pt
    """
    _extract_one(
        subs,
        "subtitle file",
        "text",
        output,
        fmt,
        None,
        lambda bar: source.text_sequences(subs, features, hop=text_hop, dim=text_dim, embed=embed, device=device),
        as_json,
        quiet,
        debug,
        models=(embed,),
    )


@extract_app.command("all", epilog=EXIT_CODES, cls=renamed_options({"--hop": "--audio-hop"}))
def extract_all(
    media: Annotated[Path, typer.Argument(metavar="MEDIA", help="Video (or audio) file.", show_default=False)],
    subs: Annotated[
        Path | None, typer.Argument(metavar="[SUBS]", help="Its subtitle file.", show_default=False)
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Folder to write audio, video and text feature files into (created if missing).",
            show_default=False,
        ),
    ] = None,
    fmt: _FMT = None,
    audio_features: AudioFeatureList = "logmel,mfcc,speech",
    video_features: VideoFeatureList = "hist,luma,motion,cut",
    text_features: TextFeatureList = "activity,embedding,cues",
    sr: SampleRate = 16000,
    audio_hop: AudioHop = 0.01,
    n_mels: NMels = 64,
    n_mfcc: NMfcc = 20,
    fps: Fps = 5.0,
    width: Width = 320,
    text_hop: TextHop = 0.01,
    audio_stream: AudioStream = None,
    video_stream: VideoStream = None,
    jobs: Jobs = None,
    as_json: Json = False,
    quiet: Quiet = False,
    debug: Debug = False,
):
    """Every modality of one programme into DIR: <stem>.audio, <stem>.video and <stem>.text
    feature files (each stream decoded once). Video is skipped when MEDIA has none.

    \b
    Example:
      mmalign extract all film.mkv film.srt -o features/
    """
    t0 = time.perf_counter()
    summary: dict = {"input": str(media), "subtitles": None if subs is None else str(subs), "outputs": []}
    with guard(debug, as_json, summary):
        if output is None:
            raise UsageError("give the output folder with -o DIR")
        if str(output) == "-":
            raise UsageError("extract all writes several files; give a folder with -o DIR, not -o -")
        with ProgressBar(not (quiet or as_json), "") as bar:
            written = source.extract_all(
                media,
                subs,
                output,
                format=fmt.value if fmt else "safetensors",
                audio_features=audio_features,
                video_features=video_features,
                text_features=text_features,
                sr=sr,
                audio_hop=audio_hop,
                n_mels=n_mels,
                n_mfcc=n_mfcc,
                fps=fps,
                width=width,
                text_hop=text_hop,
                audio_stream=audio_stream,
                video_stream=video_stream,
                jobs=jobs,
                progress=bar.update,
                stage=bar.stage,
            )
        summary["outputs"] = [_describe(out, seqs) for out, seqs in written]
    _report(summary, as_json, quiet, t0)
