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


# ---------------------------------------------------------------- run_jobs


def _copy_upper(job, options):
    """A job's work for the tests: the subtitles upper-cased into the output; 'bad' fails,
    'unsure' is refused."""
    from mmalign.errors import NotConfidentError
    from mmalign.fileio import atomic_write

    text = job.subs.read_text()
    if "bad" in text:
        raise InputError(f"{job.subs}: bad cue")
    if "unsure" in text:
        raise NotConfidentError(f"{job.subs}: not confident (0.20)")
    job.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(job.out, text.upper().encode() + options["suffix"].encode())
    return {"output": str(job.out), "cues": len(text)}


def _tree(tmp_path):
    src = tmp_path / "src"
    for name, text in [("a", "one"), ("b", "bad"), ("c", "unsure"), ("sub/d", "four")]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / f"{name}.mkv").write_bytes(b"media")
        (src / f"{name}.srt").write_text(text)
    (src / "e.srt").write_text("no media")
    return src


def _batch(src, out, **kw):
    from mmalign.batch import run_jobs

    jobs, unpaired = find_jobs([src], out)
    with ResultsLog.open(out / "results.jsonl") as log:
        return list(run_jobs(jobs, _copy_upper, {"suffix": "!"}, command="t", log=log, unpaired=unpaired, **kw))


def test_run_jobs_records_every_job_and_resumes(tmp_path):
    from mmalign.batch import worst_exit_code

    src, out = _tree(tmp_path), tmp_path / "out"
    first = {r["key"]: r for r in _batch(src, out, jobs=2)}
    assert {k: r["status"] for k, r in first.items()} == {
        str(src / "e.srt"): "skipped",
        "a.srt": "done",
        "b.srt": "failed",
        "c.srt": "refused",
        "sub/d.srt": "done",
    }
    assert (out / "sub/d.srt").read_text() == "FOUR!"
    assert first["b.srt"]["error"].endswith("b.srt: bad cue") and first["b.srt"]["exit_code"] == 3
    assert first["a.srt"]["inputs"][0]["sha256"] and first["a.srt"]["cues"] == 3
    assert worst_exit_code(r["exit_code"] for r in first.values()) == 3

    again = _batch(src, out)
    assert all(r["status"] == "skipped" for r in again)  # nothing redone, failures included
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5  # re-running appended nothing

    (src / "b.srt").write_text("fixed")
    redo = {r["key"]: r["status"] for r in _batch(src, out) if not r.get("resumed")}
    assert redo == {str(src / "e.srt"): "skipped", "b.srt": "done"}  # changed input: redone
    retry = {r["key"]: r["status"] for r in _batch(src, out, retry_failed=True) if not r.get("resumed")}
    assert retry == {str(src / "e.srt"): "skipped"}
    forced = [r for r in _batch(src, out, force=True) if not r.get("resumed")]
    assert len(forced) == 5


def test_a_killed_run_is_finished_by_the_next(tmp_path):
    src, out = _tree(tmp_path), tmp_path / "out"
    _batch(src, out)
    log_path = out / "results.jsonl"
    lines = log_path.read_bytes().splitlines(keepends=True)
    # as if killed while 'sub/d' ran and while writing the record of 'c': torn last line
    kept = [ln for ln in lines if b'"sub/d.srt"' not in ln and b'"c.srt"' not in ln]
    log_path.write_bytes(b"".join(kept) + b'{"key":"c.srt","sta')
    (out / "sub/d.srt").unlink()
    redo = [r for r in _batch(src, out) if not r.get("resumed")]
    assert sorted(r["key"] for r in redo if r["status"] != "skipped") == ["c.srt", "sub/d.srt"]
    with ResultsLog.open(log_path) as log:
        keys = [r["key"] for r in log.records]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 5  # no duplicates, none missing


# ---------------------------------------------------------------- a job per media (batch extract)


def test_one_job_per_media_with_all_its_subtitles(tmp_path):
    src = tmp_path / "src"
    _touch(src, "film.mkv", "film.en.srt", "film.fr.ass", "film.en.vtt", "season 1/ep.mp4", "season 1/ep.srt")
    _touch(src, "lonely.wav", "orphan.de.srt")
    jobs, unpaired = find_jobs([src], tmp_path / "out", need="media", per_media=True, out_name=lambda p: p.stem)
    got = {j.key: [(p.name, t) for p, t in j.subtitles] for j in jobs}
    assert got == {
        "film": [("film.en.srt", ("en",)), ("film.fr.ass", ("fr",))],
        "lonely": [],
        "season 1/ep": [("ep.srt", ())],
    }
    film = next(j for j in jobs if j.key == "film")
    assert film.inputs == (src / "film.mkv", src / "film.en.srt", src / "film.fr.ass")
    assert film.out == tmp_path / "out" / "film"
    reasons = {u.path.name: u.reason for u in unpaired}
    assert set(reasons) == {"film.en.vtt", "orphan.de.srt"}
    assert reasons["film.en.vtt"].startswith("film.en.srt has the same tags for film.mkv")
    with pytest.raises(UsageError, match="per_media needs need='media'"):
        find_jobs([src], tmp_path / "out", per_media=True)


def test_manifest_lines_of_one_media_are_one_job(tmp_path):
    lines = [
        json.dumps({"media": "a/film.mkv", "subs": "a/film.en.srt"}),
        json.dumps({"media": "a/film.mkv", "subs": "b/other.srt"}),
        json.dumps({"media": "c/talk.wav"}),
    ]
    jobs = read_manifest(lines, tmp_path, per_media=True, out_name=lambda p: p.stem)
    assert [(j.key, [(str(p), t) for p, t in j.subtitles]) for j in jobs] == [
        ("film", [("a/film.en.srt", ("en",)), ("b/other.srt", ())]),
        ("talk", []),
    ]
    with pytest.raises(UsageError, match=r"jobs.jsonl:2: b/film.en.vtt and a/film.en.srt have the same tags"):
        read_manifest(
            [lines[0], json.dumps({"media": "a/film.mkv", "subs": "b/film.en.vtt"})],
            tmp_path,
            name="jobs.jsonl",
            per_media=True,
        )
    with pytest.raises(InputError, match=r"manifest:1: needs 'media'"):
        read_manifest([json.dumps({"subs": "x.srt"})], tmp_path, per_media=True)
    with pytest.raises(UsageError, match=r"manifest:2 and line 1 both write"):
        read_manifest([lines[0], json.dumps({"media": "b/film.mkv"})], tmp_path, per_media=True)


def test_a_done_job_whose_outputs_are_gone_runs_again(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    fp = fingerprint(tmp_path / "a.bin")
    with ResultsLog.open(tmp_path / "results.jsonl") as log:
        log.append(
            {"key": "k", "status": "done", "options": "o", "inputs": [fp.to_dict()], "outputs": [str(a), str(b)]}
        )
        assert log.finished("k", [fp], "o")
        b.unlink()
        assert not log.finished("k", [fp], "o")
