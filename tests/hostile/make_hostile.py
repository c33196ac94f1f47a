"""Write the hostile-input corpus: malformed and adversarial subtitles and media.

Every file is made here from code (nothing generated is committed); :data:`EXPECTED`
says, beside each name, what mmalign must do with it:

- ``("cues", n)``: :func:`mmalign.subtitles.read` gives ``n`` cues (malformed blocks
  skipped with a warning);
- ``("error", 3)``: an :class:`~mmalign.errors.InputError` (exit code 3) with a
  one-line message naming the file;
- ``("truncated", 0)``: media cut short: decoded up to the cut, with a ``warning:``
  line that says it is truncated.

Usage::

    python tests/hostile/make_hostile.py FOLDER          # the quick corpus
    python tests/hostile/make_hostile.py FOLDER --big    # plus the 50 MB SRT

The 50 MB SRT (about 446k cues) is written only on request (``big=True``): it is
for the slow benchmark tests.
"""

from __future__ import annotations

import argparse
import random
import sys
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MP4 = ROOT / "sample_data" / "sample.mp4"


def _ts(ms: int, sep: str = ",") -> str:
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _srt(cues: list[tuple[str, str, str]]) -> str:
    """SRT text from (start, end, text) with the timestamps written as given."""
    return "".join(f"{n}\n{a} --> {b}\n{t}\n\n" for n, (a, b, t) in enumerate(cues, 1))


GOOD = ("00:00:01,000", "00:00:02,500", "Hello there.")
GOOD2 = ("00:00:03,000", "00:00:04,000", "Second line.")
_ASS_HEAD = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 1920\nPlayResY: 1080\n\n[V4+ Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
    "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
    "MarginL, MarginR, MarginV, Encoding\n"
    "Style: Default,Arial,48,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,2,2,10,10,10,1\n"
    "Style: Sign,Arial,40,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,-1,0,0,0,100,100,0,0,1,2,2,8,10,10,10,1\n"
    "Style: Song,Georgia,44,&H0000FFFF,&H000000FF,&H00000000,&H00000000,0,-1,0,0,100,100,0,0,1,2,2,2,10,10,10,1\n"
    "\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)

#: name -> what mmalign must do with it (see the module docstring).
EXPECTED: dict[str, tuple[str, int]] = {
    # subtitles
    "empty.srt": ("error", 3),
    "blank_lines.vtt": ("error", 3),
    "binary.srt": ("error", 3),
    "nul_bytes.srt": ("error", 3),  # NUL bytes in a text file: refused as binary, one line
    "plain_text.srt": ("error", 3),
    "numbers_only.srt": ("error", 3),
    "header_only.vtt": ("error", 3),
    "utf16le_nobom.srt": ("cues", 2),
    "utf16be_nobom.srt": ("cues", 2),
    "utf8_bom.srt": ("cues", 2),
    "cp1252.srt": ("cues", 2),
    "broken_timestamps.srt": ("cues", 1),
    "negative_timestamps.srt": ("cues", 1),
    "reversed.srt": ("cues", 1),
    "huge_99h.srt": ("cues", 3),
    "huge_999h.srt": ("cues", 3),
    "unrepresentable.srt": ("cues", 1),  # 10**30 hours and a 5000-digit hour: skipped with a warning
    "overlaps.srt": ("cues", 3),
    "long_line.srt": ("cues", 2),  # one cue holds a 10 MB line
    "comments_styles.ass": ("cues", 3),  # 2 Comment events are not cues
    "comments_only.ass": ("error", 3),
    "huge.ass": ("cues", 2),
    "v4_styles.ssa": ("cues", 2),
    "tags_unclosed.vtt": ("cues", 3),
    "tags_unclosed.srt": ("cues", 3),
    "crlf.srt": ("cues", 2),
    "cr_only.srt": ("cues", 2),
    "no_blank_lines.srt": ("cues", 3),
    "cp1252_crlf.sbv": ("cues", 2),  # YouTube SBV, read by webvtt-py
    "broken_timestamps.sbv": ("cues", 1),  # bad, reversed and unrepresentable times: skipped with a warning
    "no_timings.sbv": ("error", 3),
    # media
    "zero.mp4": ("error", 3),
    "text.mp4": ("error", 3),
    "random.wav": ("error", 3),
    "no_audio.mp4": ("error", 3),
    "truncated.wav": ("truncated", 0),
    "truncated.mp4": ("truncated", 0),
}
BIG = {"big.srt": ("cues", 446_000)}  # about: see make_big_srt


def make_big_srt(path: Path, size: int = 50_000_000) -> int:
    """Write an SRT of ``size`` bytes (about 446k two-line cues); return its cue count."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        t = 0
        while f.tell() < size:
            n += 1
            f.write(
                f"{n}\n{_ts(t)} --> {_ts(t + 1500)}\nCue number {n}, a line of dialogue\n"
                "and its second line, a bit longer\n\n"
            )
            t += 2000
    return n


def _sbv_ts(ms: int) -> str:
    return f"{ms // 3600000}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def make_big_sbv(path: Path, size: int = 50_000_000) -> int:
    """Write a YouTube SBV of ``size`` bytes (the cues of :func:`make_big_srt`); return its cue count."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        t = 0
        while f.tell() < size:
            n += 1
            f.write(
                f"{_sbv_ts(t)},{_sbv_ts(t + 1500)}\n"
                f"Cue number {n}, a line of dialogue\nand its second line, a bit longer\n\n"
            )
            t += 2000
    return n


def _wav(path: Path, seconds: float, sr: int = 16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(y.tobytes())
    return path.read_bytes()


def _video_only(path: Path) -> bool:
    """A 2 s video without an audio stream (PyAV); False if no encoder is available."""
    import av

    for codec in ("mpeg4", "libx264", "h264", "mjpeg"):
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - this build lacks it
            continue
        with av.open(str(path), "w") as out:
            s = out.add_stream(codec, rate=10)
            s.width, s.height, s.pix_fmt = 32, 24, "yuvj420p" if codec == "mjpeg" else "yuv420p"
            for i in range(20):
                frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), i * 10, np.uint8), format="rgb24")
                frame.pts = i
                for p in s.encode(frame):
                    out.mux(p)
            for p in s.encode(None):
                out.mux(p)
        return True
    return False


def make_hostile(folder, *, big: bool = False) -> list[Path]:
    """Write the corpus into ``folder`` (created); return the paths written.

    Files whose maker cannot run here (no video encoder, no sample clip) are left out.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(18)
    two = _srt([GOOD, GOOD2])
    files: dict[str, bytes] = {
        "empty.srt": b"",
        "blank_lines.vtt": b"\n\n  \n\t\n",
        "binary.srt": bytes(rng.randrange(256) for _ in range(4096)),
        "nul_bytes.srt": two.encode().replace(b"Hello", b"He\x00\x00llo"),
        "plain_text.srt": b"Just some prose.\nNo cues at all here.\n",
        "numbers_only.srt": b"1\n\n2\n\n3\n",
        "header_only.vtt": b"WEBVTT\n",
        "utf16le_nobom.srt": _srt([GOOD, ("00:00:03,000", "00:00:04,000", "Ça va, señor?")]).encode("utf-16-le"),
        "utf16be_nobom.srt": _srt([GOOD, ("00:00:03,000", "00:00:04,000", "Ça va, señor?")]).encode("utf-16-be"),
        "utf8_bom.srt": b"\xef\xbb\xbf" + two.encode(),
        "cp1252.srt": _srt([GOOD, ("00:00:03,000", "00:00:04,000", "Déjà vu – naïve café")]).encode("cp1252"),
        "broken_timestamps.srt": _srt(
            [("00:00:xx,000", "00:00:01,000", "bad"), GOOD, ("garbage", "00:00:05,000", "worse")]
        ).encode(),
        "negative_timestamps.srt": _srt([("-00:00:01,000", "00:00:02,000", "negative"), GOOD2]).encode(),
        "reversed.srt": _srt([("00:00:05,000", "00:00:03,000", "ends first"), GOOD]).encode(),
        "huge_99h.srt": _srt([GOOD, GOOD2, ("99:59:59,000", "99:59:59,900", "far away")]).encode(),
        "huge_999h.srt": _srt([GOOD, GOOD2, ("999:00:00,000", "999:00:01,000", "farther")]).encode(),
        "unrepresentable.srt": _srt(
            [
                ("1" + "0" * 30 + ":00:00,000", "1" + "0" * 30 + ":00:01,000", "never"),
                GOOD,
                ("9" * 5000 + ":00:00,000", "9" * 5000 + ":00:01,000", "nor this"),
            ]
        ).encode(),
        "overlaps.srt": _srt(
            [
                ("00:00:01,000", "00:00:05,000", "a"),
                ("00:00:02,000", "00:00:03,000", "b"),
                ("00:00:02,500", "00:00:06,000", "c"),
            ]
        ).encode(),
        "long_line.srt": _srt([GOOD, ("00:00:03,000", "00:00:04,000", "word " * 2_000_000)]).encode(),
        "comments_styles.ass": (
            _ASS_HEAD
            + "Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,Hello {\\i1}there{\\i0}.\n"
            + "Comment: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,translator note\n"
            + "Dialogue: 0,0:00:03.00,0:00:04.00,Sign,,0,0,0,,{\\an8}A sign\n"
            + "Comment: 0,0:01:00.00,0:01:05.00,Song,,0,0,0,,karaoke timing\n"
            + "Dialogue: 1,0:00:05.00,0:00:06.00,Song,,0,0,0,,{\\k20}La {\\k30}la\n"
        ).encode(),
        "comments_only.ass": (_ASS_HEAD + "Comment: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,only notes\n").encode(),
        "huge.ass": (
            _ASS_HEAD
            + "Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,near\n"
            + "Dialogue: 0,999:00:00.00,999:00:01.00,Default,,0,0,0,,far\n"
            + "Dialogue: 0,-0:00:01.00,0:00:02.00,Default,,0,0,0,,negative\n"
        ).encode(),
        "v4_styles.ssa": (
            b"[Script Info]\nScriptType: v4.00\n\n[V4 Styles]\nFormat: Name, Fontname, Fontsize\n"
            b"Style: Default,Arial,20\nStyle: Alt,Arial,18\n\n[Events]\n"
            b"Format: Marked, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
            b"Dialogue: Marked=0,0:00:01.00,0:00:02.00,Default,,0000,0000,0000,,one\n"
            b"Dialogue: Marked=0,0:00:03.00,0:00:04.00,Alt,,0000,0000,0000,,two, with comma\n"
        ),
        "tags_unclosed.vtt": (
            b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<i><b>nested, never closed\n\n"
            b"00:00:03.000 --> 00:00:04.000\n{\\i1}ASS tag without close <v Bob\n\n"
            b"00:00:05.000 --> 00:00:06.000\n</b></i>closing only &amp &lt;\n"
        ),
        "tags_unclosed.srt": _srt(
            [
                ("00:00:01,000", "00:00:02,000", "<i><b>nested, never closed"),
                ("00:00:03,000", "00:00:04,000", "{\\i1}no close <font color=red"),
                ("00:00:05,000", "00:00:06,000", "</i>only a close"),
            ]
        ).encode(),
        "crlf.srt": two.replace("\n", "\r\n").encode(),
        "cr_only.srt": two.replace("\n", "\r").encode(),
        "no_blank_lines.srt": _srt([GOOD, GOOD2, ("00:00:05,000", "00:00:06,000", "three")])
        .replace("\n\n", "\n")
        .encode(),
        "cp1252_crlf.sbv": "0:00:01.000,0:00:02.500\r\nHello there.\r\n\r\n0:00:03.000,0:00:04.000\r\n"
        "Déjà vu – naïve café\r\n".encode("cp1252"),
        "broken_timestamps.sbv": (
            "0:00:xx.000,0:00:01.000\nbad\n\n0:00:05.000,0:00:03.000\nends first\n\n"
            "0:00:01.000,0:00:02.500\nHello there.\n\n" + "9" * 5000 + ":00:00.000,0:00:01.000\nnever\n"
        ).encode(),
        "no_timings.sbv": b"0:00:01.000 - 0:00:02.000\nnot a timing line\n\nnor this\n",
        "zero.mp4": b"",
        "text.mp4": b"This is not a video.\nJust text with an .mp4 name.\n",
        "random.wav": bytes(rng.randrange(256) for _ in range(65536)),
    }
    written = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        written.append(folder / name)
    wav = _wav(folder / "truncated.wav", 40.0)  # 40 s; the header keeps saying so
    (folder / "truncated.wav").write_bytes(wav[: len(wav) // 2])
    written.append(folder / "truncated.wav")
    if SAMPLE_MP4.is_file():  # moov first: the first half of the media data stays readable
        data = SAMPLE_MP4.read_bytes()
        (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
        written.append(folder / "truncated.mp4")
    if _video_only(folder / "no_audio.mp4"):
        written.append(folder / "no_audio.mp4")
    if big:
        make_big_srt(folder / "big.srt")
        written.append(folder / "big.srt")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--big", action="store_true", help="also write the 50 MB SRT")
    args = parser.parse_args(argv)
    for path in make_hostile(args.folder, big=args.big):
        kind, value = {**EXPECTED, **BIG}[path.name]
        print(f"{path.name:28s} {kind:10s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
