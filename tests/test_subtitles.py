"""Tests of mmalign.subtitles: reading, writing, round trips, encodings, malformed input."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import numpy as np
import pytest

from mmalign import subtitles as S
from mmalign.errors import InputError, UsageError
from mmalign.subtitles import Cue, Subtitles

DATA = Path(__file__).parent / "data" / "subs"
SAMPLES = ["sample.vtt", "sample.srt", "sample.ass", "sample.ssa", "sample.sbv"]

SRT = "1\n00:00:01,000 --> 00:00:02,500\n{text}\n\n2\n00:00:03,000 --> 00:00:04,000\nsecond\n"


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip_is_byte_identical(name, tmp_path):
    subs = S.read(DATA / name)
    assert subs.format == name.rsplit(".", 1)[1]
    assert subs.skipped == 0 and subs.encoding == "utf-8"
    out = tmp_path / name
    subs.write(out)
    assert out.read_bytes() == (DATA / name).read_bytes()
    assert S.read(out).cues == subs.cues


def test_vtt_keeps_ids_settings_and_blocks():
    subs = Subtitles.read(DATA / "sample.vtt")
    assert [c.identifier for c in subs.cues] == ["intro", None, "3"]
    assert [c.settings for c in subs.cues] == ["align:start position:10%", "", "region:fred line:0"]
    assert subs.cues[0].text == "<v Roger Bingham>We are in New York City\nand it's <i>cold</i> &amp; wet"
    assert subs.header.startswith("WEBVTT - Sample file\nKind: captions")
    assert all(k in subs.header for k in ("REGION\nid:fred", "STYLE\n::cue {", "NOTE This is a header note"))
    assert subs.cues[2].notes_before == "NOTE\na note between cues\nspanning two lines\n\n"
    assert subs.footer == "\nNOTE final note\n"
    np.testing.assert_allclose(subs.starts, [1.0, 4.5, 65.2])
    np.testing.assert_allclose(subs.ends, [4.0, 6.25, 67.0])
    assert subs.starts.dtype == np.float64
    assert subs.warnings == []
    assert subs.plain_texts()[0] == "We are in New York City\nand it's cold & wet"


@pytest.mark.parametrize("name", SAMPLES)
def test_every_file_is_parsed_once(name, monkeypatch):
    """webvtt-py reads SBV (each block once) and nothing else: no file is parsed twice."""
    import webvtt

    calls = []
    for fn in ("from_buffer", "from_string", "read", "from_srt", "from_sbv"):
        real = getattr(webvtt, fn)
        monkeypatch.setattr(webvtt, fn, lambda *a, _fn=fn, _real=real, **k: calls.append((_fn, a)) or _real(*a, **k))
    subs = S.read(DATA / name)
    if name.endswith(".sbv"):
        assert [(fn, lines) for fn, (lines, *_) in calls] == [
            ("from_buffer", ["0:00:01.000,0:00:04.000", "Hello world", "second line"]),
            ("from_buffer", ["0:00:04.500,0:00:06.250", "Zweite Zeile – café"]),
            ("from_buffer", ["1:00:00.000,1:00:02.005", ">> Third, with a comma"]),
        ]
    else:
        assert calls == []
    assert len(subs) > 1 and not subs.warnings


def test_ass_keeps_fields_kinds_and_sections():
    subs = S.read(DATA / "sample.ass")
    # a Comment event is never shown: not a cue, kept verbatim before the next one
    assert [c.kind for c in subs.cues] == ["Dialogue", "Dialogue"]
    assert subs.cues[0].text == r"{\i1}Hello{\i0}, world\Nsecond line"
    assert list(subs.cues[1].fields) == ["Layer", "Style", "Name", "MarginL", "MarginR", "MarginV", "Effect"]
    assert subs.cues[1].fields["Effect"] == "Banner;30"
    assert subs.cues[1].notes_before == (
        "Comment: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,translator note\n; a comment line\n"
    )
    assert "[V4+ Styles]" in subs.header and subs.header.endswith(
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text"
    )
    assert "[Aegisub Project Garbage]" in subs.footer
    assert subs.plain_texts() == ["Hello, world\nsecond line", "Sign text"]
    assert S.read(DATA / "sample.ssa").cues[1].fields["Marked"] == "Marked=0"


@pytest.mark.parametrize(
    "text, speech",
    [
        ("[door slams]", False),
        ("(laughs)", False),
        ("<i>[MUSIC]</i>", False),
        ("{\\an8}[applause]", False),
        ("[Music continues", False),  # unclosed at the cue's end
        ("\u266a la la la \u266a", False),
        ("\u266a Singing in the rain \u266a\n[laughs]", False),
        ("JOHN: [sighs]", False),
        ("", False),
        ("- \u266a\n- \u266a", False),
        ("...", True),  # a hesitation: nothing marks it as a sound
        ("- [gasps]\n- What?", True),
        ("(whispering) Come here.", True),
        ("I (really) mean it", True),
        ("MAN 2: Get out!", True),
        ("Note: the ferry is late.", True),
        ("42", True),
        ("- \u00bfQu\u00e9?", True),
        ("\u041f\u0440\u0438\u0432\u0435\u0442", True),
    ],
)
def test_speech_mask_tells_spoken_cues_from_sound_descriptions(text, speech):
    subs = S.Subtitles([S.Cue(0.0, 1.0, "Hello."), S.Cue(1.0, 2.0, text)], "srt")
    assert subs.speech_mask().tolist() == [True, speech]


def test_speech_mask_ass_comments_are_not_speech():
    assert S.read(DATA / "sample.ass").speech_mask().tolist() == [True, True]  # the Comment is no cue
    built = S.Subtitles([S.Cue(0.0, 1.0, "Hi."), S.Cue(1.0, 2.0, "a note", kind="Comment")], "ass")
    assert built.speech_mask().tolist() == [True, False]


def test_crlf_is_kept(tmp_path):
    src = tmp_path / "crlf.srt"
    src.write_bytes(SRT.format(text="Hi").replace("\n", "\r\n").encode())
    subs = S.read(src)
    assert subs.newline == "\r\n" and subs.cues[0].text == "Hi"
    subs.write(tmp_path / "out.srt")
    assert (tmp_path / "out.srt").read_bytes() == src.read_bytes()


# ---------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    "encoding, text, detected",
    [
        ("utf-8", "café – naïve ♪", "utf-8"),
        ("utf-8-sig", "café – naïve ♪", "utf-8-sig"),
        ("utf-16", "café – naïve ♪", "utf-16"),  # BOM (LE on this machine)
        ("utf-16-le", "café – naïve ♪", "utf-16-le"),  # no BOM: NUL-byte heuristic
        ("cp1252", "café – naïve, à bientôt garçon", "cp1252"),
        ("latin-1", "café naïve, à bientôt garçon", "cp1252"),  # identical bytes: cp1252 preferred
        ("cp1251", "Привет, как дела? Хорошо, спасибо.", "cp1251"),
    ],
)
def test_encodings(encoding, text, detected, tmp_path):
    data = SRT.format(text=text).encode(encoding)
    assert S.detect_encoding(data) == detected
    path = tmp_path / "enc.srt"
    path.write_bytes(data)
    subs = S.read(path)
    assert subs.encoding == detected and subs.cues[0].text == text
    subs.write(tmp_path / "utf8.srt")  # UTF-8 without BOM by default
    assert (tmp_path / "utf8.srt").read_bytes() == SRT.format(text=text).encode("utf-8")
    subs.write(tmp_path / "same.srt", encoding=subs.encoding)
    assert (tmp_path / "same.srt").read_bytes() == data
    assert S.read(path, encoding=encoding).cues[0].text == text


def test_utf16_le_bom_and_utf32():
    data = codecs.BOM_UTF16_LE + SRT.format(text="x").encode("utf-16-le")
    assert S.detect_encoding(data) == "utf-16"
    assert S.detect_encoding(SRT.format(text="x").encode("utf-32")) == "utf-32"


def test_write_encoding_errors_are_usage_errors(tmp_path):
    subs = S.loads(SRT.format(text="日本語"))
    with pytest.raises(UsageError):
        subs.write(tmp_path / "a.srt", encoding="cp1252")
    with pytest.raises(UsageError):
        subs.write(tmp_path / "a.srt", encoding="no-such-codec")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- malformed input

MALFORMED_SRT = """

1
00:00:01,000 --> 00:00:02,000   \n\
First line
2
0:0:3.5 --> 0:0:4,25
no blank line before the index
00:05,200 --> 00:06,000
no index, no hours


x7
00:00:07,000 --> 00:00:08,000
garbled index
4
00:00:09,000 --> 00:00:0x,000
bad timing

5
00:00:12,000 --> 00:00:11,000
end before start

6
00:00:13,000 --> 00:00:13,000
zero length

7
00:00:12.500 --> 00:00:14.000
overlap, dot in SRT

stray text block
"""


def test_malformed_srt():
    subs = S.loads(MALFORMED_SRT)
    assert subs.format == "srt"
    assert [(c.start, c.end) for c in subs.cues] == [
        (1.0, 2.0),
        (3.5, 4.25),
        (5.2, 6.0),
        (7.0, 8.0),
        (13.0, 13.0),
        (12.5, 14.0),
    ]
    assert [c.identifier for c in subs.cues] == ["1", "2", None, "x7", "6", "7"]
    assert subs.cues[1].text == "no blank line before the index"
    assert subs.skipped == 3
    assert subs.warnings[0].startswith("line 17: cannot read cue timing")
    assert subs.warnings[1].startswith("line 21: cue ends before it starts")
    assert subs.warnings[2].startswith("line 32: text without a cue timing line")
    assert "1 cue(s) zero-length (kept)" in subs.warnings
    assert "1 cue(s) overlapping the previous one (kept)" in subs.warnings
    # written back as well-formed SRT with fresh indices where the read ones were not numbers
    out = S.loads(subs.to_string())
    assert out.skipped == 0 and [c.identifier for c in out.cues] == ["1", "2", "3", "4", "6", "7"]


def test_reading_a_file_says_what_was_skipped(tmp_path, caplog):
    """Skipped blocks are counted and said (a warning naming the file and the first one);
    oddities that are kept (zero-length, overlapping cues) are only counted."""
    import logging

    path = tmp_path / "broken.srt"
    path.write_text(MALFORMED_SRT, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="mmalign.subtitles"):
        subs = S.read(path)
    assert subs.skipped == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: 3 blocks could not be read and are left out (first: {subs.warnings[0]})"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mmalign.subtitles"):
        subs.write(tmp_path / "clean.srt")
        S.read(tmp_path / "clean.srt")
    assert not caplog.records


def test_malformed_vtt():
    text = (
        "WEBVTT\n\n00:00:01,000 --> 00:00:02,000\ncomma\n00:03.000 --> 00:04.000 align:end\n"
        "no blank line\n\n00:00:05.000 --> 00:00:0y.000\nbroken\n\njunk block\n"
    )
    subs = S.loads(text)
    assert [(c.start, c.end, c.settings) for c in subs.cues] == [(1.0, 2.0, ""), (3.0, 4.0, "align:end")]
    assert subs.skipped == 2
    assert [w.split(":")[0] for w in subs.warnings] == ["line 8", "line 11"]


def test_vtt_without_header(tmp_path):
    path = tmp_path / "nohead.vtt"
    path.write_text("00:00:01.000 --> 00:00:02.000\nhello\n")
    subs = S.read(path)
    assert subs.format == "vtt" and subs.cues[0].text == "hello"
    assert subs.to_string().startswith("WEBVTT\n\n00:00:01.000")
    assert any("WEBVTT" in w for w in subs.warnings)


def test_malformed_ass_event_is_skipped():
    text = (DATA / "sample.ass").read_text().replace("Dialogue: 1,0:00:04.50", "Dialogue: 1,0:00:xx.50")
    subs = S.loads(text)
    assert len(subs) == 1 and subs.skipped == 1 and subs.warnings[0].startswith("line 18: cannot read event")


# ---------------------------------------------------------------- conversion


def test_srt_vtt_ass_conversions(tmp_path):
    srt = S.read(DATA / "sample.srt")
    srt.write(tmp_path / "a.vtt")
    vtt = S.read(tmp_path / "a.vtt")
    assert vtt.format == "vtt" and vtt.skipped == 0
    assert [c.text for c in vtt.cues] == ["<i>Hello</i> world\nsecond line", "Zweite Zeile – café", "Third"]
    assert [c.identifier for c in vtt.cues] == ["1", "2", "3"] and vtt.cues[2].settings == ""
    vtt.write(tmp_path / "b.srt")
    back = S.read(tmp_path / "b.srt")
    np.testing.assert_array_equal(back.starts, srt.starts)
    np.testing.assert_array_equal(back.ends, srt.ends)
    vtt.write(tmp_path / "c.ass")
    ass = S.read(tmp_path / "c.ass")
    assert ass.format == "ass" and ass.cues[0].text == r"{\i1}Hello{\i0} world\Nsecond line"
    assert ass.cues[0].fields["Style"] == "Default"
    assert S.loads(ass.to_string("srt")).cues[0].text == "<i>Hello</i> world\nsecond line"


def test_ass_to_srt_drops_styling_and_comments():
    text = S.read(DATA / "sample.ass").to_string("srt")
    assert text == (
        "1\n00:00:01,000 --> 00:00:04,000\n<i>Hello</i>, world\nsecond line\n\n"
        "2\n00:00:04,500 --> 00:00:06,250\n<b>Sign text</b>\n"
    )


def test_vtt_to_srt_strips_vtt_only_markup():
    subs = S.read(DATA / "sample.vtt")
    out = S.loads(subs.to_string("srt"))
    assert [c.text for c in out.cues] == [
        "We are in New York City\nand it's <i>cold</i> & wet",
        "Second cue",
        "Third cue",
    ]
    assert [c.identifier for c in out.cues] == ["1", "2", "3"]


def test_format_from_extension_or_argument(tmp_path):
    subs = S.read(DATA / "sample.srt")
    subs.write(tmp_path / "x.txt")  # unknown extension: the source format
    assert S.read(tmp_path / "x.txt").format == "srt"
    subs.write(tmp_path / "y.txt", format="vtt")
    assert (tmp_path / "y.txt").read_text().startswith("WEBVTT")
    with pytest.raises(UsageError):
        subs.write(tmp_path / "z.sub", format="sub")
    with pytest.raises(UsageError):
        S.read(DATA / "sample.srt", format="sub")
    with pytest.raises(InputError, match="no readable subtitle cues"):  # SRT forced to be read as SBV
        S.read(DATA / "sample.srt", format="sbv")


def test_sniffing_prefers_content_over_extension(tmp_path):
    path = tmp_path / "really_vtt.srt"
    path.write_text((DATA / "sample.vtt").read_text())
    assert S.read(path).format == "vtt"
    assert S.loads((DATA / "sample.ssa").read_text()).format == "ssa"
    assert S.loads("1\n00:00:01.000 --> 00:00:02.000\nx\n").format == "srt"
    path = tmp_path / "youtube.srt"  # SBV content under another name
    path.write_text((DATA / "sample.sbv").read_text())
    assert S.read(path).format == "sbv" and len(S.read(path)) == 3
    # an SBV cue quoting an SRT timing is still SBV (its first line says so)
    assert S.loads("0:00:01.000,0:00:02.000\n00:00:01,000 --> 00:00:02,000\n").format == "sbv"


# ---------------------------------------------------------------- times


@pytest.mark.parametrize(
    "t, fmt, expected",
    [
        (1.0049999, "vtt", "00:00:01.005"),
        (1.001, "srt", "00:00:01,001"),
        (59.9996, "vtt", "00:01:00.000"),
        (3600 * 25 + 61.5, "srt", "25:01:01,500"),
        (1.236, "ass", "0:00:01.24"),
        (3599.999, "ass", "1:00:00.00"),
        (-0.5, "vtt", "00:00:00.000"),
    ],
)
def test_timestamp_formatting(t, fmt, expected):
    text = Subtitles([Cue(max(t, 0), max(t, 0) + 1, "x")], "srt").to_string(fmt)
    assert expected in text
    assert S._fmt_time(t, fmt) == expected


def test_map_times_and_with_times():
    subs = S.read(DATA / "sample.srt")
    shifted = subs.map_times(lambda t: t * 2 - 3.0)
    np.testing.assert_allclose(shifted.starts, [0.0, 6.0, 7197.0])  # clamped at 0
    np.testing.assert_allclose(shifted.ends, [5.0, 9.5, 7201.01])
    assert [c.text for c in shifted.cues] == [c.text for c in subs.cues]
    assert subs.starts[0] == 1.0  # original untouched
    squashed = subs.with_times([5.0, 5.0, 5.0], [4.0, 6.0, 5.0])  # end < start -> end = start
    np.testing.assert_allclose(squashed.ends, [5.0, 6.0, 5.0])
    assert [c.identifier for c in squashed.cues] == ["1", "2", "3"]
    with pytest.raises(UsageError):
        subs.with_times([1.0], [2.0])
    with pytest.raises(UsageError):
        subs.map_times(lambda t: t * np.nan)


# ---------------------------------------------------------------- writing and errors


def test_map_times_with_a_timemap_maps_cues_as_spans():
    """Touching cues across a split: the cue before it keeps its end (TimeMap.apply_spans)."""
    from mmalign.subtitles import Cue, Subtitles
    from mmalign.timeline import TimeMap

    subs = Subtitles([Cue(4.0, 10.0, "before"), Cue(10.0, 13.0, "after")], "vtt")
    moved = subs.map_times(TimeMap([-np.inf, 10.0], [1.0, 1.0], [0.0, 30.0]))
    assert [(c.start, c.end) for c in moved.cues] == [(4.0, 10.0), (40.0, 43.0)]


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.srt"
    target.write_text("original")
    subs = S.read(DATA / "sample.srt")
    subs.write(target)
    assert target.read_bytes() == (DATA / "sample.srt").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["out.srt"]

    target.write_text("original")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    from mmalign.errors import OutputError

    with pytest.raises(OutputError, match="out.srt: cannot write: disk full"):  # the user's path, not the temporary
        subs.write(target)
    assert target.read_text() == "original"
    assert [p.name for p in tmp_path.iterdir()] == ["out.srt"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.srt", None, "not found"),
        ("empty.srt", b"", "empty"),
        ("blank.vtt", b"  \n\n", "empty"),
        ("bytes.srt", bytes(range(256)) * 20, "not a subtitle file"),
        ("png.srt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "not a subtitle file"),
        ("words.txt", b"just some words\nno timings here\n", "not a subtitle file"),
        ("words.srt", b"just some words\nno timings here\n", "no readable subtitle cues (1 malformed"),
        ("broken.srt", b"1\n00:00:0x,000 --> 00:00:02,000\nbroken\n", "no readable subtitle cues (1 malformed"),
        ("note.vtt", b"WEBVTT\n\nNOTE only a note\n", "no readable subtitle cues"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else "",
)
def test_input_errors(name, content, message, tmp_path):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as err:
        S.read(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value) and err.value.exit_code == 3


def test_directory_and_bad_arguments(tmp_path):
    with pytest.raises(InputError):
        S.read(tmp_path)
    with pytest.raises(UsageError):
        S.read(DATA / "sample.srt", encoding="no-such-codec")
    with pytest.raises(InputError, match="no readable subtitle cues"):  # wrong codec: garbage text
        S.read(DATA / "sample.srt", encoding="utf-16")


def test_ass_comment_events_are_retimed_with_the_cues():
    """Comment events are no cues (not counted, never shown) but move with the script."""
    text = (
        (DATA / "sample.ass")
        .read_text()
        .replace(
            "[Aegisub Project Garbage]",
            "Comment: 0,0:00:07.00,0:00:08.00,Default,,0,0,0,,last note\n\n[Aegisub Project Garbage]",
        )
    )
    subs = S.loads(text)
    assert len(subs) == 2
    out = subs.map_times(lambda t: 2 * t + 1).to_string()
    assert "Comment: 0,0:00:05.00,0:00:07.00,Default,,0,0,0,,translator note\n" in out
    assert "Comment: 0,0:00:15.00,0:00:17.00,Default,,0,0,0,,last note\n" in out
    assert "Dialogue: 0,0:00:03.00,0:00:09.00,Default,Roger" in out and out.endswith("Active Line: 2\n")
    assert subs.map_times(lambda t: t).to_string() == subs.to_string() == text


# ---------------------------------------------------------------- YouTube SBV (read by webvtt-py)

MALFORMED_SBV = """0:00:01.000,0:00:02.000
first
  line two, indented

0:00:03.000,0:00:02.500
ends before it starts

0:0:4.0,0:0:5.0
short fields: webvtt-py does not read them

99999999999:00:00.000,99999999999:00:01.000
beyond any timestamp

0:00:06.000,0:00:07.000

0:00:08.000,0:00:08.000
zero length
"""


def test_malformed_sbv_blocks_are_counted_and_named():
    subs = S.loads(MALFORMED_SBV)
    assert subs.format == "sbv"
    assert [(c.start, c.end, c.text) for c in subs.cues] == [
        (1.0, 2.0, "first\n  line two, indented"),
        (6.0, 7.0, ""),  # a timing line alone: a cue without text, as in SRT and WebVTT
        (8.0, 8.0, "zero length"),
    ]
    assert subs.skipped == 3
    assert subs.warnings[:3] == [
        "line 5: cue ends before it starts ('0:00:03.000,0:00:02.500'); block skipped",
        "line 8: cannot read cue timing '0:0:4.0,0:0:5.0'; block skipped",
        "line 11: timestamp '99999999999:00:00.000,99999999999:00:01.' is too large; block skipped",
    ]
    assert "1 cue(s) zero-length (kept)" in subs.warnings
    # written back as well-formed SBV, which reads back unchanged
    assert S.loads(subs.to_string()).cues == subs.cues and S.loads(subs.to_string()).skipped == 0


def test_sbv_time_beyond_float_milliseconds_is_skipped():
    """webvtt-py reads hours up to 10 digits; past 2**53 ms a time has no exact float: skipped."""
    subs = S.loads("0:00:01.000,0:00:02.000\nok\n\n9999999999:00:00.000,9999999999:00:01.000\nfar\n")
    assert len(subs) == 1 and subs.skipped == 1 and "too large" in subs.warnings[0]
    fine = S.loads("999999:00:00.000,999999:00:01.000\nfar but exact\n")
    assert fine.cues[0].start == 999999 * 3600.0


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "cp1252"])
def test_sbv_encodings_are_detected(encoding, tmp_path):
    text = "0:00:01.000,0:00:02.500\nDéjà vu – naïve café\n"
    path = tmp_path / "enc.sbv"
    path.write_bytes(text.encode(encoding))
    subs = S.read(path)
    assert subs.format == "sbv" and subs.encoding == encoding and subs.cues[0].text == "Déjà vu – naïve café"
    subs.write(tmp_path / "same.sbv", encoding=subs.encoding)
    assert (tmp_path / "same.sbv").read_bytes() == path.read_bytes()


def test_sbv_crlf_round_trip(tmp_path):
    path = tmp_path / "crlf.sbv"
    path.write_bytes((DATA / "sample.sbv").read_bytes().replace(b"\n", b"\r\n"))
    subs = S.read(path)
    assert subs.newline == "\r\n" and len(subs) == 3
    subs.write(tmp_path / "out.sbv")
    assert (tmp_path / "out.sbv").read_bytes() == path.read_bytes()


def test_sbv_conversions(tmp_path):
    """SBV is plain text: markup is dropped on the way in; times and text survive both ways."""
    S.read(DATA / "sample.srt").write(tmp_path / "a.sbv")
    sbv = S.read(tmp_path / "a.sbv")
    assert sbv.format == "sbv" and sbv.skipped == 0
    assert [c.text for c in sbv.cues] == ["Hello world\nsecond line", "Zweite Zeile – café", "Third"]
    assert [c.identifier for c in sbv.cues] == [None, None, None]
    np.testing.assert_array_equal(sbv.starts, S.read(DATA / "sample.srt").starts)
    sbv.write(tmp_path / "b.srt")
    assert S.read(tmp_path / "b.srt").to_string() == (
        "1\n00:00:01,000 --> 00:00:04,000\nHello world\nsecond line\n\n"
        "2\n00:00:04,500 --> 00:00:06,250\nZweite Zeile – café\n\n"
        "3\n01:00:00,000 --> 01:00:02,005\nThird\n"
    )
    assert S.read(DATA / "sample.ass").to_string("sbv") == (
        "0:00:01.000,0:00:04.000\nHello, world\nsecond line\n\n0:00:04.500,0:00:06.250\nSign text\n"
    )


def test_sbv_sync_round_trip(tmp_path):
    """Read, re-time, write: what a sync does to an SBV file."""
    subs = S.read(DATA / "sample.sbv").map_times(lambda t: 1.001 * t + 0.5)
    subs.write(tmp_path / "synced.sbv")
    assert (tmp_path / "synced.sbv").read_text().startswith("0:00:01.501,0:00:04.504\nHello world\n")
    back = S.read(tmp_path / "synced.sbv")
    np.testing.assert_allclose(back.starts, np.round(1.001 * np.array([1.0, 4.5, 3600.0]) + 0.5, 3))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"0:00:01.000;0:00:02.000\nsemicolon\n", "no readable subtitle cues (1 malformed"),
        (b"0:00:01.000,0:00:02.000\n" + bytes(range(256)) * 20, "not a subtitle file"),
        (b"\n\n  \n", "empty"),
    ],
)
def test_sbv_input_errors_are_one_line(content, message, tmp_path):
    path = tmp_path / "bad.sbv"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        S.read(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value) and err.value.exit_code == 3
    assert path.read_bytes() == content


def test_sbv_write_failure_writes_nothing(tmp_path):
    subs = S.loads("0:00:01.000,0:00:02.000\n日本語\n")
    with pytest.raises(UsageError):
        subs.write(tmp_path / "a.sbv", encoding="cp1252")
    assert list(tmp_path.iterdir()) == []
