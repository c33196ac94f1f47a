"""Matching pairs: the partners drawn never break the rules, checked against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign.errors import UsageError
from mmalign.export import draw_partners, negative_record, normalize_text
from mmalign.export.pairs import pair_gap

COMMON = ["Yes.", "yes!", "<i>Thank you.</i>", "thank you", "No", "OK.", "{\\an8}Okay"]


def records(n_sources=4, per_source=60, seed=0, overlap=0.2):
    """Cues with repeated texts (also across sources) and overlapping cues in one source."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_sources):
        t = 0.0
        for i in range(per_source):
            d = rng.uniform(0.5, 3.0)
            start = t - (rng.uniform(0.1, 1.0) if i and rng.random() < overlap else 0.0)
            r = rng.random()
            text = COMMON[rng.integers(len(COMMON))] if r < 0.3 else f"line {rng.integers(40)} of the story"
            out.append(
                {"id": f"src{s}/cue-{i:06d}", "source": f"src{s}", "start": start, "end": start + d, "text": text}
            )
            t = start + d + rng.uniform(0.0, 1.5)
    return out


def plain_false_negatives(recs, partners, min_gap):
    """Every rule, one pair at a time (the reference)."""
    bad = 0
    for a, found in enumerate(partners):
        texts = set()
        for b in found:
            ra, rb = recs[a], recs[b]
            same_text = normalize_text(ra["text"]) == normalize_text(rb["text"])
            near = ra["source"] == rb["source"] and (
                min(ra["end"], rb["end"]) > max(ra["start"], rb["start"])
                or max(rb["start"] - ra["end"], ra["start"] - rb["end"]) < min_gap
            )
            repeated = normalize_text(rb["text"]) in texts
            texts.add(normalize_text(rb["text"]))
            bad += a == b or same_text or near or repeated
    return bad


def test_normalize_text():
    assert normalize_text("<i>Thank you!</i>") == normalize_text("thank   you") == "thank you"
    assert normalize_text("{\\an8}Okay…") == "okay"
    assert normalize_text("ＡＢＣ") == "abc"  # NFKC
    assert normalize_text("Straße") == normalize_text("STRASSE")  # case folding
    assert normalize_text(None) == normalize_text("♪ ♪") == ""
    assert normalize_text("l'été") == "l été"


def test_pair_gap():
    assert pair_gap(0, 1, 3, 4) == 2 and pair_gap(3, 4, 0, 1) == 2
    assert pair_gap(0, 2, 1, 3) == -1 and pair_gap(0, 1, 1, 2) == 0


@pytest.mark.parametrize("hard", ["none", "same-source", "nearest"])
@pytest.mark.parametrize("negatives", [1, 3])
def test_partners_break_no_rule(hard, negatives):
    recs = records(seed=negatives)
    partners, summary = draw_partners(recs, negatives=negatives, hard=hard, min_gap=5.0, seed=3)
    assert plain_false_negatives(recs, partners, 5.0) == 0
    assert summary.positives == len(recs) and summary.negatives == sum(map(len, partners))
    assert summary.short == 0 and summary.negatives == negatives * len(recs)
    again, _ = draw_partners(recs, negatives=negatives, hard=hard, min_gap=5.0, seed=3)
    assert again == partners
    if hard == "same-source":
        assert all(recs[b]["source"] == recs[a]["source"] for a, f in enumerate(partners) for b in f)
        assert summary.fallback == 0


def test_the_seed_changes_random_partners_only():
    recs = records()
    assert draw_partners(recs, seed=1)[0] != draw_partners(recs, seed=2)[0]
    assert draw_partners(recs, hard="nearest", seed=1)[0] == draw_partners(recs, hard="nearest", seed=2)[0]


def test_nearest_is_the_most_similar_text_that_passes():
    recs = [
        {"id": "a/0", "source": "a", "start": 0.0, "end": 1.0, "text": "the cat sat on the mat"},
        {"id": "a/1", "source": "a", "start": 1.5, "end": 2.5, "text": "the cat sat on the hat"},  # near: refused
        {"id": "b/0", "source": "b", "start": 0.0, "end": 1.0, "text": "The cat sat on the mat!"},  # same text
        {"id": "b/1", "source": "b", "start": 2.0, "end": 3.0, "text": "the cat sat on a mat"},
        {"id": "c/0", "source": "c", "start": 0.0, "end": 1.0, "text": "completely different words"},
    ]
    emb = np.array([[1, 0, 0], [0.99, 0.1, 0], [1, 0, 0], [0.9, 0.3, 0], [0, 0, 1]], np.float32)
    partners, _ = draw_partners(recs, hard="nearest", negatives=2, min_gap=5.0, embeddings=emb)
    assert partners[0] == [3, 4]
    # with the default embedding (hashed n-grams of the normalised texts) too
    assert draw_partners(recs, hard="nearest", min_gap=5.0)[0][0] == [3]
    assert draw_partners(recs, hard="nearest", min_gap=0.0)[0][0] == [1]  # 0.5 s away: allowed without a gap


def test_same_source_falls_back_to_other_sources_and_says_so():
    recs = [
        {"id": "a/0", "source": "a", "start": 0.0, "end": 1.0, "text": "one"},
        {"id": "b/0", "source": "b", "start": 0.0, "end": 1.0, "text": "two"},
        {"id": "b/1", "source": "b", "start": 30.0, "end": 31.0, "text": "three"},
    ]
    partners, summary = draw_partners(recs, hard="same-source", min_gap=5.0)
    assert partners[1] == [2] and partners[2] == [1] and recs[partners[0][0]]["source"] == "b"
    assert summary.fallback == 1 and summary.short == 0


def test_too_few_candidates_gives_fewer_negatives():
    recs = [
        {"id": "a/0", "source": "a", "start": 0.0, "end": 1.0, "text": "Yes"},
        {"id": "b/0", "source": "b", "start": 0.0, "end": 1.0, "text": "yes."},
        {"id": "c/0", "source": "c", "start": 0.0, "end": 1.0, "text": "no"},
    ]
    partners, summary = draw_partners(recs, negatives=2)
    assert partners[:2] == [[2], [2]] and partners[2] in ([0], [1])  # two negatives would say "yes" twice
    assert summary.short == 3 and summary.to_dict()["label_ratio"] == 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"negatives": 0}, "negatives must be a whole number of at least 1"),
        ({"hard": "hardest"}, "unknown hard_negatives 'hardest'"),
        ({"min_gap": -1.0}, "min_gap must be a non-negative number"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(UsageError, match=message):
        draw_partners(records(1, 5), **kwargs)


def test_negative_record_takes_one_half_from_the_partner():
    a = {
        "id": "s/cue-1",
        "source": "s",
        "start": 1.0,
        "end": 2.0,
        "text": "hello",
        "shard": "shard-000000.safetensors",
        "row": 1,
        "tensors": {"audio.x": [5, 2], "text.v": [3, 4]},
        "missing": ["text.v"],
        "label": 1,
    }
    b = {**a, "id": "t/cue-9", "source": "t", "text": "bye", "shard": "shard-000003.safetensors", "row": 4}
    b["tensors"], b["missing"] = {"audio.x": [7, 2], "text.v": [6, 4]}, []
    text = negative_record(a, b, 0, "text")
    assert text["id"] == "s/cue-1/negative-0" and (text["source"], text["start"], text["end"]) == ("s", 1.0, 2.0)
    assert text["text"] == "bye" and (text["shard"], text["row"]) == (a["shard"], 1)
    assert text["tensors"] == {"audio.x": [5, 2], "text.v": [6, 4]} and text["missing"] == []
    assert (text["label"], text["pair_of"], text["text_from"], text["media_from"]) == (
        0,
        "s/cue-1",
        "t/cue-9",
        "s/cue-1",
    )
    media = negative_record(a, b, 2, "media")
    assert media["text"] == "hello" and (media["shard"], media["row"]) == (b["shard"], 4)
    assert media["tensors"] == {"audio.x": [7, 2], "text.v": [3, 4]} and media["missing"] == ["text.v"]
    assert (media["text_from"], media["media_from"]) == ("s/cue-1", "t/cue-9")
    with pytest.raises(UsageError, match="unknown swap 'video'"):
        negative_record(a, b, 0, "video")
