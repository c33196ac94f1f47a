"""Span masks: exact counts, spans, seeded, the realised rate is the rate asked."""

from __future__ import annotations

import numpy as np
import pytest

from mmalign.errors import UsageError
from mmalign.export import MaskSpec, parse_mask, span_mask
from mmalign.export.masks import add_masks, mask_summary


def runs(mask):
    """Lengths of the runs of True (a plain loop)."""
    out, n = [], 0
    for v in mask:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out + ([n] if n else [])


@pytest.mark.parametrize("length, rate, span", [(200, 0.15, 10), (37, 0.3, 4), (5, 0.15, 10), (1000, 0.5, 1)])
def test_span_mask_hides_the_count_in_spans(length, rate, span):
    rng = np.random.default_rng(0)
    for _ in range(50):
        u_rng = np.random.default_rng(rng.integers(2**32))
        count = int(np.floor(rate * length + np.random.default_rng(u_rng.bit_generator.seed_seq).random()))
        mask = span_mask(length, rate, span, u_rng)
        assert mask.dtype == bool and mask.shape == (length,)
        assert mask.sum() == min(count, length)
        # runs are whole spans, merged where two touch: each run is a sum of at most one short span and full ones
        assert all(r % span == 0 or r % span == mask.sum() % span for r in runs(mask))


def test_the_realised_rate_is_the_rate_asked_even_for_short_sequences():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 30, 20000)
    hidden = sum(int(span_mask(int(n), 0.15, 3, rng).sum()) for n in lengths)
    assert hidden / lengths.sum() == pytest.approx(0.15, abs=0.003)


def test_span_mask_edges():
    rng = np.random.default_rng(0)
    assert span_mask(0, 0.5, 3, rng).shape == (0,)
    assert span_mask(4, 0.99, 10, rng).sum() in (3, 4)


def test_parse_mask():
    assert parse_mask("audio:0.15:10") == MaskSpec("audio", 0.15, 10)
    assert parse_mask("text:0.15") == MaskSpec("text", 0.15, 1)
    assert parse_mask("audio:0.065") == MaskSpec("audio", 0.065, 10)
    assert str(parse_mask(" video:0.2 ")) == "video:0.2:1"
    for bad, message in [
        ("audio", "expected MODALITY:RATE"),
        ("audio:x", "expected MODALITY:RATE"),
        ("speech:0.1", "unknown modality 'speech'"),
        ("audio:1.5", "between 0 and 1"),
        ("audio:0:3", "between 0 and 1"),
        ("audio:0.1:0", "at least 1 frame"),
        ("audio:0.1:2:3", "expected MODALITY:RATE"),
    ]:
        with pytest.raises(UsageError, match=message) as info:
            parse_mask(bad)
        assert str(info.value).startswith("mask ")


def test_add_masks_is_seeded_and_shared_by_features_of_one_length():
    def sample():
        return {
            "audio.a": np.zeros((100, 3), np.float32),
            "audio.a.times": np.arange(100.0),
            "audio.b": np.zeros((100, 1), np.float32),
            "audio.c": np.zeros((40, 1), np.float32),
            "text.e": np.zeros((10, 4), np.float32),
        }

    specs = [parse_mask("audio:0.2:5")]
    one, two, other = sample(), sample(), sample()
    counts = add_masks(one, specs, seed=1, key="src|cue-1")
    add_masks(two, specs, seed=1, key="src|cue-1")
    add_masks(other, specs, seed=1, key="src|cue-2")
    assert set(one) - set(sample()) == {"audio.a.masked", "audio.b.masked", "audio.c.masked"}
    np.testing.assert_array_equal(one["audio.a.masked"], two["audio.a.masked"])
    np.testing.assert_array_equal(one["audio.a.masked"], one["audio.b.masked"])
    assert not np.array_equal(one["audio.a.masked"], other["audio.a.masked"])
    assert counts == {"audio": [int(one["audio.a.masked"].sum()) * 2 + int(one["audio.c.masked"].sum()), 240]}
    summary = mask_summary(specs, [counts, {"audio": [10, 60]}])
    assert summary["audio"]["frames"] == 300 and summary["audio"]["span"] == 5
    assert summary["audio"]["realised_rate"] == pytest.approx((counts["audio"][0] + 10) / 300, abs=1e-6)
