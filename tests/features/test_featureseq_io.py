"""Tests of the feature file format: FeatureSeq.save/load, save_features/load_features (safetensors, npz)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import mmalign
from mmalign.errors import InputError, UsageError
from mmalign.features import io as FIO
from mmalign.features.io import load_features, read_metadata, save_features
from mmalign.timeline import FeatureSeq


def _seqs():
    rng = np.random.default_rng(0)
    return [
        FeatureSeq(
            rng.standard_normal((250, 7)),
            0.01,
            0.0,
            "audio.mfcc",
            {
                "extractor": "mmalign.features.audio.audio_features",
                "sr": 16000,
                "n_mfcc": np.int64(7),
                "columns": [f"mfcc{k}" for k in range(7)],
            },
        ),
        FeatureSeq(rng.random(40), 0.2, 1.5, "video.luma", {"extractor": "x", "fps": 5.0}),
        FeatureSeq.from_times(rng.random((3, 8)), [0.5, 2.0, 2.25], name="text.cues", meta={"cues": 3}),
        FeatureSeq(np.zeros((0, 4)), 0.04, 0.0, "audio.empty"),
    ]


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_round_trip(tmp_path, ext):
    src = tmp_path / "film.wav"
    src.write_bytes(b"RIFF fake media bytes")
    path = tmp_path / f"out.{ext}"
    seqs = _seqs()
    save_features(path, seqs, metadata={"note": "hello", "run": {"n": 1}}, source=src)
    back = load_features(path)
    assert list(back) == [s.name for s in seqs]
    for s in seqs:
        b = back[s.name]
        assert b.values.dtype == np.float32 and np.array_equal(b.values, s.values)
        assert np.array_equal(b.times, s.times)
        assert b.hop == s.hop and b.t0 == s.t0 and b.is_regular == s.is_regular
        assert b.meta == json.loads(json.dumps(s.meta, default=FIO._jsonable))
    meta = read_metadata(path)
    assert meta["format"] == "mmalign.features" and meta["format_version"] == 1
    assert meta["mmalign_version"] == mmalign.__version__
    assert meta["features"] == [s.name for s in seqs]
    assert meta["source"]["name"] == "film.wav" and meta["source"]["size"] == src.stat().st_size
    import hashlib

    assert meta["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["user.note"] == "hello" and meta["user.run"] == {"n": 1}
    assert meta["feature.audio.mfcc"]["meta"]["extractor"] == "mmalign.features.audio.audio_features"
    assert meta["feature.audio.mfcc"]["hop"] == 0.01
    assert [p.name for p in tmp_path.iterdir()] == sorted([f"out.{ext}", "film.wav"]) or sorted(
        p.name for p in tmp_path.iterdir()
    ) == sorted([f"out.{ext}", "film.wav"])  # no temp file left


def test_plain_safetensors_reader_sees_documented_names(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = tmp_path / "f.safetensors"
    seqs = _seqs()
    save_features(path, seqs)
    plain = load_file(str(path))
    assert set(plain) == {n for s in seqs for n in (s.name, s.name + ".times")}
    for s in seqs:
        assert plain[s.name].dtype == np.float32 and plain[s.name].shape == s.values.shape
        assert plain[s.name + ".times"].dtype == np.float64 and plain[s.name + ".times"].shape == (len(s),)
        assert np.array_equal(plain[s.name + ".times"], s.times)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    assert json.loads(meta["mmalign_version"]) == mmalign.__version__


@pytest.mark.filterwarnings("ignore:FeatureSeq.(save|load) is deprecated:DeprecationWarning")
def test_featureseq_save_load(tmp_path):
    """The deprecated methods (until 0.3.0) still read and write; save_features/load_features are the API."""
    seq = _seqs()[0]
    for name in ("one.safetensors", "one.npz"):
        seq.save(tmp_path / name)
        back = FeatureSeq.load(tmp_path / name)
        assert back.name == seq.name and np.array_equal(back.values, seq.values) and back.hop == seq.hop
    save_features(tmp_path / "many.safetensors", _seqs())
    assert FeatureSeq.load(tmp_path / "many.safetensors", "video.luma").t0 == 1.5
    with pytest.raises(UsageError, match="name the one"):
        FeatureSeq.load(tmp_path / "many.safetensors")
    with pytest.raises(InputError, match="no feature 'audio.nope'"):
        FeatureSeq.load(tmp_path / "many.safetensors", "audio.nope")
    # format= overrides the extension
    seq.save(tmp_path / "odd.bin", format="npz")
    assert np.array_equal(FeatureSeq.load(tmp_path / "odd.bin", format="npz").values, seq.values)


def test_dict_input_and_errors(tmp_path):
    s = FeatureSeq(np.ones((5, 2)), 0.1)
    save_features(tmp_path / "d.npz", {"audio.ones": s})
    assert list(load_features(tmp_path / "d.npz")) == ["audio.ones"]
    with pytest.raises(UsageError, match="needs a name"):
        save_features(tmp_path / "x.safetensors", [s])
    with pytest.raises(UsageError, match="format"):
        save_features(tmp_path / "x.bin", {"a.b": s})
    with pytest.raises(UsageError, match="named"):
        save_features(tmp_path / "x.npz", [FeatureSeq(np.ones(3), 0.1, name="a.b")] * 2)
    with pytest.raises(UsageError, match="reserved"):
        save_features(tmp_path / "x.npz", [FeatureSeq(np.ones(3), 0.1, name="a.b.times")])
    with pytest.raises(InputError, match="no such file"):
        load_features(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00\x01")
    with pytest.raises(InputError):
        load_features(tmp_path / "junk.safetensors")


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.safetensors"
    save_features(path, _seqs()[:1])
    before = path.read_bytes()

    def boom(fh, seqs, meta):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(FIO, "_write_safetensors", boom)
    with pytest.raises(RuntimeError):
        save_features(path, _seqs())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["f.safetensors"]


def test_file_from_another_tool_with_irregular_times(tmp_path):
    from safetensors.numpy import save_file

    times = np.array([0.0, 0.04, 0.1, 0.1, 0.37])
    save_file(
        {
            "video.motion": np.arange(10, dtype=np.float32).reshape(5, 2),
            "video.motion.times": times,
            "audio.plain": np.ones((4, 3), np.float32),
            "misc.cube": np.zeros((2, 2, 2), np.float32),
        },
        str(tmp_path / "other.safetensors"),
        metadata={"tool": "someone else"},
    )
    back = load_features(tmp_path / "other.safetensors")
    assert set(back) == {"video.motion", "audio.plain"}  # a 3-D tensor is no sequence
    m = back["video.motion"]
    assert not m.is_regular and np.array_equal(m.times, times)
    assert np.allclose(m.resample(np.array([0.02, 0.37])), [[1, 2], [8, 9]])
    assert len(m.slice(0.05, 0.2)) == 2
    plain = back["audio.plain"]  # no times tensor: frame i at i seconds, and said so
    assert plain.is_regular and plain.hop == 1.0 and "times" in plain.meta
    assert read_metadata(tmp_path / "other.safetensors") == {"tool": "someone else"}


def test_regular_times_recover_hop_and_t0(tmp_path):
    t = 3.25 + 0.04 * np.arange(1000)
    np.savez(tmp_path / "r.npz", **{"video.x": np.zeros((1000, 1), np.float32), "video.x.times": t})
    seq = load_features(tmp_path / "r.npz")["video.x"]
    assert seq.is_regular and seq.t0 == 3.25 and seq.hop == pytest.approx(0.04, rel=1e-12)


def test_npz_refuses_pickle(tmp_path):
    np.savez(tmp_path / "p.npz", **{"audio.x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(InputError, match="cannot read"):
        load_features(tmp_path / "p.npz")


def test_from_times_and_irregular_methods():
    reg = FeatureSeq.from_times(np.arange(4.0), [1.0, 1.5, 2.0, 2.5])
    assert reg.is_regular and reg.hop == 0.5 and reg.t0 == 1.0
    irr = FeatureSeq.from_times(np.arange(4.0), [1.0, 1.5, 3.0, 3.5], name="text.cues")
    assert not irr.is_regular and irr.hop == 0.5 and irr.t0 == 1.0
    assert np.array_equal(irr.slice(1.2, 3.2).times, [1.5, 3.0])
    assert np.allclose(irr.resample(np.array([0.0, 2.25, 9.0]))[:, 0], [0.0, 1.5, 3.0])
    assert np.allclose(irr.pool([(0.9, 1.6), (2.0, 2.5)])[:, 0], [0.5, 1.5])  # no frame: the centre, interpolated
    with pytest.raises(UsageError, match="non-decreasing"):
        FeatureSeq(np.arange(3.0), 1.0, frame_times=[0.0, 2.0, 1.0])
    with pytest.raises(UsageError, match="frame times"):
        FeatureSeq(np.arange(3.0), 1.0, frame_times=[0.0, 2.0])


def test_featureseq_io_methods_are_deprecated(tmp_path):
    seq = _seqs()[0]
    with pytest.warns(DeprecationWarning, match=r"FeatureSeq.save is deprecated.*save_features"):
        seq.save(tmp_path / "a.safetensors")
    with pytest.warns(DeprecationWarning, match=r"FeatureSeq.load is deprecated.*load_features"):
        FeatureSeq.load(tmp_path / "a.safetensors")
