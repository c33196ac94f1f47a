"""The attention aligner's pieces: forward-sum loss, hard path, prior, tokens, weights."""

from __future__ import annotations

import dataclasses
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


def _ctc_brute(logp: np.ndarray, blank: float, allowed: np.ndarray | None = None) -> float:
    """-log of the total probability of all CTC paths that collapse to 1..N, by enumeration (only
    those that keep each frame on an allowed token, or the blank, with ``allowed``)."""
    t, n = logp.shape
    full = np.concatenate([np.full((t, 1), blank), logp], axis=1)
    full = full - np.log(np.exp(full).sum(axis=1, keepdims=True))
    total = 0.0
    for labels in itertools.product(range(n + 1), repeat=t):
        if allowed is not None and any(c != 0 and not allowed[i, c - 1] for i, c in enumerate(labels)):
            continue
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


@pytest.mark.parametrize("t,n", [(5, 3), (6, 3)])
def test_forward_sum_loss_over_allowed_alignments_matches_brute_force(t, n):
    rng = np.random.default_rng(t * 10 + n + 1)
    logits = rng.standard_normal((t, n))
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    allowed = np.ones((t, n), bool)
    allowed[: t // 2 + 1, n - 1] = False  # the last token not before the middle frame's end
    allowed[t - 2, 0] = False  # nor the first one on the last frame but one
    args = (torch.tensor(logp[None]), torch.tensor([n]), torch.tensor([t]))
    loss = att.forward_sum_loss(*args, allowed=torch.tensor(allowed[None]))
    assert float(loss) == pytest.approx(_ctc_brute(logp, -1.0, allowed), rel=1e-5)
    # fewer alignments, less probability: the loss only grows; all allowed: the plain loss
    assert float(loss) > float(att.forward_sum_loss(*args))
    every = att.forward_sum_loss(*args, allowed=torch.ones((1, t, n), dtype=torch.bool))
    assert float(every) == pytest.approx(float(att.forward_sum_loss(*args)), rel=1e-9)


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
    # the lead comes off every start, not below 0 nor past the word's end; the ends stay
    start, end = att.word_times(path, toks, junction=0.03, lead=0.02)
    np.testing.assert_allclose(start, [0.0, 0.045, 0.265])
    np.testing.assert_allclose(end, [0.065, 0.145, 0.345])
    start, end = att.word_times(path, toks, lead=-0.05)
    np.testing.assert_allclose(start, [0.045, 0.115, 0.345])


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
    model.calibration = {"junction": 0.0425, "lead": 0.012, "fitted_on": "synthetic validation"}
    att.save_model(model, path)
    back = att.load_model(path)
    assert back.junction == 0.0425 and back.lead == 0.012 and back.calibration["fitted_on"] == "synthetic validation"
    model.calibration = {"junction": 0.0425, "lead": 3.0}
    att.save_model(model, path)
    with pytest.raises(InputError, match="calibration"):
        att.load_model(path)


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


def test_a_cepstral_front_end_reads_the_dct_of_the_log_mel(tmp_path):
    """n_cepstra: the audio encoder's first layer sees the fixed DCT-II of the normalised log-mel
    (the basis the DTW's cepstra use), which is not stored with the weights."""
    from mmalign.features.audio import dct_basis

    cfg = att.AlignerConfig(dim=16, attn_dim=8, text_layers=1, audio_layers=1, n_tokens=32, n_mels=20, n_cepstra=6)
    torch.manual_seed(0)
    model = att.AttentionAligner(cfg).eval()
    assert model.audio[0].in_channels == 6
    mels = torch.randn(1, 12, 20)
    plain = att.AttentionAligner(dataclasses.replace(cfg, n_cepstra=0)).eval()
    with torch.no_grad():
        plain.audio[0].weight.zero_()
        plain.audio[0].weight[:, :, :] = torch.einsum(
            "oik,mi->omk", model.audio[0].weight, torch.from_numpy(dct_basis(20, 6))
        )
        plain.audio[0].bias.copy_(model.audio[0].bias)
        for a, b in zip(list(plain.audio)[1:] + [plain.audio_out], list(model.audio)[1:] + [model.audio_out]):
            a.load_state_dict(b.state_dict())
        torch.testing.assert_close(plain.encode_audio(mels), model.encode_audio(mels))
    path = tmp_path / "c.safetensors"
    att.save_model(model, path)
    back = att.load_model(path)
    assert back.config.n_cepstra == 6 and "dct" not in back.state_dict()
    tokens = torch.tensor([[0, 3, 5, 0]])
    torch.testing.assert_close(back(tokens, mels), model(tokens, mels))
    with pytest.raises(UsageError, match="bad aligner config"):
        att.AttentionAligner(att.AlignerConfig(n_mels=20, n_cepstra=21))
    # weights written before the cepstral front end read the log-mel
    assert att.AlignerConfig.from_json('{"dim": 16}').n_cepstra == 0


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


# --------------------------------------------------------------------------- the shipped weights, guided

TALK = [
    "Good evening, and welcome to the programme.",
    "Tonight we look at the weather in the north.",
    "Rain is expected over the hills by morning.",
    "Thank you for watching, and good night.",
]


@pytest.fixture(scope="module")
def shipped():
    return att.load_model(att.default_model_path())


@pytest.fixture(scope="module")
def reading():
    """TALK read by another eSpeak voice than the aligner's, at another rate, with uneven pauses
    and faint noise: (16 kHz samples, every word's true start, each line's first word)."""
    from mmalign import speech

    rng = np.random.default_rng(0)
    pieces, starts, firsts, t = [np.zeros(8000, np.float32)], [], [], 0.5
    for k, text in enumerate(TALK):
        syn = speech.synthesize(text, language="en", sr=16000, variant="f2", rate=150)
        firsts.append(len(starts))
        starts += [t + w.start for w in syn.words]
        gap = np.zeros(int(16000 * (0.4 + 0.3 * k)), np.float32)
        pieces += [syn.audio, gap]
        t += (len(syn.audio) + len(gap)) / 16000
    y = np.concatenate(pieces)
    return y + (0.003 * rng.standard_normal(len(y))).astype(np.float32), np.array(starts), firsts


@pytest.mark.slow
def test_the_confidence_tells_a_right_transcript_from_a_wrong_one(shipped, reading):
    """A segment's score is the path token's attention among its neighbours: high where the model
    follows the words (another voice, read right), low for another text over the same speech.
    (The plain attention probability along the path was about 0.01 for both.)"""
    from mmalign.align.words import force_align

    y, _, _ = reading
    other = [
        "My sister has lived in the north of the country for years.",
        "The library closes early on Sundays, so bring the books back.",
        "He painted the old fence green before the rain came.",
        "Nobody knew where the key to the garden shed had gone.",
    ]
    scores = {}
    for name, text in (("right", TALK), ("wrong", other)):
        alone = att.attention_align(y, text, model=shipped, language="en", sr=16000)
        guided = att.attention_align(y, text, model=shipped, guide=force_align(y, text, language="en", sr=16000))
        scores[name] = (alone.confidence, guided.confidence, min(s.score for s in guided.segments if s.start))
    assert min(scores["right"][:2]) > 0.3 and max(scores["wrong"][:2]) < 0.25, scores
    assert min(scores["right"][:2]) > 3 * max(scores["wrong"][:2])  # shipped weights: 0.63 against 0.18
    assert scores["right"][2] > max(scores["wrong"][:2])  # every right segment is above any wrong file


def test_the_path_margin_is_the_attention_renormalised_near_the_path():
    rng = np.random.default_rng(0)
    logp = np.log(rng.dirichlet(np.ones(12), size=30)).astype(np.float32)
    path = np.minimum(np.arange(30) // 3, 11)
    got = att._path_margin(logp, path)
    for t, k in enumerate(path):
        lo, hi = max(0, k - att._BAND), min(12, k + att._BAND + 1)
        p = np.exp(logp[t, lo:hi])
        assert got[t] == pytest.approx(np.log(np.exp(logp[t, k]) / p.sum()), abs=1e-5)
    assert np.all(got <= 1e-6)


def test_the_shipped_weights_are_small_and_calibrated(shipped):
    import os

    assert os.path.getsize(att.default_model_path()) < 20_000_000
    assert sum(p.numel() for p in shipped.parameters()) < 10_000_000
    assert 0 < shipped.junction < 0.2 and shipped.calibration["junction"] == shipped.junction
    assert abs(shipped.lead) < 0.05 and shipped.calibration["lead"] == shipped.lead
    assert shipped.calibration["within"]["0.05"] >= 0.95  # fitted on the script's validation split


@pytest.mark.slow
def test_a_guided_alignment_places_the_words_of_another_voice(shipped, reading):
    """Inside the DTW alignment's windows the shipped model finds the words of a voice and a rate
    it was not trained on."""
    from mmalign.align.words import force_align

    y, truth, firsts = reading
    guide = force_align(y, TALK, language="en", sr=16000)
    result = att.attention_align(y, TALK, model=shipped, guide=guide)
    assert result.language == "en" and not result.not_found
    found = np.array([w.start for w in result.words])
    assert len(found) == len(truth) and np.all(np.diff(found) >= 0)
    errors = np.abs(found - truth)
    assert np.mean(errors <= 0.1) >= 0.8 and np.median(errors) <= 0.05, errors.round(3)
    assert [s.start for s in result.segments] == pytest.approx(truth[firsts], abs=0.1)
    assert 0 < result.confidence <= 1
    mapped = result.timemap().apply(np.array([w.start for w in guide.words]))
    assert np.all(np.diff(mapped) >= 0)


# --------------------------------------------------------------------------- combined: learned features in the DTW


def test_the_principal_directions_match_numpy():
    """``_principal``, summed in blocks, against numpy's covariance and eigenvectors (up to sign)."""
    from mmalign.align import words

    rng = np.random.default_rng(0)
    spread = np.linspace(3.0, 0.1, 12)  # distinct variances: the directions are defined
    q = rng.standard_normal((70000, 12)) @ np.diag(spread) @ np.linalg.qr(rng.standard_normal((12, 12)))[0] + 2.0
    q = q.astype(np.float16)  # as the reading's are kept
    mean, basis = words._principal(q, 4)
    ref = q.astype(np.float64)
    np.testing.assert_allclose(mean, ref.mean(axis=0), atol=1e-5)
    vals, vecs = np.linalg.eigh(np.cov(ref.T, bias=True))
    expect = vecs[:, ::-1][:, :4]
    assert basis.shape == (12, 4) and basis.dtype == np.float32
    np.testing.assert_allclose(np.abs(np.sum(basis * expect, axis=0)), 1.0, atol=1e-4)


def test_learned_columns_are_weighted_against_the_front_end():
    """``_with_learned`` joins the projected embeddings, scaled so that unrelated pairs lie
    ``_LEARNED`` times as far apart in them as in the front end's columns."""
    from mmalign.align import words

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((300, 27)).astype(np.float32), rng.standard_normal((500, 27)).astype(np.float32)
    x[::7, -1] = np.nan  # the reading's pauses say nothing in the speech column
    px, py = rng.standard_normal((300, 16)).astype(np.float32), 5 * rng.standard_normal((500, 16)).astype(np.float32)
    xx, yy = words._with_learned(x, y, px, py)
    assert xx.shape == (300, 43) and yy.shape == (500, 43) and xx.flags.c_contiguous and xx.dtype == np.float32
    np.testing.assert_array_equal(xx[:, :27], x)
    np.testing.assert_array_equal(yy[:, :27], y)
    assert words._chance_cost(xx[:, 27:], yy[:, 27:]) == pytest.approx(
        words._LEARNED * words._chance_cost(x, y), rel=1e-4
    )
    ratio = xx[:, 27:] / px
    assert np.allclose(ratio, ratio[0, 0]) and np.allclose(yy[:, 27:] / py, ratio[0, 0])


def test_projected_embeddings_are_the_embeddings_projected(shipped):
    """``frame_embeddings(project=)`` gives the full queries times the projection, chunk by chunk."""
    rng = np.random.default_rng(1)
    db = (rng.standard_normal((700, shipped.config.n_mels)) * 10 - 30).astype(np.float32)
    project = rng.standard_normal((shipped.config.attn_dim, 5)).astype(np.float32)
    full = att.frame_embeddings(shipped, db)
    np.testing.assert_allclose(att.frame_embeddings(shipped, db, project), full @ project, rtol=1e-4, atol=1e-3)
    with pytest.raises(UsageError, match="project must have shape"):
        att.frame_embeddings(shipped, db, project[:3])


@pytest.mark.slow
def test_combined_finds_the_lines_of_another_voice(shipped, reading):
    """``force_align(model=)``: the DTW with the shipped model's frame embeddings joined finds every
    line of a voice and a rate the model was not trained on, as the DTW alone does; a path
    to the weights gives the same as the model itself, and no model gives the DTW alone."""
    from mmalign.align.words import force_align

    y, truth, firsts = reading
    dtw = force_align(y, TALK, language="en", sr=16000)
    combined = force_align(y, TALK, language="en", sr=16000, model=shipped)
    by_path = force_align(y, TALK, language="en", sr=16000, model=att.default_model_path())
    assert not combined.not_found
    assert [s.start for s in combined.segments] == pytest.approx(truth[firsts], abs=0.1)
    found = np.array([w.start for w in combined.words])
    assert (
        np.mean(np.abs(found - truth) <= 0.1)
        >= np.mean(np.abs(np.array([w.start for w in dtw.words]) - truth) <= 0.1) - 0.05
    )
    assert [s.start for s in by_path.segments] == [s.start for s in combined.segments]
    assert combined.confidence != dtw.confidence  # the costs are not the DTW's alone
    assert [s.start for s in force_align(y, TALK, language="en", sr=16000, model=None).segments] == [
        s.start for s in dtw.segments
    ]


@pytest.mark.slow
def test_a_guided_alignment_leaves_out_what_its_guide_did_not_find(shipped, reading):
    from mmalign.align.words import force_align

    y, truth, firsts = reading
    guide = force_align(y, TALK, language="en", sr=16000)
    lost = dataclasses.replace(guide.segments[2], start=None, end=None, score=float("nan"), words=(), reason="gone")
    guide = dataclasses.replace(guide, segments=(*guide.segments[:2], lost, *guide.segments[3:]))
    result = att.attention_align(y, TALK, model=shipped, guide=guide)
    assert result.not_found == (2,) and result.segments[2].reason == "gone"
    starts = [result.segments[k].start for k in (0, 1, 3)]
    assert starts == pytest.approx(truth[[firsts[0], firsts[1], firsts[3]]], abs=0.1)


def test_a_guide_must_be_of_the_same_segments(shipped):
    from mmalign.align.words import AlignedSegment, ForcedAlignment

    guide = ForcedAlignment((AlignedSegment(0, "Hello.", 0.1, 0.5, 0.9, ()),), "en", 1.0, 0.9, np.zeros((1, 2)))
    with pytest.raises(UsageError, match="guide must be a ForcedAlignment of the same segments"):
        att.attention_align(np.zeros(16000, np.float32), ["Hello.", "Again."], model=shipped, guide=guide)


def test_a_recording_too_long_for_one_piece_asks_for_a_guide(shipped, monkeypatch):
    monkeypatch.setattr(att, "MAX_CELLS", 100)
    with pytest.raises(UsageError, match="too long for one attention alignment .* align it with a guide"):
        att.attention_align(np.zeros(16000, np.float32), ["Hello there."], model=shipped, language="en")


def test_a_long_recording_is_encoded_in_chunks_as_in_one_piece(shipped, monkeypatch):
    """Guided alignment encodes the recording chunk by chunk (bounded memory); each chunk is read
    with the encoder's reach and half a normalisation stretch more on each side."""
    from mmalign.filters import sliding_normalise

    db = np.random.default_rng(0).normal(-40, 10, size=(2500, 80)).astype(np.float32)
    monkeypatch.setattr(att, "_CHUNK_FRAMES", 700)
    chunked = att.frame_embeddings(shipped, db)
    floor = np.float32(np.percentile(db.max(axis=1), 99) - 80)
    x = sliding_normalise(np.maximum(db, floor), int(round(att.GUIDE_NORM_SECONDS / att.HOP)))
    with torch.inference_mode():
        whole = shipped.encode_audio(torch.as_tensor(x)[None])[0].numpy()
    np.testing.assert_allclose(chunked, whole, atol=1e-4)
