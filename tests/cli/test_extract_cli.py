"""``mmalign extract``: events at known times are found in every modality's feature file."""

from __future__ import annotations

import hashlib
import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from mmalign.cli import app
from mmalign.features.io import load_features, read_metadata

from conftest import first_encoder, vtt_text

SR = 16000
FPS = 25
TONE = (2.0, 2.5)  # a 1 kHz tone burst
FLASH = (3.0, 3.12)  # three white frames
CUT = 4.0  # a hard cut to another picture
CUE = (5.0, 6.0)  # one subtitle cue
SECONDS = 7.0


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def picture(t: float) -> np.ndarray:
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w]
    if FLASH[0] <= t < FLASH[1]:
        return np.full((h, w, 3), 255, np.uint8)
    if t < CUT:  # a dim blue scene with stripes
        img = np.zeros((h, w, 3), np.uint8)
        img[..., 2] = 90 + 40 * ((xx // 8) % 2)
        return img
    img = np.zeros((h, w, 3), np.uint8)  # a bright orange scene with a checkerboard
    img[..., 0] = 200 + 40 * (((xx // 8) + (yy // 8)) % 2)
    img[..., 1] = 120
    return img


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    import av

    codec = first_encoder("libx264", "h264", "mpeg4")
    if codec is None:
        pytest.skip("no video encoder")
    folder = tmp_path_factory.mktemp("events")
    path = folder / "events.mkv"
    t = np.arange(int(SECONDS * SR)) / SR
    audio = np.where((t >= TONE[0]) & (t < TONE[1]), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=FPS)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.codec_context.time_base = Fraction(1, FPS)
        a = out.add_stream("pcm_s16le", rate=SR, layout="mono")
        for i in range(int(SECONDS * FPS)):
            frame = av.VideoFrame.from_ndarray(picture(i / FPS), format="rgb24")
            frame.pts = i
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
        pcm = (audio * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = SR, 0
        for packet in a.encode(frame):
            out.mux(packet)
        for packet in a.encode(None):
            out.mux(packet)
    subs = folder / "events.vtt"
    subs.write_text(vtt_text([CUE[0]], [CUE[1]], ["a line"]))
    return path, subs


def first_above(seq_values: np.ndarray, times: np.ndarray, level: float) -> float:
    return float(times[np.flatnonzero(seq_values >= level)[0]])


def test_extract_all_finds_every_event_within_one_hop(events, tmp_path):
    media, subs = events
    out = tmp_path / "feats"
    result = run("extract", "all", media, subs, "-o", out, "--audio-features", "rms,logmel", "--fps", "5", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [Path(o["path"]).name for o in summary["outputs"]] == [
        "events.audio.safetensors",
        "events.video.safetensors",
        "events.text.safetensors",
    ]

    audio = load_features(out / "events.audio.safetensors")
    rms = audio["audio.rms"]
    level = rms.values[:, 0]
    hop = rms.hop
    assert first_above(level, rms.times, level.max() / 2) == pytest.approx(TONE[0], abs=hop)
    last = float(rms.times[np.flatnonzero(level >= level.max() / 2)[-1]])
    assert last == pytest.approx(TONE[1], abs=hop)

    video = load_features(out / "events.video.safetensors")
    luma = video["video.luma"]
    vhop = luma.hop
    bright = luma.times[luma.values[:, 0] > 0.9]
    assert len(bright) >= 1 and abs(bright[0] - FLASH[0]) <= vhop
    cuts = video["video.cut"].meta["cuts"]
    assert len(cuts) == 1 and cuts[0] == pytest.approx(CUT, abs=vhop)  # the flash is not a cut

    text = load_features(out / "events.text.safetensors")
    act = text["text.activity"]
    assert first_above(act.values[:, 0], act.times, 0.5) == pytest.approx(CUE[0], abs=act.hop)

    # The files say how they were made, readable by the plain safetensors reader.
    meta = read_metadata(out / "events.audio.safetensors")
    assert meta["source"]["sha256"] == hashlib.sha256(media.read_bytes()).hexdigest()
    raw = load_file(str(out / "events.video.safetensors"))
    assert raw["video.hist"].dtype == np.float32 and raw["video.hist.times"].dtype == np.float64


def test_extract_audio_npz_and_json(events, tmp_path):
    media, _ = events
    out = tmp_path / "a.npz"
    result = run(
        "extract", "audio", media, "-o", out, "--features", "mfcc", "--deltas", "1", "--audio-hop", "0.02", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["outputs"][0]["features"] == {"audio.mfcc": [351, 40]}
    seq = load_features(out)["audio.mfcc"]
    assert seq.hop == pytest.approx(0.02) and seq.values.shape == (351, 40)
    with np.load(out, allow_pickle=False) as z:
        assert "audio.mfcc.times" in z


def test_extract_subs(events, tmp_path):
    _, subs = events
    out = tmp_path / "t.safetensors"
    result = run("extract", "subs", subs, "-o", out, "--features", "embedding,cues", "--text-dim", "32", "-q")
    assert result.exit_code == 0 and result.output == ""
    seqs = load_features(out)
    assert seqs["text.embedding"].values.shape[1] == 32 and len(seqs["text.cues"]) == 1


@pytest.mark.parametrize(
    "command, old, new, value, options",
    [
        ("audio", "--hop", "--audio-hop", "0.02", ["--features", "rms"]),
        ("subs", "--hop", "--text-hop", "0.1", ["--features", "activity"]),
        ("subs", "--dim", "--text-dim", "16", ["--features", "embedding"]),
        ("all", "--hop", "--audio-hop", "0.02", ["--audio-features", "rms", "--video-features", "none"]),
    ],
)
def test_renamed_options_keep_working_for_one_release(events, tmp_path, command, old, new, value, options):
    """The old name gives the same files as the new one, with one warning line, and is not in --help."""
    media, subs = events
    inputs = {"audio": [media], "subs": [subs], "all": [media, subs]}[command]
    got = {}
    for name in (old, new):
        out = tmp_path / name.strip("-")
        result = run("extract", command, *inputs, "-o", f"{out}/", name, value, *options, "--json")
        assert result.exit_code == 0, result.output
        got[name] = {p.name: load_features(p) for p in sorted(out.iterdir())}
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        expected = [f"warning: {old} is deprecated since 0.2.0 and goes in 0.3.0; use {new}"] if name == old else []
        assert warnings == expected
    assert got[old].keys() == got[new].keys() and got[new]
    for file, seqs in got[new].items():
        for key, seq in seqs.items():
            old_seq = got[old][file][key]
            assert old_seq.hop == seq.hop and np.array_equal(old_seq.values, seq.values)
    help_text = run("extract", command, "--help").stdout
    assert new in help_text and not re.search(rf"(?<![\w-]){old}\b", help_text)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["audio", "{media}", "-o", "{tmp}/x.safetensors", "--features", "pitch"], 2, "unknown audio feature pitch"),
        (["video", "{media}", "-o", "{tmp}/nope/x.safetensors"], 2, "output folder does not exist"),
        (["audio", "{tmp}/missing.mp4", "-o", "{tmp}/x.safetensors"], 3, "media file not found"),
        (["video", "{subs}", "-o", "{tmp}/x.safetensors"], 3, ""),
        (["subs", "{media}", "-o", "{tmp}/x.safetensors"], 3, ""),
        (["all", "{media}", "{subs}"], 2, "-o DIR"),
    ],
)
def test_extract_errors(events, tmp_path, args, code, message):
    media, subs = events
    argv = [a.format(media=media, subs=subs, tmp=tmp_path) for a in args]
    result = run("extract", *argv)
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.safetensors"))
