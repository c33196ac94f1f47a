"""Video decoding (media.iter_frames) and video features (features.video) on clips made with PyAV.

The events clip (10 s, 25 fps): a dark blue scene with a white square that moves during
[1.0, 2.0) s, a white flash over [3.04, 3.24) s, a hard cut at 6.08 s to an orange scene
with a static pattern.  Every event must be found within one hop (1 / fps) of its time.
"""

from __future__ import annotations

import logging
import warnings
from fractions import Fraction

import numpy as np
import pytest

from mmalign import media
from mmalign.errors import InputError, UsageError
from mmalign.features import video
from mmalign.timeline import FeatureSeq

from conftest import SAMPLE_DIR, Track, encoder_available, first_encoder, tone, write_media

H264 = first_encoder("libx264", "h264", "mpeg4")
FPS = 5.0
HOP = 1.0 / FPS
RATE = 25
W, H = 160, 96
MOVE = (1.0, 2.0)  # the square moves
FLASH = (3.04, 3.24)  # white picture
CUT = 6.08  # scene A -> scene B
SECONDS = 10.0

BLUE = (20, 30, 120)  # RGB
ORANGE = (230, 140, 30)
# A fixed grain on every picture, so that the files have some size (and truncating one
# at half its bytes cuts it near half its duration), as real pictures do.
TEXTURE = np.random.default_rng(0).integers(-12, 13, (H, W, 1)).astype(np.int16)


def textured(img: np.ndarray) -> np.ndarray:
    return np.clip(img.astype(np.int16) + TEXTURE, 0, 255).astype(np.uint8)


def events_frame(t: float) -> np.ndarray:
    """The events clip's RGB picture at time ``t``."""
    if FLASH[0] <= t < FLASH[1]:
        return np.full((H, W, 3), 250, np.uint8)
    if t >= CUT:
        img = np.empty((H, W, 3), np.uint8)
        img[:] = ORANGE
        img[H // 3 : 2 * H // 3, :] = (40, 160, 60)
        return textured(img)
    img = np.empty((H, W, 3), np.uint8)
    img[:] = BLUE
    x = 10 + int(round(100 * min(max(t - MOVE[0], 0.0), 1.0)))
    img[30:60, x : x + 30] = 240
    return textured(img)


def write_clip(
    path,
    times,
    draw,
    *,
    codec=H264,
    fmt=None,
    options=None,
    time_base=Fraction(1, 1000),
    audio: np.ndarray | None = None,
    sr: int = 16000,
):
    """Encode ``draw(t)`` at each of ``times`` (seconds) with PyAV; returns ``path``."""
    import av

    if codec is None:
        pytest.skip("no video encoder in this PyAV build")
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        v = c.add_stream(codec, rate=RATE)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.codec_context.gop_size = RATE  # a key frame each second
        v.codec_context.time_base = time_base
        v.time_base = time_base
        a = None
        if audio is not None:
            a = c.add_stream("aac", rate=sr, layout="mono")
            frame = av.AudioFrame.from_ndarray(audio[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sr, 0
            for p in list(a.encode(frame)) + list(a.encode(None)):
                c.mux(p)
        for t in times:
            f = av.VideoFrame.from_ndarray(draw(t), format="rgb24")
            f.pts = int(round(t / time_base))
            f.time_base = time_base
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return path


def cfr(seconds=SECONDS, rate=RATE):
    return [i / rate for i in range(int(round(seconds * rate)))]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "events.mp4"
    return write_clip(path, cfr(), events_frame, options={"movflags": "faststart"})


@pytest.fixture(scope="module")
def events_features(events):
    return video.extract(events, FPS, features=video.FEATURES)


def near(found: float, truth: float, tol: float = HOP) -> bool:
    return abs(found - truth) <= tol + 1e-6


def check_events(feats: dict[str, FeatureSeq]):
    """Each event of the events clip is where it should be, within one hop."""
    luma = feats["video.luma"]
    t = luma.times
    # The flash: the brightest sample, and no cut.
    assert near(t[np.argmax(luma.values[:, 0])], FLASH[0])
    assert luma.values[:, 0].max() > 0.9
    # The cut: exactly one, at the cut.
    cuts = feats["video.cut"].meta["cuts"]
    assert len(cuts) == 1 and near(cuts[0], CUT), cuts
    # Motion starts and stops with the square (flash and cut excluded).
    motion = feats["video.motion"].values[:, 0]
    quiet = (t < FLASH[0] - HOP) | ((t > FLASH[1] + HOP) & (t < CUT - HOP)) | (t > CUT + HOP)
    moving = motion > 0.01
    onset = t[moving & quiet][0]
    offset = t[moving & quiet][-1]
    assert near(onset, MOVE[0]) and near(offset, MOVE[1]), (onset, offset)
    assert not moving[quiet & ((t < MOVE[0]) | (t > MOVE[1] + HOP))].any()


# ---------------------------------------------------------------- iter_frames


def test_iter_frames_grid_and_size(events):
    frames = list(media.iter_frames(events, FPS, size=80))
    times = np.array([t for t, _ in frames])
    assert np.allclose(times, np.arange(len(times)) * HOP)
    assert len(frames) == SECONDS * FPS
    _, img = frames[0]
    assert img.shape == (48, 80, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    # BGR by default: the blue scene is blue.
    assert img[..., 0].mean() > img[..., 2].mean() + 50
    rgb = next(media.iter_frames(events, FPS, size=(40, 30), format="rgb24"))[1]
    assert rgb.shape == (30, 40, 3) and rgb[..., 2].mean() > rgb[..., 0].mean() + 50
    gray = next(media.iter_frames(events, FPS, format="gray"))[1]
    assert gray.shape == (H, W)


def test_iter_frames_all_frames_and_range(events):
    every = list(media.iter_frames(events, None, size=16))
    assert len(every) == SECONDS * RATE
    assert np.allclose([t for t, _ in every], cfr(), atol=1e-6)
    part = [t for t, _ in media.iter_frames(events, FPS, start=4.1, end=5.0, size=16)]
    assert np.allclose(part, [4.2, 4.4, 4.6, 4.8])
    part = [t for t, _ in media.iter_frames(events, None, start=4.1, end=4.3, size=16)]
    assert np.allclose(part, [4.12, 4.16, 4.2, 4.24, 4.28])
    assert list(media.iter_frames(events, FPS, start=20.0)) == []


def test_variable_frame_rate_timestamps(tmp_path):
    # Irregular timestamps; each frame's grey level encodes its number.
    pts = [0.0, 0.1, 0.15, 0.4, 0.41, 0.9, 1.0, 1.033, 1.066, 1.5, 2.0]

    def draw(t):
        return np.full((H, W, 3), 20 * pts.index(t), np.uint8)

    path = write_clip(tmp_path / "vfr.mkv", pts, draw)
    got = list(media.iter_frames(path, None, format="gray"))
    assert np.allclose([t for t, _ in got], pts, atol=1e-6)
    assert [round(img.mean() / 20) for _, img in got] == list(range(len(pts)))
    # On a 10 fps grid each sample is the frame on screen at that instant.
    grid = list(media.iter_frames(path, 10.0, format="gray"))
    times = np.array([t for t, _ in grid])
    assert np.allclose(times, np.arange(len(grid)) / 10.0)
    shown = [round(img.mean() / 20) for _, img in grid]
    expected = [int(np.searchsorted(pts, t + 1e-4, side="right") - 1) for t in times]
    assert shown == expected
    assert times[-1] >= 2.0
    feats = video.extract(path, 10.0)
    assert feats["video.luma"].hop == 0.1 and len(feats["video.luma"]) == len(grid)


def test_nonzero_container_start(tmp_path):
    # MPEG-TS starts its clock at 1.4 s: times count from the container's start.
    path = write_clip(tmp_path / "events.ts", cfr(), events_frame, fmt="mpegts", time_base=Fraction(1, 90000))
    import av

    with av.open(str(path)) as c:
        assert c.start_time and c.start_time > 0
    first = next(media.iter_frames(path, None))[0]
    assert abs(first) < 1e-6
    check_events(video.extract(path, FPS))


def test_video_starting_after_audio(tmp_path):
    # The audio starts at 0, the first frame at 0.5 s: samples start at the first frame.
    path = write_clip(
        tmp_path / "late.mp4", [0.5 + t for t in cfr(2.0)], lambda t: events_frame(0.0), audio=tone(440, 3.0, 16000)
    )
    assert next(media.iter_frames(path, None))[0] == pytest.approx(0.5)
    luma = video.extract(path, FPS)["video.luma"]
    assert luma.t0 == pytest.approx(0.6) and luma.times[-1] == pytest.approx(2.4)


# ---------------------------------------------------------------- features


def test_events_found_within_one_hop(events_features):
    check_events(events_features)


def test_shapes_and_dtypes(events_features):
    n = int(SECONDS * FPS)
    dims = {"video.hist": 128, "video.luma": 2, "video.motion": 1, "video.flow": 3, "video.cut": 1}
    assert set(events_features) == set(dims)
    for name, seq in events_features.items():
        assert seq.name == name and seq.modality == "video"
        assert seq.values.shape == (n, dims[name]) and seq.values.dtype == np.float32
        assert seq.hop == HOP and seq.t0 == 0.0
        assert np.isfinite(seq.values).all()
        assert seq.meta["fps"] == FPS and seq.meta["extractor"].startswith("mmalign.features.video")
        assert "warnings" not in seq.meta
    hist = events_features["video.hist"].values
    assert np.allclose(hist.sum(axis=1), 1.0, atol=1e-5) and (hist >= 0).all()
    luma = events_features["video.luma"].values
    assert ((luma >= 0) & (luma <= 1)).all()
    cut = events_features["video.cut"].values[:, 0]
    assert cut[0] == 0 and ((cut >= 0) & (cut <= 1)).all()


def test_flow_follows_the_square(events_features):
    flow = events_features["video.flow"]
    t = flow.times
    moving = (t > MOVE[0] + 1e-6) & (t <= MOVE[1] + 1e-6)
    dx = flow.values[:, 1]
    # The square moves right at 100 px/s on a 160 px frame: 0.625 widths/s, spread over the frame.
    assert (dx[moving] > 0.002).all() and dx[moving].mean() > 0.01
    assert np.abs(flow.values[(t < MOVE[0]) | ((t > MOVE[1] + HOP) & (t < FLASH[0] - HOP)), 0]).max() < 0.005


def test_default_features_and_choice(events):
    seen = []
    feats = video.extract(events, FPS, end=2.0, progress=lambda done, total: seen.append((done, total)))
    assert set(feats) == {"video.hist", "video.luma", "video.motion", "video.cut"}
    assert len(feats["video.hist"]) == 10
    # the one progress convention: (seconds analysed, seconds to analyse), then (total, total)
    done, total = np.array(seen).T
    assert np.allclose(done[:-1], feats["video.hist"].times) and np.all(total == 2.0) and done[-1] == 2.0
    only = video.extract(events, FPS, features=["luma"], width=None, start=5.0)
    assert list(only) == ["video.luma"] and only["video.luma"].t0 == 5.0 and len(only["video.luma"]) == 25
    with pytest.raises(UsageError, match="unknown video feature"):
        video.extract(events, FPS, features=["colour"])
    with pytest.raises(UsageError):
        video.extract(events, 0)


def test_sample_clip_cuts_at_sentence_boundaries():
    # sample.mp4 changes its background colour at every cue start and end (dimmed in pauses).
    import json

    truth = json.loads((SAMPLE_DIR / "truth.json").read_text())
    bounds = np.sort([c[k] for c in truth["cues"] for k in ("start", "end")])
    feats = video.extract(SAMPLE_DIR / "sample.mp4", FPS, features=["cut"])
    cuts = np.array(feats["video.cut"].meta["cuts"])
    assert len(cuts) == len(bounds)
    assert np.all(np.abs(cuts - bounds) <= HOP + 1e-6), np.round(cuts - bounds, 3)


def test_frame_skipping_keeps_the_clock(events):
    # Leaving B-frames out shifts a sample by a frame interval at most: events stay put.
    check_events(video.extract(events, FPS, skip="nonref"))
    keys = list(media.iter_frames(events, FPS, size=32, skip="nonkey"))
    assert np.allclose([t for t, _ in keys], np.arange(len(keys)) * HOP)
    assert len({id(img) for _, img in keys}) == SECONDS  # one key frame a second
    with pytest.raises(UsageError):
        list(media.iter_frames(events, skip="bframes"))


def test_detect_cuts_suppresses_flashes_not_cuts():
    a, b, c = np.eye(3, dtype=np.float32)
    seq = [a] * 10 + [b] * 2 + [a] * 10 + [c] * 10 + [a] * 10  # flash of b, cut to c, cut back to a
    hist = np.stack(seq)
    assert video.detect_cuts(hist, 5.0, t0=1.0) == pytest.approx([1.0 + 22 / 5, 1.0 + 32 / 5])
    assert video.detect_cuts(hist, 5.0, flash_seconds=0) == pytest.approx([2.0, 2.4, 4.4, 6.4])
    assert video.detect_cuts(hist[:1], 5.0) == []


# ---------------------------------------------------------------- damage and errors


def test_truncated_file_gives_features_up_to_the_damage(events, tmp_path, caplog):
    data = events.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="mmalign.media"):
        feats = video.extract(cut, FPS)
    n = len(feats["video.luma"])
    assert 0 < n < 0.9 * SECONDS * FPS
    assert any(str(cut) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert feats["video.luma"].meta["warnings"]
    # What was decoded is right: the move is there.
    moving = feats["video.motion"].values[:, 0] > 0.01
    assert moving[int(MOVE[0] * FPS) + 1 : int(MOVE[1] * FPS)].all()


@pytest.mark.parametrize("where", [0.5, 0.7])
def test_damage_inside_the_file_gives_a_warning(events, tmp_path, caplog, where):
    data = bytearray(events.read_bytes())
    i = int(len(data) * where)
    data[i : i + 3000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="mmalign.media"):
        feats = video.extract(bad, FPS)
    assert len(feats["video.luma"]) > 10
    assert feats["video.luma"].meta["warnings"] and caplog.records
    assert all(isinstance(c, float) for c in feats["video.cut"].meta["cuts"])


def test_truncated_without_index_is_an_input_error(tmp_path):
    path = write_clip(tmp_path / "full.mp4", cfr(2.0), events_frame)  # index (moov) at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError) as info:
        video.extract(cut, FPS)
    assert "\n" not in str(info.value) and info.value.exit_code == 3


def test_garbage_and_audio_only_are_input_errors(tmp_path):
    wav = write_media(tmp_path / "a.wav", [Track(tone(440, 1.0, 16000), 16000)])
    with pytest.raises(InputError, match="has no video stream") as info:
        video.extract(wav, FPS)
    assert info.value.exit_code == 3
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01 not a video " * 100)
    with pytest.raises(InputError):
        video.extract(junk, FPS)
    with pytest.raises(InputError, match="no such file"):
        list(media.iter_frames(tmp_path / "missing.mp4"))


def test_cover_art_is_not_a_video(tmp_path):
    import av

    if not (encoder_available("libmp3lame") and encoder_available("mjpeg")):
        pytest.skip("needs the libmp3lame and mjpeg encoders")
    path = tmp_path / "song.mp3"
    sr = 22050
    with av.open(str(path), "w") as c:
        a = c.add_stream("libmp3lame", rate=sr, layout="mono")
        v = c.add_stream("mjpeg", rate=1)
        v.width, v.height, v.pix_fmt = 32, 32, "yuvj420p"
        v.disposition = av.stream.Disposition.attached_pic
        f = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        f.pts = 0
        for p in list(v.encode(f)) + list(v.encode(None)):
            c.mux(p)
        af = av.AudioFrame.from_ndarray(tone(440, 1.0, sr)[None], format="fltp", layout="mono")
        af.sample_rate, af.pts = sr, 0
        for p in list(a.encode(af)) + list(a.encode(None)):
            c.mux(p)
    with pytest.raises(InputError, match="only cover art"):
        video.extract(path, FPS)


def test_whole_file_decodes_without_warnings(events, caplog):
    with caplog.at_level(logging.WARNING, logger="mmalign.media"):
        list(media.iter_frames(events, FPS, size=32))
        list(media.iter_frames(events, FPS, size=32, start=2.0, end=4.0))
    assert not caplog.records


def test_bad_stream_number(events):
    with pytest.raises(UsageError, match="does not exist"):
        list(media.iter_frames(events, stream=1))


# ---------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def mean_colour_model(tmp_path_factory):
    torch = pytest.importorskip("torch")

    class MeanColour(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(1, 2, 3))[:, None]], dim=1)

    path = tmp_path_factory.mktemp("model") / "mean_colour.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates torch.jit
        torch.jit.save(torch.jit.script(MeanColour()), str(path))
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch >= 2.10 deprecates torch.jit
def test_embed_with_torchscript_model(events, mean_colour_model, events_features):
    seq = video.embed(events, mean_colour_model, FPS, batch_size=7, device="cpu", size=32)
    assert seq.name == "video.embed" and seq.values.shape == (SECONDS * FPS, 4) and seq.values.dtype == np.float32
    assert seq.hop == HOP and np.allclose(seq.times, events_features["video.luma"].times)
    # RGB order, values in 0-1: the blue scene, then the orange one.
    t = seq.times
    before = seq.values[(t < MOVE[0]), :3].mean(axis=0)
    after = seq.values[(t > CUT + HOP), :3].mean(axis=0)
    assert np.allclose(before, np.array(BLUE) / 255, atol=0.08)
    assert np.allclose(after, events_frame(CUT + 1).reshape(-1, 3).mean(axis=0) / 255, atol=0.08)
    assert seq.values[:, 3].max() <= 1.0
    # Centre crop and normalisation.
    crop = video.embed(
        events,
        mean_colour_model,
        FPS,
        batch_size=64,
        size=32,
        crop=True,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        end=1.0,
    )
    assert len(crop) == 5 and np.allclose(crop.values[0, :3], np.array(BLUE) / 255 * 2 - 1, atol=0.1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_embed_errors(events, mean_colour_model, tmp_path):
    torch = pytest.importorskip("torch")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a TorchScript model"):
        video.embed(events, bad)
    with pytest.raises(InputError, match="no such model"):
        video.embed(events, tmp_path / "missing.pt")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA"):
            video.embed(events, mean_colour_model, device="cuda")
    with pytest.raises(UsageError):
        video.embed(events, mean_colour_model, batch_size=0)


def test_progress_is_done_and_total_over_the_range(events):
    """From ``start`` to the end of the media: ``done`` counts from ``start``, ``total`` is what is left."""
    seen: list[tuple[float, float]] = []
    video.extract(events, FPS, features=["luma"], start=5.0, progress=lambda d, t: seen.append((d, t)))
    done, total = np.array(seen).T
    assert np.all(total == SECONDS - 5.0) and done[0] == 0.0 and np.all(np.diff(done) > 0)
    assert seen[-1] == (SECONDS - 5.0, SECONDS - 5.0) and done[-2] == pytest.approx(SECONDS - 5.0 - HOP)


def test_progress_of_one_argument_still_works_one_release(events):
    """The old convention (the sample's time) keeps working until 0.3.0, with a warning."""
    seen: list[float] = []
    with pytest.warns(DeprecationWarning, match=r"one argument.*pass progress\(done, total\)"):
        feats = video.extract(events, FPS, features=["luma"], start=1.0, end=2.0, progress=seen.append)
    assert np.allclose(seen[:-1], feats["video.luma"].times) and seen[-1] == 2.0
