"""Pictures of what an alignment did (matplotlib, imported only here and only when asked).

``mmalign sync --plot FILE.png`` draws, on the reference's time axis, the reference's
speech activity, the cues as given and as re-timed (coloured by confidence), and the
pieces of the map with their offsets, so a user can see why a result is what it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import UsageError

__all__ = ["plot_sync"]


def require_matplotlib() -> None:
    """Raise :class:`UsageError` when matplotlib is not installed (checked before any work)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("{plot} needs matplotlib: pip install 'mmalign[plot]'", names=["plot"])


def _pyplot():
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_sync(result, path, *, width: float = 16.0, dpi: int = 100) -> Path:
    """Draw a :class:`~mmalign.align.sync.SyncResult` to an image file.

    Parameters
    ----------
    result : SyncResult
        What :func:`mmalign.align.sync.sync` returned.
    path : str or os.PathLike
        Where to write; the format follows the extension (``.png``, ``.svg``, ``.pdf``).
        Written atomically.
    width : float
        Figure width in inches.
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    Path
    """
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in {"png", "svg", "pdf", "jpg", "jpeg"}:
        raise UsageError(f"{path}: a plot is written as .png, .svg, .pdf or .jpg, not .{ext or '(none)'}")
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    act = result.activity
    times = act.times
    before, after = result.original, result.subtitles
    conf = np.asarray(result.cue_confidences, float)
    speech = result.spoken
    sounds = f" ({int((~speech).sum())} sound or music, hatched)" if not speech.all() else ""

    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(width, 5.5), height_ratios=[2, 1.6, 1], layout="constrained")
    ax = axes[0]
    label = (
        "reference cues"
        if result.reference_kind != "audio"
        else ("speech probability\n(fast + Silero)" if result.detector == "fast+silero" else "speech probability")
    )
    values = act.values[:, 0]
    k = max(1, len(values) // int(width * dpi * 2))  # about two points per pixel: peaks kept
    if k > 1:
        n = len(values) // k * k
        times, values = times[:n].reshape(-1, k).mean(axis=1), values[:n].reshape(-1, k).max(axis=1)
    ax.fill_between(times, values, step="mid", color="#4c72b0", alpha=0.6, linewidth=0, rasterized=True)
    for cue in after.cues:  # where the cues ended up, over the evidence
        ax.axvspan(cue.start, cue.end, ymin=0.0, ymax=0.08, color="#dd8452", alpha=0.9, linewidth=0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(label)
    ax.set_title(
        f"mmalign sync: {len(after.cues)} cues{sounds}, confidence {result.confidence:.2f}, "
        f"reference {os.path.basename(result.reference)}",
        loc="left",
        fontsize=10,
    )

    ax = axes[1]
    cmap = plt.get_cmap("RdYlGn")
    rows = [
        (1.0, before.cues, ["#888888"] * len(before.cues)),
        (0.0, after.cues, [cmap(float(c)) if np.isfinite(c) else "#888888" for c in conf]),
    ]
    for y, cues, colours in rows:
        for spoken, hatch in ((True, None), (False, "///")):  # sound descriptions and lyrics hatched
            pick = [i for i in range(len(cues)) if speech[i] == spoken]
            if pick:
                ax.broken_barh(
                    [(cues[i].start, max(cues[i].end - cues[i].start, 1e-3)) for i in pick],
                    (y - 0.35, 0.7),
                    facecolors=[colours[i] for i in pick],
                    edgecolor="none",
                    hatch=hatch,
                )
    # Lines joining each cue's old and new start show the moves.
    segs = [((o.start, 0.65), (n.start, 0.35)) for o, n in zip(before.cues, after.cues)]
    ax.add_collection(LineCollection(segs, colors="#555555", linewidths=0.4, alpha=0.5))
    ax.set_yticks([1.0, 0.0], ["as given", "re-timed"])
    ax.set_ylim(-0.6, 1.6)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=ax, pad=0.005, fraction=0.02, label="cue confidence")

    ax = axes[2]
    t_min = min([0.0] + [c.start for c in before.cues])
    t_max = max([act.duration + act.t0] + [c.end for c in before.cues] + [c.end for c in after.cues])
    x_min, x_max = min(t_min, 0.0), t_max
    for piece in result.timemap.pieces():
        a = t_min if piece["start"] is None else piece["start"]
        b = t_max if piece["end"] is None else piece["end"]
        lo, hi = sorted(result.timemap.apply(np.array([a, b])))  # the piece on the reference axis
        lo, hi = max(lo, x_min), min(hi, x_max)  # the part in view: the label goes in its middle
        if hi < lo:
            continue
        c = piece["confidence"]
        colour = cmap(float(c)) if c is not None else "#888888"
        ax.axvspan(lo, max(hi, lo + 1e-3), color=colour, alpha=0.5, linewidth=0)
        text = "hold" if piece["scale"] == 0 else f"{piece['offset']:+.2f} s"
        if piece["scale"] not in (0, 1):
            text += f"\nx{piece['scale']:.5f}"
        ax.text((lo + hi) / 2, 0.5, text, ha="center", va="center", fontsize=8)
    ax.set_yticks([])
    ax.set_ylabel("pieces")
    ax.set_xlabel("reference time (s)")
    ax.set_xlim(x_min, x_max)

    from .fileio import atomic_file

    try:
        with atomic_file(path) as fh:
            fig.savefig(fh, dpi=dpi, format="jpeg" if ext == "jpg" else ext)
    finally:
        plt.close(fig)
    return path
