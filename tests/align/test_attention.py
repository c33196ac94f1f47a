"""The attention aligner's pieces: forward-sum loss, hard path, prior, tokens, weights."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmalign.align import attention as att  # noqa: E402
from mmalign.errors import InputError, UsageError  # noqa: E402


def _monotonic_paths(t: int, n: int):
    """Every token-per-frame sequence: starts at 0, ends at n - 1, steps of 0 or 1."""
    for steps in itertools.combinations(range(1, t), n - 1):
        path = np.zeros(t, np.int64)
        for s in steps:
            path[s:] += 1
        yield path


def _ctc_brute(logp: np.ndarray, blank: float) -> float:
    """-log of the total probability of all CTC paths that collapse to 1..N, by enumeration."""
    t, n = logp.shape
    full = np.concatenate([np.full((t, 1), blank), logp], axis=1)
    full = full - np.log(np.exp(full).sum(axis=1, keepdims=True))
    total = 0.0
    for labels in itertools.product(range(n + 1), repeat=t):
        collapsed = [c for i, c in enumerate(labels) if c != 0 and (i == 0 or labels[i - 1] != c)]
        if collapsed == list(range(1, n + 1)):
            total += math.exp(sum(full[i, c] for i, c in enumerate(labels)))
    return -math.log(total) / n


@pytest.mark.parametrize("t,n", [(4, 2), (5, 3), (6, 3)])
def test_forward_sum_loss_matches_brute_force(t, n):
    rng = np.random.default_rng(t * 10 + n)
    logits = rng.standard_normal((t, n))
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = att.forward_sum_loss(torch.tensor(logp[None]), torch.tensor([n]), torch.tensor([t]), blank_logprob=-1.0)
    assert float(loss) == pytest.approx(_ctc_brute(logp, -1.0), rel=1e-5)


def test_forward_sum_loss_batch_with_padding_equals_each_alone():
    rng = np.random.default_rng(3)
    a = torch.log_softmax(torch.tensor(rng.standard_normal((6, 3))), -1)
    b = torch.log_softmax(torch.tensor(rng.standard_normal((4, 2))), -1)
    batch = torch.full((2, 6, 3), -1e9, dtype=torch.float64)
    batch[0] = a
    batch[1, :4, :2] = b
    both = att.forward_sum_loss(batch, torch.tensor([3, 2]), torch.tensor([6, 4]))
    alone = [att.forward_sum_loss(x[None], torch.tensor([x.shape[1]]), torch.tensor([x.shape[0]])) for x in (a, b)]
    assert float(both) == pytest.approx(float(sum(alone)) / 2, rel=1e-6)


def _mas_reference(logp: np.ndarray) -> np.ndarray:
    """The best monotonic path by plain numpy dynamic programming."""
    t, n = logp.shape
    v = np.full((t, n), -np.inf)
    v[0, 0] = logp[0, 0]
    for i in range(1, t):
        prev = np.concatenate([[-np.inf], v[i - 1, :-1]])
        v[i] = logp[i] + np.maximum(v[i - 1], prev)
    path = np.zeros(t, np.int64)
    k = n - 1
    for i in range(t - 1, -1, -1):
        path[i] = k
        if i > 0 and k > 0 and (k == i or v[i - 1, k - 1] > v[i - 1, k]):
            k -= 1
    return path


@pytest.mark.parametrize("t,n,seed", [(7, 3, 0), (9, 4, 1), (12, 5, 2), (40, 17, 3), (5, 5, 4), (6, 1, 5)])
def test_hard_path_is_the_best_monotonic_path(t, n, seed):
    logp = np.random.default_rng(seed).standard_normal((t, n)).astype(np.float32)
    path = att.hard_path(logp)
    np.testing.assert_array_equal(path, _mas_reference(logp))
    assert path[0] == 0 and path[-1] == n - 1 and set(np.diff(path)) <= {0, 1}
    if t <= 12:  # and no monotonic path scores higher
        best = max(float(logp[np.arange(t), p].sum()) for p in _monotonic_paths(t, n))
        assert float(logp[np.arange(t), path].sum()) == pytest.approx(best, abs=1e-4)


def test_hard_path_refuses_too_few_frames():
    with pytest.raises(UsageError, match="cannot fit"):
        att.hard_path(np.zeros((2, 3), np.float32))
    with pytest.raises(UsageError, match="2-D"):
        att.hard_path(np.zeros(3, np.float32))


def test_beta_binomial_prior_rows_are_distributions_along_the_diagonal():
    p = att.beta_binomial_prior(50, 10)
    assert p.shape == (50, 10)
    np.testing.assert_allclose(np.exp(p).sum(axis=1), 1.0, rtol=1e-5)
    peaks = p.argmax(axis=1)
    assert peaks[0] == 0 and peaks[-1] == 9 and (np.diff(peaks) >= 0).all()


def test_tokenize_puts_boundaries_around_words():
    toks = att.tokenize([("h", 0), ("ˈəʊ", 0), ("w", 1), ("ɜː", 1)], 3, 64)
    assert toks.ids[0] == 0 and toks.ids[-1] == 0
    assert list(toks.ids).count(0) == 4  # before, between (twice), after
    assert list(toks.word_first) == [1, 4, 6] and list(toks.word_last) == [2, 5, 6]
    assert att.token_id("ˈəʊ", 64) == att.token_id("əʊ", 64)  # stress dropped
    assert all(1 <= i < 64 for i in toks.ids[toks.ids > 0])


def test_word_times_from_a_path():
    toks = att.tokenize([("a", 0), ("b", 1)], 2, 16)  # tokens: 0 a 0 b 0
    path = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 4])
    start, end = att.word_times(path, toks)
    np.testing.assert_allclose(start, [0.025, 0.055])
    np.testing.assert_allclose(end, [0.045, 0.085])


def test_word_times_read_a_boundary_as_a_junction():
    toks = att.tokenize([("a", 0), ("b", 1), ("c", 2)], 3, 16)  # tokens: 0 a 0 b 0 c 0
    # the boundary between a and b: 4 frames (5..8), short; between b and c: 20 frames (12..31), a pause
    path = np.array([0] * 2 + [1] * 3 + [2] * 4 + [3] * 3 + [4] * 20 + [5] * 3 + [6] * 2)
    start, end = att.word_times(path, toks)  # read as it is: the words around a boundary do not meet
    np.testing.assert_allclose(start, [0.015, 0.085, 0.315])
    np.testing.assert_allclose(end, [0.045, 0.115, 0.345])
    start, end = att.word_times(path, toks, junction=0.03)
    # a short boundary: the words meet in its middle; a long one reaches 30 ms into each word
    np.testing.assert_allclose(start, [0.015, 0.065, 0.285])
    np.testing.assert_allclose(end, [0.065, 0.145, 0.345])
    np.testing.assert_allclose(att.word_times(path, toks, junction=0.0)[0], [0.015, 0.085, 0.315])


def test_word_times_junction_leaves_words_without_phonemes():
    toks = att.tokenize([("a", 0), ("c", 2)], 3, 16)  # word 1 has no phonemes: 0 a 0 0 c 0
    path = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5])
    plain = att.word_times(path, toks)
    joined = att.word_times(path, toks, junction=0.05)
    np.testing.assert_allclose(joined[0][:2], plain[0][:2])
    assert (joined[0] >= 0).all() and (joined[1] >= joined[0]).all()


def test_calibration_travels_with_the_weights(tmp_path):
    cfg = att.AlignerConfig(dim=16, attn_dim=8, text_layers=1, audio_layers=1, n_tokens=32, n_mels=20)
    model = att.AttentionAligner(cfg)
    assert model.junction == 0.0
    path = tmp_path / "m.safetensors"
    att.save_model(model, path)
    assert att.load_model(path).junction == 0.0 and att.load_model(path).calibration == {}
    model.calibration = {"junction": 0.0425, "fitted_on": "synthetic validation"}
    att.save_model(model, path)
    back = att.load_model(path)
    assert back.junction == 0.0425 and back.calibration["fitted_on"] == "synthetic validation"


def test_save_load_round_trip(tmp_path):
    cfg = att.AlignerConfig(dim=16, attn_dim=8, text_layers=1, audio_layers=1, n_tokens=32, n_mels=20)
    torch.manual_seed(0)
    model = att.AttentionAligner(cfg)
    path = tmp_path / "m.safetensors"
    att.save_model(model, path, extra={"note": "test"})
    back = att.load_model(path)
    assert back.config == cfg
    tokens = torch.tensor([[0, 3, 5, 0]])
    mels = torch.randn(1, 12, 20)
    torch.testing.assert_close(back(tokens, mels), model.eval()(tokens, mels))
    assert b"pickle" not in path.read_bytes()[:200]


def test_load_refuses_other_files(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(InputError, match="not an attention aligner"):
        att.load_model(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(InputError, match="cannot read"):
        att.load_model(junk)
    with pytest.raises(InputError):
        att.AlignerConfig.from_json('{"dim": 8, "heads": 2}')


def test_default_model_is_small():
    assert sum(p.numel() for p in att.AttentionAligner().parameters()) < 10_000_000


@pytest.mark.slow
def test_attention_align_gives_a_forced_alignment_shape():
    """An untrained model still gives one segment per text, ordered words, a TimeMap."""
    from mmalign import speech

    syn = speech.synthesize_segments(["Good evening.", "Tonight, the news."], language="en", sr=16000)
    audio = np.concatenate([np.zeros(8000, np.float32), syn.audio])
    torch.manual_seed(0)
    model = att.AttentionAligner(att.AlignerConfig(dim=16, attn_dim=8, text_layers=1, audio_layers=1))
    result = att.attention_align(audio, ["Good evening.", "", "Tonight, the news."], model=model, language="en")
    assert [s.found for s in result.segments] == [True, False, True]
    assert result.segments[1].reason == "nothing to say"
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and len(starts) == 5
    assert 0 <= result.confidence <= 1
    tm = result.timemap()
    assert tm.apply(np.array([0.0]))[0] >= 0
