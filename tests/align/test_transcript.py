"""mmalign.align.transcript: transcripts in, aligned segments out (no synthesis: results made by hand)."""

from __future__ import annotations

import html
import io
import json
import re
import sys

import numpy as np
import pytest

from mmalign import subtitles
from mmalign.align.transcript import (
    alignment_to_json,
    alignment_to_subtitles,
    output_format,
    read_transcript,
    require_found,
    split_sentences,
    write_alignment,
)
from mmalign.align.words import AlignedSegment, AlignedWord, ForcedAlignment
from mmalign.errors import InputError, NotConfidentError, UsageError

# ---------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    "text, language, sentences",
    [
        (
            "Mr. Smith arrived. He sat down! Did he? Yes.",
            "en",
            ["Mr. Smith arrived.", "He sat down!", "Did he?", "Yes."],
        ),
        (
            "J. R. R. Tolkien wrote it. It sold, e.g. in Paris.",
            None,
            ["J. R. R. Tolkien wrote it.", "It sold, e.g. in Paris."],
        ),
        ('He said "Go!" Then he left... and came back.', "en", ['He said "Go!"', "Then he left... and came back."]),
        ("Am 3. Mai kam er. Er ging z.B. nach Hause.", "de", ["Am 3. Mai kam er.", "Er ging z.B. nach Hause."]),
        ("Mme. Dupont dit : « Bonjour. » Puis rien.", "fr", ["Mme. Dupont dit : « Bonjour. »", "Puis rien."]),
        ("¿Qué hora es? Son las tres. ¡Vamos!", "es", ["¿Qué hora es?", "Son las tres.", "¡Vamos!"]),
        ("今天天气很好。我们去公园吧！“你好！”他说。", "zh", ["今天天气很好。", "我们去公园吧！", "“你好！”他说。"]),
        ("散歩に行きましょう。「本当？」と彼は言った。", "ja", ["散歩に行きましょう。", "「本当？」と彼は言った。"]),
        ("No end mark here", None, ["No end mark here"]),
        ("  \n ", None, []),
    ],
)
def test_split_sentences(text, language, sentences):
    assert split_sentences(text, language=language) == sentences


def test_abbreviations_follow_the_language():
    """'Nr.' is a German abbreviation: no break in German, a break in English (whose list lacks it)."""
    text = "Das ist Nr. Zwei. Gut."
    assert split_sentences(text, language="de") == ["Das ist Nr. Zwei.", "Gut."]
    assert split_sentences(text, language="en") == ["Das ist Nr.", "Zwei.", "Gut."]


# ---------------------------------------------------------------- reading


def test_read_lines_drops_blank_lines_whatever_the_encoding(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffFirst line.\r\n\r\n  Second — línea.  \r\n".encode("utf-8"))
    assert read_transcript(path) == ["First line.", "Second — línea."]
    path.write_bytes("Eins.\nZwei drüben.\n".encode("utf-16"))
    assert read_transcript(path) == ["Eins.", "Zwei drüben."]


def test_read_sentences_joins_paragraph_lines(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Mr. Brown came\nhome late. He slept.\n\n今天天气\n很好。我们走吧。\n")
    assert read_transcript(path, split="sentences") == [
        "Mr. Brown came home late.",
        "He slept.",
        "今天天气很好。",
        "我们走吧。",
    ]


def test_read_subtitle_cues_as_segments(tmp_path):
    path = tmp_path / "t.srt"
    path.write_text(
        "1\n00:00:05,000 --> 00:00:06,000\n<i>Hello</i> there,\nmy friend.\n\n"
        "2\n00:00:01,000 --> 00:00:02,000\n♪ la la ♪\n"
    )
    assert read_transcript(path) == ["Hello there, my friend.", "♪ la la ♪"]
    with pytest.raises(UsageError, match="cues are its segments") as info:
        read_transcript(path, split="sentences")
    assert "--" not in str(info.value) and info.value.names == ("split",)


def test_read_refusals(tmp_path):
    with pytest.raises(InputError, match="nothing.txt: transcript not found"):
        read_transcript(tmp_path / "nothing.txt")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(InputError, match="empty.txt: the transcript has no text"):
        read_transcript(tmp_path / "empty.txt")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)))
    with pytest.raises(InputError, match="clip.mp4: not a text transcript"):
        read_transcript(tmp_path / "clip.mp4")
    with pytest.raises(UsageError, match="unknown split 'words'"):
        read_transcript(tmp_path / "empty.txt", split="words")


# ---------------------------------------------------------------- results


def _result(confidence=0.8):
    words0 = (
        AlignedWord("Tom", 1.0, 1.2, 0),
        AlignedWord("&", 1.25, 1.3, 0),
        AlignedWord("Jerry", 1.3, 1.7, 0),
        AlignedWord("<run>", 1.8, 2.1, 0),
        AlignedWord("ghost", 2.2, 2.3, 0),  # not in the text: no timestamp
        AlignedWord("away", 2.3, 2.6, 0),
        AlignedWord("late", 2.99995, 3.0, 0),  # at the cue's end once rounded: no timestamp
    )
    segs = (
        AlignedSegment(0, "Tom & Jerry <run> away late", 1.0, 3.0, 0.8, words0),
        AlignedSegment(1, "A paragraph the recording lacks.", None, None, float("nan"), (), "not in the recording"),
        AlignedSegment(2, "Bye.", 4.0, 4.5, 0.7, (AlignedWord("Bye", 4.0, 4.5, 2),)),
    )
    return ForcedAlignment(segs, "en", 5.0, confidence, np.zeros((1, 2), np.int64))


def test_vtt_karaoke_timestamps_read_back(tmp_path):
    out = tmp_path / "a.vtt"
    alignment_to_subtitles(_result(), words=True).write(out)
    back = subtitles.read(out)
    assert [(c.start, c.end) for c in back.cues] == [(1.0, 3.0), (4.0, 4.5)]  # the missing one left out
    first = back.cues[0].text
    assert first == "Tom <00:00:01.250>&amp; <00:00:01.300>Jerry <00:00:01.800>&lt;run&gt; <00:00:02.300>away late"
    stamps = re.findall(r"<(\d\d):(\d\d):(\d\d)\.(\d{3})>", first)
    seconds = [int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000 for h, m, s, ms in stamps]
    assert seconds == [1.25, 1.3, 1.8, 2.3]  # every word but the first, the one not in the text and the late one
    assert html.unescape(re.sub(r"<[\d:.]+>", "", first)) == "Tom & Jerry <run> away late"
    assert back.cues[1].text == "Bye."


def test_srt_has_cues_only(tmp_path):
    out = tmp_path / "a.srt"
    alignment_to_subtitles(_result(), format="srt").write(out)
    back = subtitles.read(out)
    assert [c.text for c in back.cues] == ["Tom & Jerry <run> away late", "Bye."]
    with pytest.raises(UsageError, match="SRT has no word times"):
        alignment_to_subtitles(_result(), format="srt", words=True)


def test_json_lists_missing_segments_without_times():
    doc = alignment_to_json(_result(), words=True, media="m.wav")
    assert list(doc)[:2] == ["media", "language"]
    assert doc["found"] == 2 and doc["not_found"] == [1] and doc["confidence"] == 0.8
    missing = doc["segments"][1]
    assert missing == {
        "index": 1,
        "text": "A paragraph the recording lacks.",
        "start": None,
        "end": None,
        "score": None,
        "reason": "not in the recording",
        "words": [],
    }
    assert doc["segments"][2]["words"] == [{"text": "Bye", "start": 4.0, "end": 4.5}]
    assert "words" not in alignment_to_json(_result())["segments"][0]


def test_write_alignment_by_extension_and_to_stdout(tmp_path):
    write_alignment(_result(), tmp_path / "a.json", words=True)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert len(doc["segments"]) == 3 and doc["segments"][0]["words"][0]["text"] == "Tom"
    stream = io.StringIO()
    write_alignment(_result(), None, stdout=stream, media="m.wav")
    assert json.loads(stream.getvalue())["media"] == "m.wav"
    write_alignment(_result(), tmp_path / "a.vtt")
    assert subtitles.read(tmp_path / "a.vtt").format == "vtt"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_output_format():
    assert [output_format(p) for p in ("a.VTT", "b.srt", "c.json", None)] == ["vtt", "srt", "json", "json"]
    with pytest.raises(UsageError, match="end the name with .vtt, .srt or .json"):
        output_format("a.txt")
    with pytest.raises(UsageError) as info:
        output_format("a.srt", words=True)
    assert info.value.names == ("words",) and "--words" in info.value.worded(lambda n: "--" + n)


def test_require_found():
    result = _result()
    assert require_found(result) is result
    with pytest.raises(NotConfidentError, match=r"confidence 0.80 < 0.9") as info:
        require_found(result, 0.9)
    assert info.value.result is result and info.value.exit_code == 4
    nothing = ForcedAlignment(result.segments[1:2], "en", 5.0, 0.0, np.zeros((1, 2), np.int64))
    with pytest.raises(NotConfidentError, match="none of the 1 segments was found"):
        require_found(nothing)


@pytest.mark.parametrize("aligner", ["attention", "combined"])
def test_the_attention_aligners_without_torch_are_refused_before_any_work(aligner, tmp_path, monkeypatch):
    """Without torch, --aligner attention|combined is a usage error naming the fix, raised before
    the transcript is read or the recording aligned (here the transcript does not even exist)."""
    from mmalign.align.transcript import align_transcript

    media = tmp_path / "talk.wav"
    media.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "mmalign.align.attention", None)
    with pytest.raises(UsageError, match=r"needs torch .*pip install 'mmalign\[torch\]', or use aligner dtw"):
        align_transcript(media, tmp_path / "missing.txt", aligner=aligner)
    with pytest.raises(UsageError, match="aligner must be one of dtw, attention, combined"):
        align_transcript(media, tmp_path / "missing.txt", aligner="ctc")
