"""One vocabulary (docs/GLOSSARY.md): the library names no CLI flag, and renamed keywords
keep their old name for one release."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from mmalign import parallel, source
from mmalign.align import sequences
from mmalign.align import sync as sync_mod
from mmalign.features import audio, vad, video

PACKAGE = Path(__file__).resolve().parents[1] / "mmalign"
# export is being turned into a package in parallel work: it still names its flags
NOT_LIBRARY = ("cli/", "export.py", "export/")
FLAG = re.compile(r"(?<![-\w])--[a-z]")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_library_strings_name_no_cli_flag():
    """Messages name a parameter as ``{name}`` (mmalign.errors); docstrings may describe the CLI."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(NOT_LIBRARY):
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if FLAG.search(node.value):
                    offenders.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_sees_f_string_parts():
    tree = ast.parse('raise UsageError(f"{x}: --plot writes files")')
    parts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert any(FLAG.search(p) for p in parts)


RENAMED = [
    (parallel.parallel_map, {"workers": "jobs"}),
    (parallel.process_pool, {"workers": "jobs"}),
    (audio.logmel, {"stream": "audio_stream", "workers": "jobs"}),
    (audio.speech_features, {"stream": "audio_stream", "workers": "jobs"}),
    (audio.audio_features, {"stream": "audio_stream", "workers": "jobs"}),
    (audio.probe_audio, {"stream": "audio_stream"}),
    (vad.neural_activity, {"stream": "audio_stream", "workers": "jobs"}),
    (video.extract, {"stream": "video_stream"}),
    (video.embed, {"stream": "video_stream"}),
    (source.audio_sequences, {"stream": "audio_stream", "workers": "jobs"}),
    (source.video_sequences, {"stream": "video_stream"}),
    (source.extract_all, {"hop": "audio_hop", "workers": "jobs"}),
    (source.sequence_of, {"workers": "jobs"}),
    (source.alignment_inputs, {"workers": "jobs"}),
    (sync_mod.sync, {"workers": "jobs"}),
    (sync_mod.reference_activity, {"workers": "jobs"}),
    (sequences.align_sequences, {"workers": "jobs"}),
]


@pytest.mark.parametrize("func, renames", RENAMED, ids=[f.__qualname__ for f, _ in RENAMED])
def test_renamed_keywords_are_wired(func, renames):
    """The new name is the parameter; the old one is still taken (both at once is refused before any work)."""
    params = inspect.signature(inspect.unwrap(func)).parameters
    for old, new in renames.items():
        assert new in params and old not in params
        with pytest.raises(TypeError, match=f"both {old}= and {new}="):
            func(None, **{old: 1, new: 1})


def test_old_keyword_reaches_the_new_one(tmp_path):
    subs = tmp_path / "a.srt"
    subs.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello.\n")
    with pytest.warns(DeprecationWarning, match=r"sequence_of\(workers=\.\.\.\).*pass jobs="):
        seq, read = source.sequence_of(subs, None, "media", hop=0.1, workers=2)
    assert seq.name == "text.activity" and read is not None and len(read.cues) == 1
