"""The CLI package's shape: light to import, one module per command group, no library logic.

And the library seams the CLI now calls: ``SyncResult.require``, ``mmalign.source``,
``mmalign.align.sequences``.
"""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmalign.align import sequences
from mmalign.errors import InputError, NotConfidentError, UsageError
from mmalign.timeline import FeatureSeq

CLI = Path(__file__).resolve().parents[2] / "mmalign" / "cli"
HEAVY = ("torch", "cv2", "librosa", "matplotlib")


def test_import_cli_imports_no_heavy_module():
    code = (
        f"import sys, mmalign.cli; heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
        "assert not heavy, f'imported {heavy}'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_command_is_registered_from_its_module():
    from mmalign.cli import app

    commands = {c.callback.__name__: c.callback.__module__ for c in app.registered_commands}
    assert commands == {"sync": "mmalign.cli.sync", "export": "mmalign.cli.export", "align": "mmalign.cli.align"}
    groups = {g.name: g.typer_instance for g in app.registered_groups}
    assert set(groups) == {"extract", "batch", "train"}
    sub = {c.callback.__name__: c.callback.__module__ for c in groups["extract"].registered_commands}
    assert set(sub) == {"extract_audio", "extract_video", "extract_subs", "extract_all"}
    assert set(sub.values()) == {"mmalign.cli.extract"}
    sub = {c.callback.__name__: c.callback.__module__ for c in groups["batch"].registered_commands}
    assert sub == {
        "batch_sync": "mmalign.cli.batch",
        "batch_extract": "mmalign.cli.batch",
        "batch_export": "mmalign.cli.batch",
    }
    sub = {c.callback.__name__: c.callback.__module__ for c in groups["train"].registered_commands}
    assert sub == {
        "train_make_data": "mmalign.cli.train",
        "train_aligner": "mmalign.cli.train",
        "train_clip": "mmalign.cli.train",
    }


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


@pytest.mark.parametrize("module", ["sync", "extract", "align", "export", "batch", "train"])
def test_command_bodies_are_short(module):
    """A command body parses, calls the library and prints: under ~40 lines, signature and docstring aside.

    Lines are counted as the formatter-independent lines that start a statement: a call
    whose arguments ruff format puts one per line is still one line.
    """
    from mmalign.cli import app

    names = {c.callback.__name__ for c in app.registered_commands}
    names |= {c.callback.__name__ for g in app.registered_groups for c in g.typer_instance.registered_commands}
    bodies = [f for f in _functions(CLI / f"{module}.py") if f.name in names]
    assert bodies
    for f in bodies:
        body = f.body[1:] if isinstance(f.body[0], ast.Expr) else f.body  # after the docstring
        lines = {node.lineno for stmt in body for node in ast.walk(stmt) if isinstance(node, ast.stmt)}
        assert len(lines) <= 40, f"{module}.{f.name}: {len(lines)} lines"


def test_no_module_imports_private_names_of_another():
    """The CLI modules share only through cli._common; the library gives them public names."""
    for path in CLI.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module not in ("_common", None) and node.level > 0:
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"


# ---------------------------------------------------------------- SyncResult.require


def _result(confidence):
    from mmalign.align.sync import sync
    from mmalign.subtitles import Cue, Subtitles

    cues = [Cue(10.0 + 3 * i, 11.5 + 3 * i, f"line {i}") for i in range(30)]
    ref = Subtitles(cues=cues, format="srt")
    result = sync(ref, Subtitles(cues=[Cue(c.start + 2.0, c.end + 2.0, c.text) for c in cues], format="srt"))
    result.confidence = confidence
    return result


def test_require_passes_a_confident_result_through():
    result = _result(0.9)
    assert result.require(0.5) is result


def test_require_refuses_with_the_doubt_and_no_cli_flag():
    result = _result(0.3)
    with pytest.raises(NotConfidentError) as info:
        result.require(0.5)
    message = str(info.value)
    assert message.startswith("not confident in the result (confidence 0.30 < 0.5): ")
    assert result.doubt() in message and message.endswith("check that the subtitles belong to this media")
    assert "--" not in message
    assert info.value.result is result and info.value.exit_code == 4


# ---------------------------------------------------------------- mmalign.source


def test_kind_of():
    from mmalign.source import kind_of

    assert [kind_of(p) for p in ("a.safetensors", "b.NPZ", "c.srt", "d.vtt", "e.mkv", "f.wav")] == [
        "features",
        "features",
        "subtitles",
        "subtitles",
        "media",
        "media",
    ]


def test_feature_names_parses_and_refuses():
    from mmalign.source import feature_names

    assert feature_names(" mfcc,logmel ,mfcc", ("logmel", "mfcc"), "audio feature") == ("mfcc", "logmel")
    assert feature_names(("logmel",), ("logmel", "mfcc"), "audio feature") == ("logmel",)
    with pytest.raises(UsageError, match="unknown audio feature pitch; choose from logmel, mfcc"):
        feature_names("pitch", ("logmel", "mfcc"), "audio feature")
    with pytest.raises(UsageError, match=r"unknown audio feature \(none given\)"):
        feature_names(" , ", ("logmel",), "audio feature")


def test_alignment_inputs_names_the_missing_file(tmp_path):
    from mmalign.source import alignment_inputs

    with pytest.raises(InputError, match="nothing.srt: input file not found"):
        alignment_inputs(tmp_path / "nothing.srt", tmp_path / "nothing.wav")


def test_feature_choice_message_is_worded_by_the_caller(tmp_path):
    from mmalign.errors import as_flag
    from mmalign.features.io import save_features
    from mmalign.source import FeatureChoiceError, sequence_of

    seqs = {n: FeatureSeq(np.zeros((5, 2), np.float32), 0.1, name=n) for n in ("audio.mfcc", "audio.rms")}
    path = tmp_path / "a.safetensors"
    save_features(path, seqs)
    with pytest.raises(FeatureChoiceError) as info:
        sequence_of(path, None, "features")
    assert "--" not in str(info.value)
    assert str(info.value) == f"{path} holds audio.mfcc, audio.rms: choose one with feature"
    assert info.value.worded(as_flag) == f"{path} holds audio.mfcc, audio.rms: choose one with --feature"


def test_error_names_only_its_listed_parameters_as_flags():
    from mmalign.errors import UsageError, as_flag

    exc = UsageError("{a{max_offset}b}.srt: nothing within {max_offset}", names=["max_offset"])
    assert str(exc) == "{amax_offsetb}.srt: nothing within max_offset"
    assert exc.worded(as_flag) == "{a--max-offsetb}.srt: nothing within --max-offset"
    assert str(UsageError("{x}.srt: {y}")) == "{x}.srt: {y}"


# ---------------------------------------------------------------- mmalign.align.sequences


def _seq(values, hop=0.1, name="x"):
    return FeatureSeq(np.asarray(values, np.float32).reshape(len(values), -1), hop, name=name)


def test_align_sequences_finds_a_shift():
    x = np.sin(np.linspace(0, 12, 120))
    a, b = _seq(x[10:], name="a"), _seq(x, name="b")
    found = sequences.align_sequences(a, b, subsequence=True)
    assert not found.multiscale and not found.guided and found.result.exact
    assert float(found.timemap.apply(0.0)) == pytest.approx(1.0, abs=0.11)


def test_align_sequences_checks_its_options():
    a, b = _seq([0.0, 1.0], name="a"), _seq(np.zeros((2, 2)), name="b")
    with pytest.raises(UsageError, match="a has 1 columns but b has 2"):
        sequences.align_sequences(a, b)
    with pytest.raises(UsageError, match="unknown metric 'manhattan'"):
        sequences.align_sequences(a, a, metric="manhattan")
    with pytest.raises(UsageError, match="band applies to exact DTW") as info:
        sequences.align_sequences(a, a, band=1.0, multiscale=True)
    assert "--" not in str(info.value)


def test_subtitle_guide_only_for_subtitles_and_default_options():
    a = _seq([0.0, 1.0, 0.0])
    assert sequences.subtitle_guide(a, a) == (None, None)
    assert not sequences.subtitle_guide(a, a).ambiguous


def test_detector_choices_are_the_library_detectors():
    """``--detector`` is a plain Enum (so type checkers see its members): it must list
    exactly the library's DETECTORS, in order."""
    from mmalign.align.sync import DETECTORS
    from mmalign.cli.sync import Detector

    assert [d.value for d in Detector] == list(DETECTORS)


def test_sync_aligner_choices_are_the_library_ones():
    from mmalign.align.sync import SYNC_ALIGNERS
    from mmalign.cli.sync import SyncAligner

    assert [a.value for a in SyncAligner] == list(SYNC_ALIGNERS)


def test_format_choices_are_the_library_formats():
    """``sync --format`` lists exactly the subtitle formats the library reads and writes."""
    from mmalign.cli.sync import SubFormat
    from mmalign.subtitles import SUPPORTED_FORMATS

    assert [f.value for f in SubFormat] == list(SUPPORTED_FORMATS)


def test_split_choices_are_the_library_splits():
    """``align --split`` lists exactly the ways :func:`mmalign.align.transcript.read_transcript` splits."""
    from mmalign.align.transcript import SPLITS
    from mmalign.cli.align import Split

    assert [s.value for s in Split] == list(SPLITS)


def test_aligner_choices_are_the_library_aligners():
    """``align --aligner`` lists exactly the aligners :func:`mmalign.align.transcript.align_transcript` takes."""
    from mmalign.align.transcript import ALIGNERS
    from mmalign.cli.align import Aligner

    assert [a.value for a in Aligner] == list(ALIGNERS)
