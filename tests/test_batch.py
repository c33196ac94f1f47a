"""mmalign.batch: pairing by name, manifests, the results log."""

import json
import os

import pytest

from mmalign.batch import Fingerprint, Job, ResultsLog, find_jobs, fingerprint, options_hash, read_manifest
from mmalign.errors import InputError, UsageError


def _touch(root, *names):
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(name.encode())


def test_pairs_media_with_tagged_subtitles_recursively(tmp_path):
    src = tmp_path / "src"
    _touch(
        src,
        "film.mkv",
        "film.srt",
        "film.en.srt",
        "film.en.forced.vtt",
        "film.fr.ass",
        "season 1/My.Show.S01E01.mp4",
        "season 1/My.Show.S01E01.de.srt",
        "season 1/notes.txt",
        "orphan.en.srt",
        "lonely.wav",
    )
    jobs, unpaired = find_jobs([src], tmp_path / "out")
    got = {(j.media.name, j.subs.name, j.tags, j.key) for j in jobs}
    assert got == {
        ("film.mkv", "film.srt", (), "film.srt"),
        ("film.mkv", "film.en.srt", ("en",), "film.en.srt"),
        ("film.mkv", "film.en.forced.vtt", ("en", "forced"), "film.en.forced.vtt"),
        ("film.mkv", "film.fr.ass", ("fr",), "film.fr.ass"),
        ("My.Show.S01E01.mp4", "My.Show.S01E01.de.srt", ("de",), "season 1/My.Show.S01E01.de.srt"),
    }
    assert {(u.path.name, u.reason.split()[1]) for u in unpaired} == {
        ("orphan.en.srt", "media"),
        ("lonely.wav", "subtitle"),
    }
    for job in jobs:  # outputs mirror the tree under OUTDIR, never beside the inputs
        assert job.out == tmp_path / "out" / job.key


def test_longest_media_name_wins(tmp_path):
    _touch(tmp_path / "src", "a.mkv", "a.b.mkv", "a.b.srt", "a.c.srt")
    jobs, _ = find_jobs([tmp_path / "src"], tmp_path / "out")
    assert {(j.media.name, j.subs.name, j.tags) for j in jobs} == {
        ("a.b.mkv", "a.b.srt", ()),
        ("a.mkv", "a.c.srt", ("c",)),
    }


def test_media_alone_and_subtitles_alone(tmp_path):
    _touch(tmp_path / "src", "a.mkv", "a.srt", "b.wav", "c.vtt")
    media_jobs, unpaired = find_jobs([tmp_path / "src"], tmp_path / "out", need="media")
    assert sorted((j.media.name, j.subs and j.subs.name) for j in media_jobs) == [("a.mkv", "a.srt"), ("b.wav", None)]
    assert [u.path.name for u in unpaired] == ["c.vtt"]
    subs_jobs, unpaired = find_jobs([tmp_path / "src"], tmp_path / "out", need="subs")
    assert sorted(j.subs.name for j in subs_jobs) == ["a.srt", "c.vtt"] and not unpaired


def test_output_folder_inside_the_tree_is_not_searched(tmp_path):
    _touch(tmp_path, "a.mkv", "a.srt", "out/a.mkv", "out/a.srt")
    jobs, _ = find_jobs([tmp_path], tmp_path / "out")
    assert [j.key for j in jobs] == ["a.srt"]


def test_several_roots_mirror_under_their_names(tmp_path):
    _touch(tmp_path / "x" / "films", "a.mkv", "a.srt")
    _touch(tmp_path / "y" / "films", "a.mkv", "a.srt")
    jobs, _ = find_jobs([tmp_path / "x" / "films", tmp_path / "y" / "films"], tmp_path / "out")
    assert [j.key for j in jobs] == ["films/a.srt", "films-2/a.srt"]


def test_output_name_and_clashes(tmp_path):
    _touch(tmp_path / "src", "a.mkv", "a.srt", "a.vtt")
    jobs, _ = find_jobs([tmp_path / "src"], tmp_path / "out", out_name=lambda p: p.stem + ".synced" + p.suffix)
    assert sorted(j.key for j in jobs) == ["a.synced.srt", "a.synced.vtt"]
    with pytest.raises(UsageError, match=r"a\.srt would both write .*a\.synced\.vtt"):
        find_jobs([tmp_path / "src"], tmp_path / "out", out_name=lambda p: p.stem + ".synced.vtt")


def test_missing_root_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        find_jobs([tmp_path / "nope"], tmp_path / "out")


def test_manifest_lines(tmp_path):
    lines = [
        json.dumps({"media": "m/a.mkv", "subs": "m/a.srt"}),
        "",
        json.dumps({"media": "m/b.mkv", "subs": "m/b.srt", "out": "x/b.vtt"}),
    ]
    jobs = read_manifest(lines, tmp_path / "out")
    assert jobs == [
        Job("a.srt", tmp_path.__class__("m/a.mkv"), tmp_path.__class__("m/a.srt"), tmp_path / "out" / "a.srt"),
        Job("x/b.vtt", tmp_path.__class__("m/b.mkv"), tmp_path.__class__("m/b.srt"), tmp_path / "out" / "x/b.vtt"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", r"jobs\.jsonl:1: not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ('{"media": 3}', "'media' must be a non-empty path string"),
        ('{"out": "a"}', "needs 'media' or 'subs'"),
        ('{"subs": "a.srt", "out": "../a.srt"}', "'out' must be a path inside the output folder"),
        ('{"subs": "a.srt", "film": "a.mkv"}', "unknown field 'film'"),
    ],
)
def test_manifest_errors_name_the_line(tmp_path, line, message):
    with pytest.raises(InputError, match=message):
        read_manifest([line], tmp_path, name="jobs.jsonl")


def test_manifest_output_clash(tmp_path):
    with pytest.raises(UsageError, match="jobs.jsonl:2 and line 1 both write"):
        read_manifest(['{"subs": "a/x.srt"}', '{"subs": "b/x.srt"}'], tmp_path, name="jobs.jsonl")


def test_options_hash_is_stable_and_sensitive():
    assert options_hash("sync", {"a": 1, "b": 2}) == options_hash("sync", {"b": 2, "a": 1})
    assert options_hash("sync", {"a": 1}) != options_hash("sync", {"a": 2})
    assert options_hash("sync", {"a": 1}) != options_hash("export", {"a": 1})


def test_fingerprint_reuses_a_known_hash_only_for_an_unchanged_file(tmp_path):
    p = tmp_path / "a.srt"
    p.write_bytes(b"one")
    fp = fingerprint(p)
    fake = Fingerprint(fp.path, "0" * 64, fp.size, fp.mtime_ns, fp.inode)
    assert fingerprint(p, fake).sha256 == "0" * 64  # unchanged: not read again
    p.write_bytes(b"two")
    os.utime(p, ns=(fp.mtime_ns + 10**9, fp.mtime_ns + 10**9))
    again = fingerprint(p, fake)
    assert again.sha256 != fake.sha256 and again.sha256 != fp.sha256


def _record(key, status, fps, options="o1", output=None):
    return {"key": key, "status": status, "options": options, "inputs": [f.to_dict() for f in fps], "output": output}


def test_results_log_resumes(tmp_path):
    a = tmp_path / "a.srt"
    a.write_text("x")
    fps = [fingerprint(a)]
    out = tmp_path / "out.srt"
    out.write_text("y")
    with ResultsLog.open(tmp_path / "results.jsonl") as log:
        log.append(_record("a", "done", fps, output=str(out)))
        log.append(_record("b", "refused", fps))
        log.append(_record("c", "failed", fps))
    log = ResultsLog.open(tmp_path / "results.jsonl")
    assert log.finished("a", fps, "o1")
    assert not log.finished("a", fps, "o2")  # other options
    assert log.finished("b", fps, "o1")
    assert log.finished("c", fps, "o1") and not log.finished("c", fps, "o1", retry_failed=True)
    assert not log.finished("d", fps, "o1")
    a.write_text("changed")
    assert not log.finished("a", [fingerprint(a)], "o1")  # other input
    out.unlink()
    assert not log.finished("a", fps, "o1")  # its output is gone
    assert log.known_fingerprints()[str(a)] == fps[0]
    log.close()


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_a_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"key": "a", "status": "done"}\n{"key": "b", "sta')
    with ResultsLog.open(path) as log:
        assert [r["key"] for r in log.records] == ["a"] and log.torn == 1
        log.append({"key": "c", "status": "done"})
    with ResultsLog.open(path) as log:
        assert [r["key"] for r in log.records] == ["a", "c"] and log.torn == 1


def test_log_rejects_an_unknown_status(tmp_path):
    with ResultsLog.open(tmp_path / "r.jsonl") as log, pytest.raises(ValueError, match="status must be one of"):
        log.append({"key": "a", "status": "ok"})
