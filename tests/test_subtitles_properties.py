"""Property tests (hypothesis) of the subtitle readers and writers.

1. Any cue list survives write -> read in every format, up to the documented
   normalisation (module docstring of :mod:`mmalign.subtitles`, "Writing any text"),
   re-implemented here independently; a second round trip changes nothing.
2. Any byte string given to the reader gives cues or a one-line ``InputError``
   naming the file: never another exception, never a hang.

Examples per property: profile ``ci`` (200, the default) or ``thorough`` (10,000),
chosen with ``HYPOTHESIS_PROFILE`` (tests/conftest.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mmalign import subtitles as S  # noqa: E402
from mmalign.errors import InputError  # noqa: E402

from conftest import deadline  # noqa: E402

FORMATS = ("vtt", "srt", "ass", "ssa", "sbv")


# ---------------------------------------------------------------- strategies

MARKUP = [
    "<i>",
    "</i>",
    "<b>",
    "<v Bob>",
    "<c.x>",
    "{\\i1}",
    "{\\an8}",
    "\\N",
    "\\n",
    "&amp;",
    "&lt;",
    "-->",
    "->",
    "- >",
    "1",
    "00:00:01,000 --> 00:00:02,000",
    "00:01.000 -> 00:02.000",
    "0:00:01.000,0:00:02.000",
    "WEBVTT",
    "NOTE",
    "[Events]",
    "Dialogue:",
    "Comment:",
    "Format:",
    ",",
    ":",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "\x00",
    "\x1b",
    "\ufeff",
    "\u2028",
    "\x85",
    "\xa0",
    "é",
    "😀",
    "\u202e",
]
texts = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(MARKUP)), max_size=8).map("".join)
ms = st.integers(min_value=0, max_value=400 * 3600 * 1000)  # up to 400 hours


@st.composite
def cue_lists(draw):
    n = draw(st.integers(min_value=1, max_value=8))
    cues = []
    for _ in range(n):
        a, b = sorted((draw(ms), draw(ms)))
        cues.append((a, b, draw(texts)))
    return cues


# ---------------------------------------------------------------- the documented normalisation


def expected_text(text: str, fmt: str) -> str:
    """What a cue's text must read back as, from the rules in the module docstring."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if not (ord(ch) < 32 and ch not in "\t\n" or ord(ch) == 127))
    if fmt in ("ass", "ssa"):
        return text.replace("\n", "\\N")
    lines = [line for line in text.split("\n") if line.strip()]
    if fmt == "sbv":
        return "\n".join(lines)
    return "\n".join(line.replace("->", "-&gt;" if fmt == "vtt" else "- >") for line in lines)


def expected_time(t_ms: int, fmt: str) -> float:
    return (t_ms + 5) // 10 / 100 if fmt in ("ass", "ssa") else t_ms / 1000


def write_read(subs: S.Subtitles, fmt: str) -> S.Subtitles:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"cues.{fmt}"
        subs.write(path)
        with deadline(10):
            return S.read(path)


@given(cues=cue_lists(), fmt=st.sampled_from(FORMATS))
@pytest.mark.slow
def test_any_cue_list_survives_a_round_trip(cues, fmt):
    subs = S.Subtitles([S.Cue(a / 1000, b / 1000, text) for a, b, text in cues], fmt)
    back = write_read(subs, fmt)
    assert back.format == fmt and len(back) == len(cues) and back.skipped == 0
    for cue, (a, b, text) in zip(back.cues, cues):
        assert cue.text == expected_text(text, fmt)
        assert abs(cue.start - expected_time(a, fmt)) < 1e-6 and abs(cue.end - expected_time(b, fmt)) < 1e-6
    again = write_read(back, fmt)
    assert again.cues == back.cues  # normalised text is a fixed point


@given(cues=cue_lists(), fmt=st.sampled_from(FORMATS), target=st.sampled_from(FORMATS))
@pytest.mark.slow
def test_any_cue_list_converts_to_every_format(cues, fmt, target):
    """Across formats the times survive (markup may be translated or dropped)."""
    subs = S.Subtitles([S.Cue(a / 1000, b / 1000, text) for a, b, text in cues], fmt)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"cues.{target}"
        subs.write(path)
        with deadline(10):
            got = S.read(path)
    assert got.format == target and len(got) == len(cues)
    for cue, (a, b, _) in zip(got.cues, cues):
        assert abs(cue.start - expected_time(a, target)) < 1e-6 and abs(cue.end - expected_time(b, target)) < 1e-6


# ---------------------------------------------------------------- any bytes

FRAGMENTS = [
    b"WEBVTT\n",
    b"\n",
    b"\r\n",
    b"\r",
    b"1\n",
    b"00:00:01,000 --> 00:00:02,000\n",
    b"00:01.000 --> 00:00.500\n",
    b"0:00:01.000,0:00:02.000\n",
    b"9999999999:00:01.000,0:00:02.000\n",
    b"99999999999999999999999:00:00,000 --> 1:00:00,000\n",
    b"-->",
    b"[Script Info]\n",
    b"[Events]\n",
    b"Format: Layer, Start, End, Text\n",
    b"Format: Text\n",
    b"Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,hi\n",
    b"Dialogue: ,,,\n",
    b"Comment: 0,0:00:01.00,0:00:02.00,,\n",
    b"NOTE x\n",
    b"STYLE\n",
    b"<i>",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\xe9",
    b"text line\n",
    b"[V4 Styles]\n",
    b"ScriptType: v4.00\n",
]
byte_strings = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=8)), max_size=30).map(b"".join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=30)
    .map(b"".join)
    .map(lambda b: b.decode("latin-1").encode("utf-16-le")),
)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=byte_strings, ext=st.sampled_from(["srt", "vtt", "ass", "ssa", "sbv", "txt", ""]))
@pytest.mark.slow
def test_any_bytes_give_cues_or_one_line_input_error(data, ext):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (f"input.{ext}" if ext else "input")
        path.write_bytes(data)
        try:
            with deadline(10):
                subs = S.read(path)
        except InputError as exc:
            message = str(exc)
            assert "\n" not in message and "\r" not in message and message.startswith(str(path)), message
            assert len(message) < 500
        else:
            assert len(subs) > 0
            assert all(0 <= c.start <= c.end <= S.MAX_SECONDS for c in subs.cues)
            subs.to_string()  # and what was read can be written
        assert path.read_bytes() == data


def test_normalisation_rules_are_what_the_writer_does():
    """A fixed example of each rule (so a change in them shows here, not only as a shrunk example)."""
    cues = [S.Cue(0.0, 1.0, " a -> b \r\n\n  \r\x00c\x1b\t"), S.Cue(1.0, 2.0, "")]
    for fmt, want in (
        ("vtt", " a -&gt; b \nc\t"),
        ("srt", " a - > b \nc\t"),
        ("ass", " a -> b \\N\\N  \\Nc\t"),
        ("sbv", " a -> b \nc\t"),
    ):
        assert [c.text for c in S.loads(S.Subtitles(cues, fmt).to_string()).cues] == [want, ""], fmt
    assert S.loads(S.Subtitles(cues, "vtt").to_string()).plain_texts()[0] == " a -> b \nc\t"  # the same words
