"""``mmalign align``: DTW between feature files, media and subtitles, from the command line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from mmalign import subtitles
from mmalign.cli import app
from mmalign.features.io import save_features
from mmalign.timeline import FeatureSeq, TimeMap

HOP = 0.02


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def smooth_features(n, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 40, d))
    kernel = np.hanning(21)
    x = np.stack([np.convolve(x[:, k], kernel / kernel.sum(), mode="same") for k in range(d)], 1)
    return x[20 : 20 + n].astype(np.float32)


def warp(t):
    """B's time of A's time t: 1.5 s later, running 10 % slower after 20 s."""
    return 1.5 + np.where(t < 20, t, 20 + (t - 20) * 1.1)


@pytest.fixture
def warped_pair(tmp_path):
    """A: 40 s of smooth features; B: the same content on the clock ``warp``, with 1.5 s of lead-in."""
    a = smooth_features(2000)
    ta = np.arange(2000) * HOP
    tb = np.arange(int(warp(ta[-1]) / HOP) + 25) * HOP
    # B's frame at time s shows A's content at warp^-1(s)
    inv = np.interp(tb, warp(ta), ta, left=-1, right=-1)
    b = np.stack([np.interp(inv, ta, a[:, k]) for k in range(a.shape[1])], 1).astype(np.float32)
    b[inv < 0] = 0
    pa, pb = tmp_path / "a.safetensors", tmp_path / "b.npz"
    save_features(pa, [FeatureSeq(a, HOP, 0.0, "audio.mfcc"), FeatureSeq(a[:, :2], HOP, 0.0, "audio.rms")])
    save_features(pb, [FeatureSeq(b, HOP, 0.0, "audio.mfcc")])
    return pa, pb


@pytest.mark.parametrize("extra", [[], ["--multiscale"], ["--band", "3"]], ids=["exact", "multiscale", "band"])
def test_recovers_a_known_warp(warped_pair, tmp_path, extra):
    pa, pb = warped_pair
    out = tmp_path / "ab.json"
    result = run("align", pa, pb, "-o", out, "--json", *extra)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["feature_a"] == summary["feature_b"] == "audio.mfcc"
    assert summary["multiscale"] is ("--multiscale" in extra)
    doc = json.loads(out.read_text())
    tm = TimeMap.from_dict(doc["timemap"])
    t = np.linspace(2, 38, 50)
    assert np.max(np.abs(tm.apply(t) - warp(t))) < 3 * HOP
    path = np.array(doc["path"])
    assert path.shape[1] == 2 and np.all(np.diff(path, axis=0) >= 0)
    assert len(doc["path_seconds"]) == len(path)


def test_subsequence_finds_a_stretch_inside(tmp_path):
    long = smooth_features(3000, seed=3)
    part = long[1200:1500]
    pa, pb = tmp_path / "part.safetensors", tmp_path / "long.safetensors"
    save_features(pa, [FeatureSeq(part, HOP, 0.0, "audio.mfcc")])
    save_features(pb, [FeatureSeq(long, HOP, 0.0, "audio.mfcc")])
    out = tmp_path / "where.json"
    result = run("align", pa, pb, "--subsequence", "-o", out, "-q")
    assert result.exit_code == 0 and result.output == ""
    tm = TimeMap.from_dict(json.loads(out.read_text())["timemap"])
    assert tm.apply(0.0) == pytest.approx(1200 * HOP, abs=HOP)


def test_media_against_its_subtitles(sample, tmp_path):
    out = tmp_path / "m.json"
    result = run("align", sample / "sample.mp4", sample / "sample.vtt", "-o", out, "--json", "--no-path")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["feature_a"], summary["feature_b"]) == ("audio.speech", "text.activity")
    doc = json.loads(out.read_text())
    assert "path" not in doc
    tm = TimeMap.from_dict(doc["timemap"])
    mids = np.array([(c.start + c.end) / 2 for c in subtitles.read(sample / "sample.vtt").cues])
    assert np.median(np.abs(tm.apply(mids) - mids)) < 0.1  # the timing already matches


@pytest.mark.parametrize(
    "args, message",
    [
        (["--feature", "audio.chroma"], "no feature audio.chroma"),
        (["--feature", "audio.rms"], "has no feature audio.rms"),
        (["--metric", "manhattan"], "unknown metric"),
        (["--multiscale", "--band", "1"], "--band applies to exact DTW"),
    ],
)
def test_align_errors(warped_pair, tmp_path, args, message):
    pa, pb = warped_pair
    result = run("align", pa, pb, "-o", tmp_path / "x.json", *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "x.json").exists()


def test_align_feature_width_mismatch(tmp_path):
    pa, pb = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_features(pa, [FeatureSeq(np.zeros((10, 3)), HOP, 0.0, "audio.x")])
    save_features(pb, [FeatureSeq(np.zeros((10, 4)), HOP, 0.0, "audio.y")])
    result = run("align", pa, pb, "-o", tmp_path / "x.json")
    assert result.exit_code == 2 and "columns" in result.stderr


# ---------------------------------------------------------------- forced alignment: align MEDIA TRANSCRIPT

SR = 16000
LINES = [
    "The weather is lovely today and we are going to the park.",
    "My sister has lived in London for many years.",
    "Please close the window before you leave the house.",
]
LEAD = 0.5


def _speech_wav(path, texts, *, rate=160, gap=0.6, seed=0):
    """``texts`` read by eSpeak at another rate than the aligner's, with a lead-in and faint noise;
    returns the true (start, end) of each text in the WAV."""
    import soundfile as sf

    from mmalign import speech

    syn = speech.synthesize_segments(texts, language="en", rate=rate, gap=gap)
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.zeros(int(LEAD * SR), np.float32), syn.audio, np.zeros(SR // 2, np.float32)])
    y = y + (0.003 * rng.standard_normal(len(y))).astype(np.float32)
    sf.write(path, y, SR)
    return syn, [(s.start + LEAD, s.end + LEAD) for s in syn.segments]


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("talk")
    syn, truth = _speech_wav(folder / "talk.wav", LINES)
    (folder / "talk.txt").write_text("\n".join(LINES) + "\n\n")
    return folder, syn, truth


def _vtt_stamps(text):
    return [
        int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
        for h, m, s, ms in re.findall(r"<(\d\d):(\d\d):(\d\d)\.(\d{3})>", text)
    ]


@pytest.mark.slow
def test_transcript_round_trip_to_vtt_with_word_timestamps(talk, tmp_path):
    folder, syn, truth = talk
    out = tmp_path / "talk.vtt"
    result = run("align", folder / "talk.wav", folder / "talk.txt", "-o", out, "--words", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["segments"], summary["found"], summary["not_found"], summary["language"]) == (3, 3, [], "en")
    assert summary["confidence"] > 0.5 and summary["seconds"]["total"] > 0 and summary["output"] == str(out)
    cues = subtitles.read(out).cues
    assert [c.start for c in cues] == pytest.approx([t[0] for t in truth], abs=0.1)
    assert [c.end for c in cues] == pytest.approx([t[1] for t in truth], abs=0.1)
    assert subtitles.read(out).plain_texts() == LINES
    for cue, seg in zip(cues, syn.segments):
        truth_words = [syn.words[k].start + LEAD for k in seg.words][1:]  # the first word starts the cue
        assert _vtt_stamps(cue.text) == pytest.approx(truth_words, abs=0.1)


@pytest.mark.slow
def test_transcript_to_json_and_srt(talk, tmp_path):
    folder, syn, truth = talk
    result = run("align", folder / "talk.wav", folder / "talk.txt", "-o", "-", "--words", "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["media"], doc["language"], doc["found"], doc["not_found"]) == (str(folder / "talk.wav"), "en", 3, [])
    assert 0.5 < doc["confidence"] <= 1 and doc["duration"] == pytest.approx(len(syn.audio) / SR + LEAD + 0.5, abs=0.02)
    for seg, (start, end), text in zip(doc["segments"], truth, LINES):
        assert set(seg) == {"index", "text", "start", "end", "score", "words"} and seg["text"] == text
        assert seg["start"] == pytest.approx(start, abs=0.1) and seg["end"] == pytest.approx(end, abs=0.1)
        assert [w["text"] for w in seg["words"]] == re.findall(r"\w+", text)
        assert all(seg["start"] <= w["start"] <= w["end"] <= seg["end"] for w in seg["words"])
    out = tmp_path / "talk.srt"
    assert run("align", folder / "talk.wav", folder / "talk.txt", "-o", out, "-q").exit_code == 0
    assert [c.start for c in subtitles.read(out).cues] == pytest.approx([t[0] for t in truth], abs=0.1)
    assert run("align", folder / "talk.wav", folder / "talk.txt", "-o", f"{tmp_path / 'new'}/", "-q").exit_code == 0
    assert json.loads((tmp_path / "new" / "talk.aligned.json").read_text())["found"] == 3


@pytest.mark.slow
def test_transcript_with_a_paragraph_the_recording_lacks(tmp_path):
    paragraphs = [
        "Once upon a time there was a small village by the sea, where fishermen mended their nets every morning.",
        "The mayor of the town had three daughters and a very old dog that slept all day in the sun.",
        "In winter the storms came from the north and nobody left their house for many days.",
    ]
    _, truth = _speech_wav(tmp_path / "tale.wav", [paragraphs[0], paragraphs[2]], rate=165, seed=3)
    (tmp_path / "tale.txt").write_text("\n\n".join(paragraphs))
    out = tmp_path / "tale.json"
    result = run("align", tmp_path / "tale.wav", tmp_path / "tale.txt", "-o", out)
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "1 of 3 segments not found" in warning[0] and "2 (not in the recording)" in warning[0]
    assert "aligned 2 of 3 segments" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["not_found"] == [1] and doc["segments"][1]["start"] is None and doc["segments"][1]["reason"]
    assert doc["segments"][0]["start"] == pytest.approx(truth[0][0], abs=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("aligner", ["combined", "attention"])
def test_transcript_with_the_attention_aligner(talk, tmp_path, aligner):
    """--aligner: the shipped attention weights, alone or inside the DTW alignment's windows.

    Word starts, not line starts, are compared: the shipped model starts a line that opens on
    a plosive after a pause ("Please ...") in the pause, and lets a line that ends on a
    fricative ("... house.") run into the hiss after it (known limits, see the README)."""
    pytest.importorskip("torch")
    folder, syn, truth = talk
    out = tmp_path / "talk.json"
    result = run(
        "align", folder / "talk.wav", folder / "talk.txt", "-o", out, "--aligner", aligner, "--json", "--words"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["aligner"], summary["found"], summary["not_found"]) == (aligner, 3, [])
    doc = json.loads(out.read_text())
    found = np.array([w["start"] for seg in doc["segments"] for w in seg["words"]])
    errors = np.abs(found - np.array([w.start + LEAD for w in syn.words]))
    assert np.median(errors) <= 0.03 and np.mean(errors <= 0.1) >= 0.9, errors.round(3)
    assert [s["end"] for s in doc["segments"]] == pytest.approx([t[1] for t in truth], abs=0.5)


@pytest.mark.slow
def test_split_sentences_and_a_subtitle_transcript(talk, tmp_path):
    folder, syn, truth = talk
    (tmp_path / "para.txt").write_text(" ".join(LINES[:2]) + "\n" + LINES[2] + "\n")
    out = tmp_path / "para.json"
    result = run("align", folder / "talk.wav", tmp_path / "para.txt", "-o", out, "--split", "sentences", "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [s["text"] for s in doc["segments"]] == LINES
    assert [s["start"] for s in doc["segments"]] == pytest.approx([t[0] for t in truth], abs=0.1)
    # a subtitle file's cues, at wrong times: --transcript reads only their text
    srt = tmp_path / "wrong.srt"
    srt.write_text("".join(f"{k + 1}\n00:01:0{k},000 --> 00:01:0{k},500\n{t}\n\n" for k, t in enumerate(LINES)))
    out = tmp_path / "fixed.vtt"
    result = run("align", folder / "talk.wav", srt, "--transcript", "--language", "en", "-o", out, "-q")
    assert result.exit_code == 0 and result.output == ""
    assert [c.start for c in subtitles.read(out).cues] == pytest.approx([t[0] for t in truth], abs=0.1)


@pytest.mark.slow
def test_unrelated_or_empty_transcript_is_refused_and_nothing_written(talk, tmp_path):
    folder, _, _ = talk
    other = tmp_path / "other.txt"
    other.write_text(
        "Stock markets fell sharply on Tuesday as investors worried about inflation.\n"
        "The committee will publish its final report next spring.\n"
        "Scientists discovered a new species of frog in the rainforest.\n"
    )
    out = tmp_path / "x.vtt"
    result = run("align", folder / "talk.wav", other, "-o", out, "--min-confidence", "0.5")
    assert result.exit_code == 4 and result.stderr.count("\n") == 1, result.output
    assert "not confident in the alignment (confidence 0." in result.stderr and not out.exists()
    # the same threshold passes the right transcript
    assert run("align", folder / "talk.wav", folder / "talk.txt", "-o", out, "--min-confidence", "0.5").exit_code == 0
    out.unlink()
    music = tmp_path / "music.txt"
    music.write_text("♪ la la la ♪\n[applause]\n")
    result = run("align", folder / "talk.wav", music, "-o", out, "--language", "en", "--json")
    assert result.exit_code == 4 and not out.exists()
    assert json.loads(result.stdout)["error"].startswith("none of the 2 segments was found in the recording")


def test_transcript_usage_errors(talk, tmp_path):
    folder, _, _ = talk
    wav, txt = folder / "talk.wav", folder / "talk.txt"
    cases = [
        ([wav, txt, "--metric", "cosine"], "--metric applies to DTW alignment, not to a transcript"),
        ([wav, txt, "--no-path"], "--path/--no-path applies to DTW alignment"),
        ([wav, folder / "x.srt", "--words"], "--words applies to a transcript"),
        ([wav, txt, "--words", "-o", tmp_path / "x.srt"], "SRT has no word times; write .vtt or .json with --words"),
        ([wav, txt, "-o", tmp_path / "x.txt"], "cannot tell the output format"),
        ([txt, wav], "give the media first"),
        ([wav, txt, "--language", "xx"], "--language 'xx' is not a language eSpeak NG speaks"),
        ([wav, tmp_path / "gone.txt"], "gone.txt: transcript not found"),
        ([wav, txt, "--model", txt], "--model applies to the attention aligner (attention or combined)"),
        ([wav, txt, "--aligner", "combined", "--model", tmp_path / "gone.st"], "gone.st: aligner weights not found"),
    ]
    for args, message in cases:
        out = ["-o", tmp_path / "x.json"] if "-o" not in args else []
        result = run("align", *args, *out)
        code = 3 if "not found" in message else 2
        assert result.exit_code == code and message in result.stderr, (args, result.output)
        assert result.stderr.count("\n") <= 2 and not (tmp_path / "x.json").exists()
