#!/usr/bin/env python3
"""Generate the committed demo/test sample for ``mmalign sync``.

Run from the repository root::

    python sample_data/make_sample.py

It writes, next to this script:

``sample.mp4``
    About 60 s of synthetic "video": a 320x180, 15 fps H.264 picture track
    (moving shapes, a background colour that changes per sentence, the time
    code and frame number drawn as text) and a 22.05 kHz mono AAC (64 kbit/s)
    audio track with 16 English sentences spoken by espeak-ng in several
    voices, speeds and pitches.  Sentences are separated by pauses of
    0.4 s to 3.6 s, plus one long 7 s pause holding only a quiet background
    (a soft tone bed at about -35 dBFS).  A very low noise floor (about
    -60 dBFS) runs under the whole track, so it is never digital silence.

``sample.vtt``
    The correct subtitles: one cue per sentence, cue identifiers "1", "2",
    ..., start/end at the true speech onset/offset in the mixed track.
    Every utterance is trimmed of espeak-ng's leading/trailing silence with
    an amplitude threshold (first/last sample whose magnitude exceeds
    ``TRIM_DB`` dB relative to the utterance peak) *before* it is placed,
    so a cue starts exactly at the first and ends exactly at the last
    above-threshold sample (rounded to the millisecond).

``sample.mistimed.vtt``
    The same cues with every timestamp moved by one global transform, an
    offset of +3.7 s followed by the PAL speed-up (23.976 fps -> 25 fps)::

        mistimed = (truth + 3.7) * 25 / (24000/1001)
                 = (truth + 3.7) * 25025/24000          (ratio 1.0427083...)

    ``mmalign sync`` has to undo it; the inverse is::

        truth = mistimed * 960/1001 - 3.7              (960/1001 = 0.95904095...)

    The error is about +3.9 s at the first cue and grows to about +6.5 s at the
    end of the last one.

``truth.json``
    ``{"transform": {"scale": 960/1001, "offset": -3.7}, "cues": [...]}``
    where ``truth = scale * mistimed + offset`` and ``cues`` are the correct
    cues (seconds, millisecond precision) exactly as written in sample.vtt.

The script is deterministic: fixed texts, voices and pauses, a seeded random
generator for the noise floor, and single-threaded x264 encoding, so running it
twice with the same espeak-ng / PyAV versions gives identical files.  (Another
espeak-ng version may render slightly different utterances; the subtitles are
always derived from the audio actually generated, so they stay correct.)

Only this generator needs espeak-ng (the Debian ``espeak-ng`` package); it
stops with an error if espeak-ng is missing.  Encoding and muxing use PyAV,
drawing uses numpy + OpenCV.  Users of the sample need none of this: the
generated files are committed.

After writing the files the script checks them (``verify``): it reopens the
mp4 with PyAV, checks the streams and duration, decodes the audio and compares
a 10 ms RMS envelope with the cues (cue intervals are speech, gaps are quiet,
detected speech edges sit within a few ms of the cue times), and re-parses both
VTT files.  ``--verify-only`` runs only this check on the existing files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------
SR = 22050  # audio sample rate (espeak-ng's native rate)
AUDIO_BITRATE = 64_000  # AAC bit rate
FPS = 15  # picture track frame rate
WIDTH, HEIGHT = 320, 180  # picture size
X264_CRF = "30"

TRIM_DB = -50.0  # trim threshold, dB relative to the utterance peak
SPEECH_RMS_DBFS = -20.0  # loudness of each utterance (RMS over its active part)
PEAK_CAP_DBFS = -1.0  # no utterance peaks above this
NOISE_FLOOR_DBFS = -60.0  # RMS of the (low-passed) noise floor under everything
TONE_BED_DBFS = -35.0  # RMS of the soft tone bed in the long pause
TONE_FADE_S = 0.5  # fade in/out of the tone bed ...
TONE_MARGIN_S = 0.5  # ... which starts/stops this far from the speech
SEED = 20240607

LEAD_IN_S = 1.0  # before the first sentence
TAIL_S = 1.2  # after the last sentence

# The global mistiming: mistimed = (truth + OFFSET_BEFORE) * SPEEDUP
OFFSET_BEFORE = Fraction(37, 10)  # +3.7 s
SPEEDUP = Fraction(25) / Fraction(24000, 1001)  # 25025/24000 = 1.0427083...
# Inverse, as stored in truth.json: truth = SCALE * mistimed + OFFSET
SCALE = 1 / SPEEDUP  # 960/1001
OFFSET = -OFFSET_BEFORE  # -3.7 s


@dataclass(frozen=True)
class Line:
    text: str
    voice: str  # espeak-ng -v
    speed: int  # espeak-ng -s (words per minute)
    pitch: int  # espeak-ng -p (0..99)
    pause_after: float  # seconds of non-speech after this sentence (last: ignored)


# 16 sentences; pauses between 0.4 s and 3.6 s plus one long 7 s pause.
LINES: list[Line] = [
    Line("Good morning, and welcome to the harbour.", "en-us", 165, 50, 0.6),
    Line("The first ferry leaves at half past seven.", "en-gb+f3", 150, 62, 1.5),
    Line("Please keep your tickets ready.", "en-gb-scotland", 175, 40, 0.4),
    Line("The weather today is cool, with a light breeze.", "en-us+m3", 160, 45, 1.8),
    Line("Seagulls are circling above the pier.", "en-029", 140, 55, 0.9),
    Line("Have you seen my blue umbrella?", "en-us+f2", 185, 70, 3.6),
    Line("It was right here, next to the coffee stand.", "en-gb-x-rp", 155, 35, 1.1),
    Line("Never mind, I have found it now.", "en-us-nyc+f4", 170, 60, 7.0),  # long pause
    Line("Now, on to the afternoon schedule.", "en-gb", 145, 48, 0.5),
    Line("The museum opens at two and closes at six.", "en-us+m7", 170, 30, 2.0),
    Line("Children under twelve travel for free.", "en-gb-scotland+f5", 160, 66, 1.3),
    Line("Remember to bring a warm jacket for the evening.", "en-029+m2", 150, 42, 0.8),
    Line("The lighthouse tour is fully booked.", "en-us+f1", 180, 58, 2.5),
    Line("That is a pity.", "en-gb-x-rp+m4", 135, 52, 0.45),
    Line("Maybe we can go next weekend instead.", "en-us", 155, 44, 1.4),
    Line("Thank you for listening, and enjoy your day by the sea.", "en-gb+f2", 150, 56, 0.0),
]

# Per-sentence background colours (BGR for OpenCV), cycled.
PALETTE = [
    (180, 105, 40),
    (60, 140, 200),
    (90, 170, 60),
    (150, 60, 160),
    (40, 90, 200),
    (160, 150, 30),
    (70, 70, 190),
    (120, 160, 140),
]


# --------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------
def require_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        sys.exit(
            "make_sample.py: ERROR: 'espeak-ng' was not found on PATH.\n"
            "It is needed to synthesise the speech (Debian/Ubuntu: "
            "apt-get install espeak-ng).  Nothing was written."
        )
    return exe


def speak(exe: str, line: Line, tmpdir: str) -> np.ndarray:
    """Synthesise one sentence; returns float64 mono samples at SR."""
    import soundfile as sf

    wav = os.path.join(tmpdir, "utt.wav")
    cmd = [exe, "-v", line.voice, "-s", str(line.speed), "-p", str(line.pitch), "-a", "100", "-w", wav, line.text]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not os.path.exists(wav):
        raise RuntimeError(f"espeak-ng failed ({' '.join(cmd)}): {res.stderr.strip()}")
    x, sr = sf.read(wav, dtype="float64", always_2d=True)
    os.remove(wav)
    if sr != SR:
        raise RuntimeError(f"espeak-ng produced {sr} Hz audio, expected {SR} Hz")
    x = x.mean(axis=1)
    if not np.any(x):
        raise RuntimeError(f"espeak-ng produced silence for voice {line.voice!r}")
    return x


def trim(x: np.ndarray) -> np.ndarray:
    """Cut leading/trailing samples below TRIM_DB relative to the peak."""
    a = np.abs(x)
    idx = np.flatnonzero(a > a.max() * 10 ** (TRIM_DB / 20))
    return x[idx[0] : idx[-1] + 1]


def level(x: np.ndarray) -> np.ndarray:
    """Scale to SPEECH_RMS_DBFS (RMS over 10 ms frames within 30 dB of the loudest),
    then cap the peak at PEAK_CAP_DBFS."""
    h = SR // 100
    n = len(x) // h
    fr = np.sqrt(np.mean(x[: n * h].reshape(n, h) ** 2, axis=1))
    active = fr[fr > fr.max() * 10 ** (-30 / 20)]
    rms = math.sqrt(float(np.mean(active**2)))
    y = x * (10 ** (SPEECH_RMS_DBFS / 20) / rms)
    cap = 10 ** (PEAK_CAP_DBFS / 20)
    pk = np.abs(y).max()
    if pk > cap:
        y *= cap / pk
    return y


def noise_floor(n: int, rng: np.random.Generator) -> np.ndarray:
    """Soft low-passed noise with RMS NOISE_FLOOR_DBFS."""
    w = rng.standard_normal(n + 64)
    k = np.hanning(33)
    k /= k.sum()
    y = np.convolve(w, k, mode="same")[32 : 32 + n]
    return y * (10 ** (NOISE_FLOOR_DBFS / 20) / np.sqrt(np.mean(y**2)))


def tone_bed(n: int) -> np.ndarray:
    """A soft, slowly beating chord (A3 + E4 + A4) with RMS TONE_BED_DBFS and fades."""
    t = np.arange(n) / SR
    y = np.sin(2 * np.pi * 220.0 * t) + 0.6 * np.sin(2 * np.pi * 330.4 * t) + 0.3 * np.sin(2 * np.pi * 440.7 * t)
    y *= 1 + 0.2 * np.sin(2 * np.pi * 0.5 * t)
    y *= 10 ** (TONE_BED_DBFS / 20) / np.sqrt(np.mean(y**2))
    f = int(TONE_FADE_S * SR)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, f))
    y[:f] *= ramp
    y[-f:] *= ramp[::-1]
    return y


@dataclass
class Cue:
    start: float
    end: float
    text: str


def build_audio(exe: str) -> tuple[np.ndarray, list[Cue], list[tuple[float, float]]]:
    """Returns (mix as float32, cues, [(start, end) of the tone bed])."""
    utts = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for line in LINES:
            utts.append(level(trim(speak(exe, line, tmpdir))))

    # Place utterances on the sample grid; cue times are the exact sample
    # positions rounded to the millisecond (error < 0.5 ms).
    starts = []
    pos = LEAD_IN_S
    for line, u in zip(LINES, utts):
        s = int(round(pos * SR))
        starts.append(s)
        pos = (s + len(u)) / SR + line.pause_after
    total = starts[-1] + len(utts[-1]) + int(round(TAIL_S * SR))

    rng = np.random.default_rng(SEED)
    mix = noise_floor(total, rng)
    beds = []
    for i, (line, s, u) in enumerate(zip(LINES, starts, utts)):
        mix[s : s + len(u)] += u
        if line.pause_after >= 5.0 and i + 1 < len(LINES):
            b0 = s + len(u) + int(TONE_MARGIN_S * SR)
            b1 = starts[i + 1] - int(TONE_MARGIN_S * SR)
            mix[b0:b1] += tone_bed(b1 - b0)
            beds.append((b0 / SR, b1 / SR))

    cues = [Cue(round(s / SR, 3), round((s + len(u)) / SR, 3), line.text) for line, s, u in zip(LINES, starts, utts)]
    peak = np.abs(mix).max()
    if peak >= 1.0:
        raise RuntimeError(f"mix clips (peak {peak:.3f})")
    return mix.astype(np.float32), cues, beds


# --------------------------------------------------------------------------
# Picture
# --------------------------------------------------------------------------
def draw_frame(i: int, cues: list[Cue]) -> np.ndarray:
    import cv2

    t = i / FPS
    cur = -1
    for k, c in enumerate(cues):
        if c.start <= t:
            cur = k
    speaking = cur >= 0 and t < cues[cur].end
    if cur < 0:
        bg = (40, 40, 40)
    else:
        b, g, r = PALETTE[cur % len(PALETTE)]
        f = 1.0 if speaking else 0.45  # dimmer during pauses
        bg = (int(b * f), int(g * f), int(r * f))
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[:] = bg

    # a bouncing circle on a Lissajous path
    cx = int(WIDTH / 2 + 120 * math.sin(2 * math.pi * t / 7.0))
    cy = int(HEIGHT / 2 + 55 * math.sin(2 * math.pi * t / 4.3 + 0.7))
    cv2.circle(img, (cx, cy), 18, (245, 245, 245), -1, cv2.LINE_AA)
    # a rotating square
    ang = 40.0 * t
    box = cv2.boxPoints(((WIDTH - 50.0, 50.0), (34.0, 34.0), ang)).astype(np.int32)
    cv2.fillPoly(img, [box], (30, 220, 250), cv2.LINE_AA)
    # a bar sliding along the bottom
    bx = int((t * 40) % (WIDTH + 60)) - 60
    cv2.rectangle(img, (bx, HEIGHT - 14), (bx + 60, HEIGHT - 6), (20, 20, 20), -1)

    ms = int(round(t * 1000))
    tc = f"{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
    cv2.putText(img, tc, (10, 32), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(img, f"frame {i}", (10, 58), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    label = f"sentence {cur + 1}" if speaking else "pause"
    cv2.putText(img, label, (10, HEIGHT - 24), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return img[:, :, ::-1].copy()  # BGR -> RGB


# --------------------------------------------------------------------------
# Encoding (PyAV)
# --------------------------------------------------------------------------
def write_mp4(path: Path, mix: np.ndarray, cues: list[Cue]) -> None:
    import av

    codecs = av.codecs_available
    vcodec = "libx264" if "libx264" in codecs else "mpeg4"
    n_audio = len(mix)
    n_video = int(math.ceil(n_audio / SR * FPS))

    tmp = path.with_name(path.name + ".tmp.mp4")
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        vs = out.add_stream(vcodec, rate=FPS)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if vcodec == "libx264":
            vs.options = {"crf": X264_CRF, "preset": "slow", "threads": "1", "g": str(FPS * 4), "tune": "animation"}
        else:
            vs.bit_rate = 150_000
        as_ = out.add_stream("aac", rate=SR)
        as_.layout = "mono"
        as_.bit_rate = AUDIO_BITRATE

        fsz = 1024
        a_next = 0
        for i in range(n_video + 1):
            # audio up to (and a bit past) this video frame's time, interleaved
            limit = n_audio if i == n_video else min(n_audio, int((i + 1) / FPS * SR))
            while a_next < limit:
                chunk = mix[a_next : a_next + fsz]
                af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
                af.sample_rate = SR
                af.pts = a_next
                af.time_base = Fraction(1, SR)
                for p in as_.encode(af):
                    out.mux(p)
                a_next += len(chunk)
            if i < n_video:
                vf = av.VideoFrame.from_ndarray(draw_frame(i, cues), format="rgb24")
                vf = vf.reformat(format="yuv420p")
                vf.pts = i
                vf.time_base = Fraction(1, FPS)
                for p in vs.encode(vf):
                    out.mux(p)
        for p in as_.encode(None):
            out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# Subtitles
# --------------------------------------------------------------------------
def ts(sec: float) -> str:
    ms = int(round(sec * 1000))
    if ms < 0:
        raise ValueError(f"negative timestamp {sec}")
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def wrap(text: str, width: int = 42) -> str:
    """Split a long sentence over two lines at the space nearest the middle."""
    if len(text) <= width:
        return text
    spaces = [m.start() for m in re.finditer(" ", text)]
    # prefer a break after a comma if one is reasonably central
    commas = [k for k in spaces if text[k - 1] == "," and abs(k - len(text) / 2) <= 10]
    mid = min(commas or spaces, key=lambda k: abs(k - len(text) / 2))
    return text[:mid] + "\n" + text[mid + 1 :]


def mistime(t: float) -> float:
    return float((Fraction(t).limit_denominator(10**6) + OFFSET_BEFORE) * SPEEDUP)


def write_vtt(path: Path, cues: list[Cue], note: str) -> None:
    parts = ["WEBVTT", "", "NOTE", note.strip(), ""]
    for k, c in enumerate(cues, 1):
        parts += [str(k), f"{ts(c.start)} --> {ts(c.end)}", wrap(c.text), ""]
    path.write_text("\n".join(parts), encoding="utf-8", newline="\n")


TRANSFORM_TEXT = (
    "mistimed = (truth + 3.7) * 25 / (24000/1001) = (truth + 3.7) * 25025/24000\n"
    "(an offset of +3.7 s, then the PAL speed-up 23.976 fps to 25 fps, ratio 1.0427083...).\n"
    "Inverse: truth = mistimed * 960/1001 - 3.7  (960/1001 = 0.959040959...)."
)


def write_outputs(cues: list[Cue]) -> None:
    truth_note = (
        "Correct subtitles for sample.mp4, generated by sample_data/make_sample.py.\n"
        "Speech synthesised with espeak-ng (one sentence per cue); each utterance was\n"
        f"trimmed at {TRIM_DB:g} dB below its peak before being placed in the mix, so every\n"
        "cue starts and ends at the true speech onset/offset (ms precision).\n"
        "sample.mistimed.vtt holds the same cues with\n" + TRANSFORM_TEXT
    )
    write_vtt(HERE / "sample.vtt", cues, truth_note)

    mis = [Cue(round(mistime(c.start), 3), round(mistime(c.end), 3), c.text) for c in cues]
    mis_note = (
        "MIS-TIMED on purpose (test input for mmalign sync); the correct cues are in\n"
        "sample.vtt.  Generated by sample_data/make_sample.py from the correct cues by\n" + TRANSFORM_TEXT
    )
    write_vtt(HERE / "sample.mistimed.vtt", mis, mis_note)

    truth = {
        "transform": {"scale": float(SCALE), "offset": float(OFFSET)},
        "transform_exact": {
            "scale": f"{SCALE.numerator}/{SCALE.denominator}",
            "offset": f"{OFFSET.numerator}/{OFFSET.denominator}",
            "maps": "truth = scale * mistimed + offset",
            "forward": "mistimed = (truth + 3.7) * 25025/24000",
        },
        "cues": [{"start": c.start, "end": c.end, "text": c.text} for c in cues],
    }
    (HERE / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------
def parse_vtt(path: Path) -> list[Cue]:
    """Tiny WebVTT reader (enough for the files written here)."""
    blocks = path.read_text(encoding="utf-8").strip().split("\n\n")
    assert blocks[0].startswith("WEBVTT"), path
    out = []

    def sec(s: str) -> float:
        h, m, rest = s.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest)

    for b in blocks[1:]:
        ls = b.split("\n")
        if ls[0].startswith("NOTE"):
            continue
        ident, timing, text = ls[0], ls[1], " ".join(ls[2:])
        assert ident == str(len(out) + 1), (path, ident)
        a, b_ = timing.split(" --> ")
        out.append(Cue(sec(a), sec(b_), text))
    return out


def verify() -> None:
    import av

    mp4 = HERE / "sample.mp4"
    problems: list[str] = []
    size = mp4.stat().st_size
    print(f"sample.mp4: {size} bytes ({size / 1e6:.2f} MB)")
    if size >= 1_500_000:
        problems.append("mp4 larger than 1.5 MB")

    with av.open(str(mp4)) as c:
        a_st = [s for s in c.streams if s.type == "audio"]
        v_st = [s for s in c.streams if s.type == "video"]
        dur = c.duration / 1e6
        print(
            f"  container duration {dur:.3f} s; streams: "
            + ", ".join(f"{s.type}:{s.codec_context.name}" for s in c.streams)
        )
        if len(a_st) != 1 or a_st[0].codec_context.name != "aac":
            problems.append("expected exactly one aac audio stream")
        if len(v_st) != 1:
            problems.append("expected exactly one video stream")
        a, v = a_st[0], v_st[0]
        print(
            f"  audio: {a.codec_context.name} {a.codec_context.sample_rate} Hz "
            f"{a.codec_context.layout.name}, {a.codec_context.bit_rate} bit/s; "
            f"video: {v.codec_context.name} {v.codec_context.width}x"
            f"{v.codec_context.height} @ {v.average_rate} fps, {v.frames} frames"
        )
        if not 45 <= dur <= 75:
            problems.append(f"duration {dur:.1f} s outside 45..75 s")
        chunks, first_pts = [], None
        for fr in c.decode(a):
            if first_pts is None:
                first_pts = float(fr.pts * fr.time_base)
            chunks.append(fr.to_ndarray().reshape(-1))
    x = np.concatenate(chunks).astype(np.float64)
    sr = a.codec_context.sample_rate
    print(f"  decoded audio: {len(x) / sr:.3f} s, first frame pts {first_pts:.4f} s")

    cues = parse_vtt(HERE / "sample.vtt")
    mis = parse_vtt(HERE / "sample.mistimed.vtt")
    truth = json.loads((HERE / "truth.json").read_text(encoding="utf-8"))
    sc, off = truth["transform"]["scale"], truth["transform"]["offset"]
    for k, (c, m, j) in enumerate(zip(cues, mis, truth["cues"]), 1):
        if (c.start, c.end) != (j["start"], j["end"]) or c.text != j["text"]:
            problems.append(f"truth.json cue {k} differs from sample.vtt")
        for tt, mm in ((c.start, m.start), (c.end, m.end)):
            if abs(sc * mm + off - tt) > 0.0015:
                problems.append(f"cue {k}: transform does not map {mm} back to {tt}")
            if mm < 0:
                problems.append(f"cue {k}: negative mistimed time")
    if not (len(cues) == len(mis) == len(truth["cues"])):
        problems.append("cue counts differ between files")
    err = [m.start - c.start for c, m in zip(cues, mis)]
    print(f"  cues: {len(cues)}; mistimed error from {err[0]:+.3f} s to {err[-1]:+.3f} s")

    # 10 ms RMS envelope of the decoded (AAC) audio.  The decoder returns the
    # whole last AAC frame (zero padding past the stream's end): cut it off.
    n_valid = int(round(float(a.duration * a.time_base) * sr))
    x = x[:n_valid]
    n = int(len(x) * 100 // sr)
    bounds = np.round(np.arange(n + 1) * sr / 100).astype(np.int64)
    cs = np.concatenate([[0.0], np.cumsum(x * x)])
    env = 10 * np.log10((cs[bounds[1:]] - cs[bounds[:-1]]) / np.diff(bounds) + 1e-24)
    speech_thr = -45.0  # dBFS: speech frames are far above, the noise floor far below
    bed_thr = -30.0  # dBFS: the tone bed in the long pause stays under this

    def fr(t: float) -> int:
        return int(round(t * 100))

    # onset/offset detection: 2 ms RMS around the expected edge
    h2 = sr // 500

    def edge(t: float, onset: bool) -> float:
        lo, hi = int((t - 0.15) * sr), int((t + 0.15) * sr)
        seg = x[lo:hi]
        m = len(seg) // h2
        e = 20 * np.log10(np.sqrt(np.mean(seg[: m * h2].reshape(m, h2) ** 2, axis=1)) + 1e-12)
        above = np.flatnonzero(e > -50.0)
        if len(above) == 0:
            return float("nan")
        k = above[0] if onset else above[-1] + 1
        return (lo + k * h2) / sr

    errs = []
    for k, c in enumerate(cues, 1):
        seg = env[fr(c.start) : fr(c.end)]
        frac = float(np.mean(seg > speech_thr))
        e_on, e_off = edge(c.start, True) - c.start, edge(c.end, False) - c.end
        errs += [e_on, e_off]
        if frac < 0.6:
            problems.append(f"cue {k}: only {frac:.0%} of 10 ms frames are speech")
        if not (abs(e_on) <= 0.012 and abs(e_off) <= 0.012):
            problems.append(f"cue {k}: detected edges off by {e_on * 1000:+.0f}/{e_off * 1000:+.0f} ms")
        print(
            f"  cue {k:2d} {c.start:7.3f}-{c.end:7.3f}  speech frames {frac:4.0%}  "
            f"onset {e_on * 1000:+5.1f} ms  offset {e_off * 1000:+5.1f} ms"
        )

    # non-speech: before the first cue, between cues, after the last cue
    # (20 ms kept clear of each cue edge)
    edges = [0.0] + [t for c in cues for t in (c.start, c.end)] + [len(x) / sr]
    short, bed = [], []
    for g0, g1 in zip(edges[::2], edges[1::2]):
        seg = env[fr(g0) + (2 if g0 > 0 else 0) : max(fr(g0), fr(g1) - 2)]
        (bed if g1 - g0 >= 5.0 else short).append(seg)
    short_e, bed_e = np.concatenate(short), np.concatenate(bed)
    print(
        f"  pauses < 5 s: {len(short_e)} frames, max {short_e.max():.1f} dBFS, "
        f"median {np.median(short_e):.1f} dBFS (limit {speech_thr} dBFS)"
    )
    print(
        f"  long pause(s): {len(bed_e)} frames, max {bed_e.max():.1f} dBFS, "
        f"median {np.median(bed_e):.1f} dBFS (limit {bed_thr} dBFS)"
    )
    print(
        f"  quietest 10 ms frame {env.min():.1f} dBFS; edge errors: max |err| "
        f"{np.nanmax(np.abs(errs)) * 1000:.1f} ms, mean {np.nanmean(errs) * 1000:+.1f} ms"
    )
    if short_e.max() > speech_thr:
        problems.append(f"a pause frame reaches {short_e.max():.1f} dBFS")
    if bed_e.max() > bed_thr:
        problems.append(f"the long pause reaches {bed_e.max():.1f} dBFS")
    if float(env.min()) < -80:
        problems.append("digital silence found")
    long_gaps = [b.start - a_.end for a_, b in zip(cues, cues[1:])]
    print(f"  pauses between cues: min {min(long_gaps):.2f} s, max {max(long_gaps):.2f} s")
    if not (0.35 <= min(long_gaps) and 6.0 <= max(long_gaps) <= 8.0):
        problems.append("pause lengths out of the intended range")

    if problems:
        raise SystemExit("VERIFY FAILED:\n  " + "\n  ".join(problems))
    print("verify: OK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--verify-only", action="store_true", help="only check the existing files")
    args = ap.parse_args()
    if not args.verify_only:
        exe = require_espeak()
        mix, cues, beds = build_audio(exe)
        print(
            f"audio: {len(mix) / SR:.3f} s, {len(cues)} sentences, "
            f"tone bed {', '.join(f'{a:.2f}-{b:.2f} s' for a, b in beds)}"
        )
        write_mp4(HERE / "sample.mp4", mix, cues)
        write_outputs(cues)
        for name in ("sample.mp4", "sample.vtt", "sample.mistimed.vtt", "truth.json"):
            print(f"wrote {HERE / name}")
    verify()


if __name__ == "__main__":
    main()
