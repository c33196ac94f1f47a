"""ExportOptions: checks worded without CLI flags, configurations earlier exports compare equal to,
the default feature sets, the deprecated keywords; and the package's shape."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from mmalign.errors import UsageError, as_flag
from mmalign.export import ExportOptions, config_hash
from mmalign.export import options as options_mod

PACKAGE = Path(__file__).resolve().parents[2] / "mmalign" / "export"

# The configuration of an export made before the options were renamed and added to
# (main at 4ed2bd1: export --sync --audio-features logmel --video-features hist,luma,motion
# --text-features embedding): its dataset.json, config and config_hash as written then.
OLD_CONFIG = {
    "grid": "cues",
    "hop": None,
    "window": None,
    "stride": None,
    "pool": "mean",
    "fuse": "none",
    "dim": None,
    "seed": 0,
    "sync": True,
    "audio": ["logmel"],
    "video": ["hist", "luma", "motion"],
    "text": ["embedding"],
    "sr": 16000,
    "audio_hop": 0.01,
    "n_mels": 64,
    "fps": 5.0,
    "text_hop": 0.1,
    "text_dim": 128,
}
OLD_HASH = "023a5776dcd52029"


def old_options(**changes):
    base = {
        "sync": True,
        "audio_features": ("logmel",),
        "video_features": ("hist", "luma", "motion"),
        "text_features": ("embedding",),
    }
    return ExportOptions(**{**base, **changes})


def test_an_earlier_export_compares_equal_with_the_new_options_at_their_defaults():
    assert config_hash(OLD_CONFIG) == OLD_HASH
    opts = old_options(video_stream=None, width=320, embed=None)
    assert opts.to_dict() == OLD_CONFIG and config_hash(opts.to_dict()) == OLD_HASH
    # the new options, set, are recorded and make it another export
    for change in ({"width": 160}, {"video_stream": 1}, {"embed": "model.pt"}):
        config = old_options(**change).to_dict()
        assert config == {**OLD_CONFIG, **change} and config_hash(config) != OLD_HASH
    # the renamed ones keep their stored names
    assert ExportOptions(grid="frames", grid_hop=0.5).to_dict()["hop"] == 0.5


def test_pairs_and_masks_are_in_the_config_only_when_used():
    plain = old_options(pairs="none", mask=())
    assert plain.to_dict() == OLD_CONFIG and plain.format_version == 1
    pairs = old_options(pairs="matching").to_dict()
    assert {k: pairs[k] for k in ("pairs", "negatives", "hard_negatives", "swap", "min_gap")} == {
        "pairs": "matching",
        "negatives": 1,
        "hard_negatives": "none",
        "swap": "text",
        "min_gap": 5.0,
    }
    masked = old_options(pool="none", mask=("audio:0.15", "text:0.150:1"))
    assert masked.to_dict()["mask"] == ["audio:0.15:10", "text:0.15:1"] and masked.format_version == 2
    assert old_options(pairs="matching").format_version == 2


def test_old_keywords_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="pass grid_hop="):
        opts = ExportOptions(grid="frames", hop=0.5)
    assert opts.grid_hop == 0.5
    with pytest.warns(DeprecationWarning, match="pass audio_features="):
        assert ExportOptions(audio=("rms",)).audio_features == ("rms",)
    with pytest.raises(TypeError, match="got both hop= and grid_hop="):
        ExportOptions(hop=0.5, grid_hop=0.5)


def test_default_feature_sets_are_extract_alls():
    """export and extract all default to the same features (export leaves out text.cues, a
    per-cue table of cue times: not a sequence to pool onto frames or windows)."""
    from mmalign.source import extract_all

    defaults = inspect.signature(extract_all).parameters
    opts = ExportOptions()
    assert ",".join(opts.audio_features) == defaults["audio_features"].default
    assert ",".join(opts.video_features) == defaults["video_features"].default
    assert ",".join(opts.text_features + ("cues",)) == defaults["text_features"].default


def test_cli_defaults_are_the_librarys():
    from mmalign.cli.export import export

    params = inspect.signature(export).parameters
    opts = ExportOptions()
    for name in ("audio_features", "video_features", "text_features"):
        assert params[name].default == ",".join(getattr(opts, name))
    for name in ("grid", "grid_hop", "window", "stride", "pool", "fuse", "dim", "seed", "sr", "audio_hop", "n_mels"):
        assert params[name].default == getattr(opts, name), name
    for name in ("fps", "text_hop", "text_dim", "video_stream", "width", "embed"):
        assert params[name].default == getattr(opts, name), name
    for name in ("pairs", "negatives", "hard_negatives", "swap", "min_gap"):
        assert params[name].default == getattr(opts, name), name
    assert params["mask"].default is None and opts.mask == ()


@pytest.mark.parametrize(
    "options, library, cli",
    [
        ({"grid": "frames"}, "grid frames needs grid_hop SECONDS", "--grid frames needs --grid-hop SECONDS"),
        ({"grid": "windows", "window": 1.0}, "grid windows needs window SECONDS and stride", "--stride SECONDS"),
        ({"fuse": "concat", "pool": "none"}, "fuse concat fuses pooled vectors: choose a pool", "a --pool other"),
        ({"fuse": "sum"}, "fuse sum needs dim", "--fuse sum needs --dim"),
        ({"dim": 8}, "dim is for fuse sum and compact-bilinear, not none", "--dim is for --fuse sum"),
        ({"fuse": "bilinear"}, "choose two with audio_features, video_features, text_features", "--text-features"),
        (
            {
                "fuse": "compact-bilinear",
                "dim": 8,
                "audio_features": ("rms",),
                "video_features": (),
                "text_features": (),
            },
            "fuse compact-bilinear needs at least two features, got audio.rms",
            "--fuse compact-bilinear",
        ),
        ({"embed": "m.pt", "video_features": ()}, "embed adds to the video features", "--embed adds"),
        ({"pairs": "all"}, "unknown pairs 'all'; choose one of none, matching", "unknown --pairs"),
        ({"negatives": 3}, "negatives is for pairs matching", "--negatives is for --pairs matching"),
        ({"min_gap": 1.0}, "min_gap is for pairs matching", "--min-gap is for --pairs matching"),
        ({"pairs": "matching", "grid": "windows", "window": 1.0, "stride": 1.0}, "it needs grid cues", "--grid cues"),
        ({"pairs": "matching", "fuse": "concat"}, "choose fuse none", "choose --fuse none"),
        ({"pairs": "matching", "negatives": 0}, "negatives must be a whole number", "--negatives must"),
        ({"pairs": "matching", "hard_negatives": "x"}, "unknown hard_negatives 'x'", "unknown --hard-negatives"),
        ({"pairs": "matching", "swap": "x"}, "unknown swap 'x'; choose one of text, media", "unknown --swap"),
        (
            {"pairs": "matching", "swap": "media", "audio_features": (), "video_features": ()},
            "swap media swaps the audio and video features, and none is exported",
            "--swap media",
        ),
        ({"mask": ("audio:0.1",)}, "mask hides frames of frame sequences: it needs pool none", "--pool none"),
        ({"mask": ("audio:2",), "pool": "none"}, "mask 'audio:2': the rate must lie between 0 and 1", "--mask 'a"),
        ({"mask": ("audio:0.1", "audio:0.2"), "pool": "none"}, "mask names audio twice", "--mask names"),
        ({"mask": ("text:0.1",), "pool": "none", "text_features": ()}, "no text feature is exported", "--mask text"),
    ],
)
def test_checks_name_parameters_not_flags(options, library, cli):
    with pytest.raises(UsageError) as info:
        ExportOptions(**options).check()
    assert library in str(info.value) and "--" not in str(info.value)
    assert cli in info.value.worded(as_flag)


def test_no_message_in_the_package_names_a_cli_flag():
    """Every string in mmalign/export: no ``--flag`` (messages name parameters as ``{name}``)."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert not re.search(r"--[a-z]", node.value), f"{path.name}:{node.lineno}: {node.value!r}"


def test_no_module_of_the_package_imports_private_names_or_the_package_itself():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                assert not private, f"{path.name} imports {private} from {node.module}"
                if path.name != "__init__.py":  # modules import each other, never the package (no cycle)
                    assert not (node.level == 1 and node.module is None), path.name


def test_public_names_are_re_exported():
    import mmalign.export as export

    for name in export.__all__:
        assert hasattr(export, name), name
    assert set(options_mod.__all__) - {"AUDIO_FEATURES", "VIDEO_FEATURES", "TEXT_FEATURES"} <= set(export.__all__)
