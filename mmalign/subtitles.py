"""The subtitle model of mmalign: read and write WebVTT, SRT, ASS/SSA and YouTube SBV.

One model serves every format: a :class:`Subtitles` holds :class:`Cue` objects
(float seconds, the cue text as written in the file) plus everything else the
file held, verbatim, so that reading and writing a file in the same format with
unchanged times reproduces it.

Every file is parsed once: WebVTT, SRT and ASS/SSA by the tolerant block readers
here, YouTube SBV (``.sbv``) by webvtt-py, one cue block at a time (so that a block
it cannot read is counted and named by its line, as in the other formats).

Round trip
----------
A well-formed file written back in its own format with unchanged times is
byte-for-byte identical, up to these normalisations:

- timestamps are written in the canonical form of the format
  (VTT ``HH:MM:SS.mmm``, SRT ``HH:MM:SS,mmm``, ASS ``H:MM:SS.cc``,
  SBV ``H:MM:SS.mmm,H:MM:SS.mmm``);
- blocks are separated by exactly one blank line (VTT, SRT, SBV) and the file ends
  with one line feed;
- line endings are those of the source (``\\r\\n`` or ``\\n``, see
  :attr:`Subtitles.newline`); the encoding is UTF-8 unless ``encoding=`` is
  given (pass ``encoding=subs.encoding`` to keep the source's, BOM included).

Verbatim, format-specific text lives in three places:

- :attr:`Subtitles.header`: VTT: the ``WEBVTT`` line, header text and every
  block before the first cue (``NOTE``, ``STYLE``, ``REGION``); ASS/SSA: all
  sections before ``[Events]``, the ``[Events]`` line and its ``Format:`` line.
- :attr:`Cue.notes_before`: text written right before a cue: VTT ``NOTE``
  (or late ``STYLE``/``REGION``) blocks between two cues, each followed by a
  blank line; ASS/SSA: non-event lines inside ``[Events]`` (``;`` comments) and
  ``Comment:`` events.  A Comment event is never shown, so it is not a cue: it is
  not counted, not re-timed, and written back verbatim in ASS/SSA (dropped in
  other formats).
- :attr:`Subtitles.footer`: text after the last cue (VTT trailing ``NOTE``
  blocks, ASS sections after ``[Events]`` such as ``[Fonts]``).

Writing any text
----------------
Cues made in code may hold any text; writing normalises it as follows, reading
gives the normalised cues back, and a second round trip changes nothing:

- times: to the format's precision (milliseconds; ASS/SSA centiseconds, where
  a time in whole milliseconds ending in 5 rounds up);
- line breaks ``\\r\\n`` and ``\\r`` become ``\\n``; other control characters
  (U+0000-U+001F but tab and line feed, U+007F) are dropped;
- VTT/SRT/SBV: blank or whitespace-only lines are dropped (a blank line ends a
  cue); ``->``, which would make the line a timing line, is written ``-&gt;``
  in VTT (the same text once entities are resolved) and ``- >`` in SRT;
- ASS/SSA: a line feed is written as the ``\\N`` line break;
- everything else, leading and trailing spaces and markup included, is kept.

Malformed input is read as well as possible; a block that cannot be read is
counted in :attr:`Subtitles.skipped` and described in :attr:`Subtitles.warnings`
(with its line number), never dropped silently.
"""

from __future__ import annotations

import codecs
import html
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .errors import InputError, UsageError
from .fileio import Pathlike, atomic_write

if TYPE_CHECKING:
    from .timeline import TimeMap

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # annotations only: numpy.typing costs start-up time
    import numpy.typing as npt

__all__ = [
    "Cue",
    "Subtitles",
    "read",
    "loads",
    "detect_encoding",
    "SUPPORTED_FORMATS",
]

SUPPORTED_FORMATS = ("vtt", "srt", "ass", "ssa", "sbv")
_ASS = ("ass", "ssa")

# ---------------------------------------------------------------- data model


@dataclass(slots=True)
class Cue:
    """One subtitle cue.

    Parameters
    ----------
    start, end : float
        Display interval in seconds.
    text : str
        Cue payload as written in the file: VTT/SRT lines joined by ``"\\n"``
        (tags such as ``<i>`` or ``<v Roger>`` kept); ASS/SSA the raw ``Text``
        field (override blocks ``{\\...}`` and ``\\N`` kept).
    identifier : str or None
        VTT cue identifier or SRT index, as read (SBV has none).
    settings : str
        VTT cue settings (``"align:start position:10%"``) or SRT coordinates
        following the end time, verbatim.
    fields : dict or None
        ASS/SSA event fields other than Start, End and Text, in file order.
    kind : str
        ASS/SSA event type as written (``"Dialogue"``); files read never give
        ``"Comment"`` cues (Comment events are kept verbatim in :attr:`notes_before`),
        but one built by hand is written as a Comment event and never counts as shown.
    notes_before : str
        Verbatim non-cue text written right before this cue (see module doc).
    """

    start: float
    end: float
    text: str
    identifier: str | None = None
    settings: str = ""
    fields: dict[str, str] | None = None
    kind: str = "Dialogue"
    notes_before: str = ""


@dataclass
class Subtitles:
    """A subtitle file: cues plus everything needed to write it back.

    Parameters
    ----------
    cues : list of Cue
        In file order (not re-sorted).
    format : {"vtt", "srt", "ass", "ssa", "sbv"}
        Format of the source.
    encoding : str
        Python codec of the source (``"utf-8"``, ``"utf-8-sig"``, ``"utf-16"``,
        ``"cp1252"``, ...).
    header, footer : str
        Verbatim format-specific text before the first and after the last cue.
    skipped : int
        Number of malformed blocks that could not be read.
    warnings : list of str
        One line per skipped block or oddity (overlaps, zero-length cues).
    newline : {"\\n", "\\r\\n"}
        Line ending of the source, used by :meth:`write`.

    Examples
    --------
    >>> subs = Subtitles.read("movie.srt")                   # doctest: +SKIP
    >>> subs.map_times(lambda t: t + 1.5).write("out.vtt")   # doctest: +SKIP
    """

    cues: list[Cue]
    format: str
    encoding: str = "utf-8"
    header: str = ""
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    footer: str = ""
    newline: str = "\n"

    def __post_init__(self) -> None:
        self.format = _check_format(self.format)

    @property
    def starts(self) -> np.ndarray:
        """Start times in seconds, float64 array of shape ``(len(cues),)``."""
        return np.array([c.start for c in self.cues], dtype=np.float64)

    @property
    def ends(self) -> np.ndarray:
        """End times in seconds, float64 array of shape ``(len(cues),)``."""
        return np.array([c.end for c in self.cues], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.cues)

    def with_times(self, starts: npt.ArrayLike, ends: npt.ArrayLike) -> Subtitles:
        """Return a copy with new cue times.

        Parameters
        ----------
        starts, ends : array-like of float, shape ``(len(cues),)``
            New times in seconds; clamped to ``>= 0`` and ``end >= start``.

        Returns
        -------
        Subtitles
            A new object; ``self`` is not modified.
        """
        s = np.asarray(starts, dtype=np.float64).reshape(-1)
        e = np.asarray(ends, dtype=np.float64).reshape(-1)
        if s.shape != (len(self.cues),) or e.shape != s.shape:
            raise UsageError(f"expected {len(self.cues)} start and end times, got {s.size} and {e.size}")
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(e))):
            raise UsageError("cue times must be finite numbers")
        s = np.maximum(s, 0.0)
        e = np.maximum(e, s)
        cues = [replace(c, start=float(a), end=float(b)) for c, a, b in zip(self.cues, s, e)]
        return replace(self, cues=cues, warnings=list(self.warnings))

    def map_times(self, f: TimeMap | Callable[[np.ndarray], np.ndarray]) -> Subtitles:
        """Return a copy with every start and end time mapped through ``f``.

        Parameters
        ----------
        f : TimeMap or callable
            A :class:`~mmalign.timeline.TimeMap` (each cue is mapped as a span:
            its end with its start's piece, see ``TimeMap.apply_spans``), or a
            vectorised map from a float64 array of times (seconds) to new times,
            e.g. ``lambda t: 1.001 * t + 0.5``.

        Returns
        -------
        Subtitles
            Cue order kept; times clamped to ``>= 0`` and ``end >= start``.  ASS/SSA
            ``Comment`` events (kept verbatim, not cues) are re-timed with them.
        """
        from .timeline import TimeMap

        def spans(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if isinstance(f, TimeMap):
                return f.apply_spans(starts, ends)
            return f(starts), f(ends)

        out = self.with_times(*spans(self.starts, self.ends))
        return _retime_comments(out, spans) if self.format in _ASS else out

    def plain_texts(self) -> list[str]:
        """Cue texts without markup (tags, ASS override blocks), lines joined by ``"\\n"``."""
        return [_TAG.sub("", _to_simple(c.text, self.format)) for c in self.cues]

    def speech_mask(self) -> np.ndarray:
        """Which cues carry spoken words, as a bool array of shape ``(len(cues),)``.

        False for cues that only describe sound or music, as subtitles for the deaf and
        hard of hearing do: all their text is in brackets or parentheses
        (``[door slams]``, ``(laughs)``), on lines with music notes (``♪ lyrics ♪``),
        or a speaker label (``JOHN:``); for cues with no text; and for ASS/SSA
        ``Comment`` events, which are never shown.  ``- [gasps] - What?``,
        ``(whispering) Come here.`` and ``...`` carry speech.
        """
        return np.array(
            [c.kind != "Comment" and _is_spoken(t) for c, t in zip(self.cues, self.plain_texts())], dtype=bool
        )

    def to_string(self, format: str | None = None) -> str:
        """Render as text (``"\\n"`` line endings) in ``format`` (default: the source's).

        Converting between formats keeps times and text; markup is translated
        where the target has an equivalent (bold, italic, underline) and dropped
        otherwise; cue settings, notes, ASS styles and Comment events only
        survive within their own format family.
        """
        fmt = _check_format(format or self.format)
        return _WRITERS[fmt if fmt != "ssa" else "ass"](self, fmt)

    def write(self, path: Pathlike, *, format: str | None = None, encoding: str = "utf-8") -> None:
        """Write to ``path`` atomically (temporary file in the same folder, then rename).

        Parameters
        ----------
        path : str or Path
            Destination; its extension (``.vtt``, ``.srt``, ``.ass``, ``.ssa``, ``.sbv``)
            gives the format unless ``format`` is given (other extensions: the
            source's format).
        format : str, optional
            One of :data:`SUPPORTED_FORMATS`.
        encoding : str
            Codec of the output; UTF-8 without BOM by default.

        Raises
        ------
        UsageError
            Unknown format or encoding, or text the encoding cannot represent.
            Nothing is written then.
        """
        path = Path(path)
        ext = path.suffix.lower().lstrip(".")
        fmt = format or (ext if ext in SUPPORTED_FORMATS else self.format)
        atomic_write(path, self.encode(fmt, encoding, name=str(path)))

    def encode(self, format: str | None = None, encoding: str = "utf-8", *, name: str = "<output>") -> bytes:
        """The file's bytes: :meth:`to_string` in ``format``, with the source's line endings,
        encoded.

        Raises
        ------
        UsageError
            Unknown format or encoding, or text the encoding cannot represent (``name``
            says where it was going).
        """
        text = self.to_string(format).replace("\n", self.newline)
        try:
            return text.encode(encoding)
        except LookupError:
            raise UsageError(f"unknown encoding {encoding!r}") from None
        except UnicodeEncodeError as exc:
            raise UsageError(f"{name}: cannot encode subtitle text as {encoding} ({exc.reason})") from None

    read: ClassVar[Callable[..., Subtitles]]  # set below to ``staticmethod(read)``
    loads: ClassVar[Callable[..., Subtitles]]  # set below to ``staticmethod(loads)``


_COMMENT_LINE = re.compile(r"^(Comment\s*:\s?)(.*)$", re.M | re.I)


def _retime_comments(
    subs: Subtitles, spans: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> Subtitles:
    """Map the Start/End of the ASS/SSA ``Comment:`` lines kept verbatim (cue notes, footer).

    ``spans(starts, ends)`` maps float64 arrays of seconds.  A Comment line whose times
    cannot be read is left as it is.
    """
    found = re.search(r"^\s*\[Events\]\s*$(.*)", subs.header, re.M | re.I | re.S)
    fm = re.search(r"^\s*Format\s*:(.*)$", found[1] if found else "", re.M | re.I)
    names = [n.strip() for n in fm[1].split(",")] if fm else _ASS_FORMATS[subs.format]
    if "Start" not in names or "End" not in names:
        return subs
    i_start, i_end = names.index("Start"), names.index("End")
    events_end = _SECTION.search(subs.footer)  # only lines still inside [Events]
    chunks = [c.notes_before for c in subs.cues] + [subs.footer[: events_end.start() if events_end else None]]
    rows = []  # (chunk, match start, match end, fields, start, end)
    for n, chunk in enumerate(chunks):
        for m in _COMMENT_LINE.finditer(chunk):
            values = m[2].split(",", len(names) - 1)
            try:
                rows.append((n, m, values, _seconds(values[i_start]), _seconds(values[i_end])))
            except (ValueError, IndexError):
                continue
    if not rows:
        return subs
    starts, ends = spans(np.array([r[3] for r in rows]), np.array([r[4] for r in rows]))
    starts = np.maximum(np.nan_to_num(np.asarray(starts, np.float64)), 0.0)
    ends = np.maximum(np.nan_to_num(np.asarray(ends, np.float64)), starts)
    new = list(chunks)
    for (n, m, values, _, _), a, b in reversed(list(zip(rows, starts, ends))):  # back to front: offsets hold
        values[i_start], values[i_end] = _fmt_time(a, subs.format), _fmt_time(b, subs.format)
        new[n] = new[n][: m.start()] + m[1] + ",".join(values) + new[n][m.end() :]
    cues = [replace(c, notes_before=t) for c, t in zip(subs.cues, new)]
    footer = new[-1] + (subs.footer[events_end.start() :] if events_end else "")
    return replace(subs, cues=cues, footer=footer, warnings=list(subs.warnings))


def _check_format(fmt: str) -> str:
    f = str(fmt).lower().lstrip(".")
    if f not in SUPPORTED_FORMATS:
        raise UsageError(f"unknown subtitle format {fmt!r} (choose from {', '.join(SUPPORTED_FORMATS)})")
    return f


# ---------------------------------------------------------------- encodings

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# tie-break among legacy encodings that read the bytes equally well
_PREFERRED = (
    "cp1252",
    "cp1250",
    "cp1251",
    "cp1253",
    "cp1254",
    "cp1257",
    "iso8859-15",
    "latin-1",
    "koi8-r",
    "gb18030",
    "big5",
    "shift_jis",
    "euc-kr",
)


def _codec_name(name: str) -> str:
    canonical = codecs.lookup(name).name
    return "latin-1" if canonical == "iso8859-1" else canonical


def detect_encoding(data: bytes) -> str:
    """Guess the text encoding of subtitle file contents.

    Parameters
    ----------
    data : bytes
        Raw file contents.

    Returns
    -------
    str
        A Python codec name. In order of evidence: a byte-order mark
        (``"utf-8-sig"``, ``"utf-16"``, ``"utf-32"``); ``"utf-8"`` if the
        bytes are valid UTF-8; ``"utf-16-le"``/``"utf-16-be"`` for BOM-less
        UTF-16 (many NUL bytes); otherwise charset-normalizer's best legacy
        guess, preferring ``"cp1252"`` when it reads the text as well as the
        alternatives (so a Latin-1 Western text is reported as ``"cp1252"``).

    Raises
    ------
    InputError
        If no text encoding fits (binary data).
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    sample = data[:4096]
    half = max(len(sample) // 2, 1)
    for name, zeros in (("utf-16-le", sample[1::2]), ("utf-16-be", sample[0::2])):
        if zeros.count(0) > 0.3 * half:
            try:
                data[: len(data) // 2 * 2].decode(name)
                return name
            except UnicodeDecodeError:
                pass
    from charset_normalizer import from_bytes

    try:
        matches = list(from_bytes(data))
    except Exception as exc:  # noqa: BLE001 - a foreign library's failure is a file we cannot read
        raise InputError(f"no text encoding fits ({type(exc).__name__} in charset-normalizer)") from exc
    if not matches:
        raise InputError("no text encoding fits (binary data?)")
    least = min(m.chaos for m in matches)
    tied = [m for m in matches if m.chaos <= least + 1e-6]
    most = max(m.coherence for m in tied)
    names = [_codec_name(n) for m in tied if m.coherence >= most - 1e-6 for n in m.could_be_from_charset]
    return next((p for p in _PREFERRED if p in names), names[0])


# ---------------------------------------------------------------- reading

_TS = r"\d+(?::\d+){1,2}(?:[.,]\d+)?"
_TIMING = re.compile(rf"^\s*({_TS})\s*-+>\s*({_TS})(?:\s+(.*?))?\s*$")
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_EVENT = re.compile(r"^(Dialogue|Comment)\s*:\s?(.*)$", re.IGNORECASE)
_ASS_FORMATS = {
    "ass": ["Layer", "Start", "End", "Style", "Name", "MarginL", "MarginR", "MarginV", "Effect", "Text"],
    "ssa": ["Marked", "Start", "End", "Style", "Name", "MarginL", "MarginR", "MarginV", "Effect", "Text"],
}


#: Largest time (seconds) a cue may have: float64 holds every millisecond up to 2**53 ms
#: (about 285,000 years); a timestamp beyond it cannot be represented and its block is skipped.
MAX_SECONDS = 2.0**53 / 1000


_LOOSE_TS = re.compile(r"\s*(?:(?:(\d+):)?(\d+):)?(\d+)(?:[.,](\d*))?\s*", re.ASCII)


def _seconds(ts: str) -> float:
    """Parse a loose timestamp: ``[[h:]m:]s[.,fraction]`` (``0:1:5.2``, ``1:05,200``).

    Raises ``ValueError`` for anything else (signs, letters, non-ASCII digits) and for a
    time that cannot be represented (beyond :data:`MAX_SECONDS`).
    """
    m = _LOOSE_TS.fullmatch(ts)
    if not m:
        raise ValueError(f"not a timestamp: {ts.strip()[:40]!r}")
    h, mi, s, frac = m.groups()
    # a long one may still be small (leading zeros); int() must not meet thousands of digits
    if len(ts) > 40 and sum(len(g.lstrip("0")) for g in (h or "", mi or "", s)) > 30:
        raise ValueError(f"timestamp {ts.strip()[:40]!r} is too large")
    whole = int(h or 0) * 3600 + int(mi or 0) * 60 + int(s)
    if whole > MAX_SECONDS:
        raise ValueError(f"timestamp {ts.strip()[:40]!r} is too large")
    if frac:
        frac = frac[:9]  # beyond nanoseconds nothing is representable
        return float(whole + int(frac) / 10 ** len(frac))  # float(): int ** int is typed Any
    return float(whole)


def _is_arrow(line: str) -> bool:
    # every timing line holds "->" (the cheap test spares the regex for cue text)
    return "->" in line and ("-->" in line or bool(_TIMING.match(line)))


def _blocks(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Split lines into blocks ``(first line index, lines)`` (shared by VTT and SRT), lazily.

    Blocks end at blank (or whitespace-only) lines. A timing line also starts a
    new block unless it follows a single identifier line, so cues that lack the
    blank line between them are still separated; a bare number right before such
    a timing line (after some cue text) is taken as the next cue's SRT index.
    """
    cur: list[str] = []
    first = 0
    for i, line in enumerate(lines):
        if not line.strip():
            if cur:
                yield first, cur
            cur = []
            continue
        if cur and _is_arrow(line) and (len(cur) > 1 or _is_arrow(cur[0]) or cur[0].startswith("WEBVTT")):
            arrow = next((k for k, x in enumerate(cur) if _is_arrow(x)), len(cur))
            carry = [cur.pop()] if len(cur) - arrow > 2 and cur[-1].strip().isdigit() else []
            yield first, cur
            cur, first = carry, i - len(carry)
        if not cur:
            first = i
        cur.append(line)
    if cur:
        yield first, cur


def _arrow_at(block: list[str]) -> int | None:
    """Index of the block's first timing line, or None."""
    return next((k for k, x in enumerate(block) if _is_arrow(x)), None)


def _parse_cue(first: int, block: list[str], k: int) -> Cue | str:
    """Parse one VTT/SRT cue block whose timing line is ``block[k]``; return a :class:`Cue` or a warning."""
    m = _TIMING.match(block[k])
    if not m or k > 1:
        return f"line {first + k + 1}: cannot read cue timing {block[k].strip()[:60]!r}; block skipped"
    try:
        start, end = _seconds(m[1]), _seconds(m[2])
    except ValueError as exc:
        return f"line {first + k + 1}: {exc}; block skipped"
    if end < start:
        return f"line {first + k + 1}: cue ends before it starts ({block[k].strip()[:60]!r}); block skipped"
    ident = block[0].strip() if k == 1 else None
    return Cue(start, end, "\n".join(block[k + 1 :]), ident, (m[3] or "").strip())


class _Reader:
    """Collects cues, notes and warnings while one file is parsed."""

    def __init__(self) -> None:
        self.cues: list[Cue] = []
        self.pending: list[str] = []
        self.skipped = 0
        self.warnings: list[str] = []

    def skip(self, message: str) -> None:
        self.skipped += 1
        self.warnings.append(message)

    def add(self, cue: Cue | str) -> None:
        if isinstance(cue, str):
            return self.skip(cue)
        cue.notes_before = "".join(self.pending)
        self.pending = []
        self.cues.append(cue)


def _read_srt(lines: list[str]) -> dict[str, Any]:
    r = _Reader()
    for first, block in _blocks(lines):
        k = _arrow_at(block)
        if k is not None:
            r.add(_parse_cue(first, block, k))
        else:
            r.skip(f"line {first + 1}: text without a cue timing line ({block[0].strip()[:40]!r}); block skipped")
    return dict(cues=r.cues, skipped=r.skipped, warnings=r.warnings)


def _read_vtt(lines: list[str]) -> dict[str, Any]:
    r = _Reader()
    blocks = list(_blocks(lines))
    n_head = next((i for i, (_, b) in enumerate(blocks) if any(_is_arrow(x) for x in b)), len(blocks))
    head_end = blocks[n_head][0] if n_head < len(blocks) else len(lines)
    header = "\n".join(lines[:head_end]).rstrip()
    if not header.startswith("WEBVTT"):
        r.warnings.append("line 1: no WEBVTT signature")
        header = "WEBVTT" + ("\n\n" + header if header else "")
    for first, block in blocks[n_head:]:
        k = _arrow_at(block)
        if k is not None:
            r.add(_parse_cue(first, block, k))
        elif block[0].startswith(("NOTE", "STYLE", "REGION")):
            r.pending.append("\n".join(block) + "\n\n")
        else:
            r.skip(f"line {first + 1}: text outside any cue ({block[0].strip()[:40]!r}); block skipped")
    footer = "".join("\n" + p[:-1] for p in r.pending)
    return dict(cues=r.cues, header=header, footer=footer, skipped=r.skipped, warnings=r.warnings)


_SBV_TIMING = re.compile(r"^\s*\d+:\d{1,2}:\d{1,2}\.\d{3},\d+:\d{1,2}:\d{1,2}\.\d{3}")  # sniffing only
_MAX_MS = int(MAX_SECONDS * 1000)


def _sbv_blocks(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Split lines into blocks ``(first line index, lines)`` at blank (or whitespace-only)
    lines, as webvtt-py's SBV reader does, lazily."""
    cur: list[str] = []
    first = 0
    for i, line in enumerate(lines):
        if line.strip():
            if not cur:
                first = i
            cur.append(line)
        elif cur:
            yield first, cur
            cur = []
    if cur:
        yield first, cur


def _read_sbv(lines: list[str]) -> dict[str, Any]:
    """YouTube SBV: each block read by webvtt-py (times and text); its failures become skipped blocks.

    webvtt-py reads the whole file as well, but silently leaves out the blocks it cannot
    read; given one block at a time it tells which (by raising), so each is counted and
    named by its line number, and the file is still parsed once.  webvtt-py takes a
    block without a text line for a malformed one; here, as in SRT and WebVTT, a timing
    line alone is a cue with no text.
    """
    import webvtt
    from webvtt.errors import MalformedCaptionError, MalformedFileError

    r = _Reader()
    for first, block in _sbv_blocks(lines):
        where = f"line {first + 1}: "
        try:  # a stand-in text line for a cue without text (webvtt-py requires one)
            caps = webvtt.from_buffer(block if len(block) > 1 else [block[0], "-"], format="sbv").captions
        except (MalformedFileError, MalformedCaptionError):
            r.skip(f"{where}cannot read cue timing {block[0].strip()[:60]!r}; block skipped")
            continue
        if not caps:  # webvtt-py leaves out a block whose time it cannot represent
            r.skip(f"{where}timestamp {block[0].strip()[:40]!r} is too large; block skipped")
            continue
        start, end = caps[0].start_time.in_milliseconds(), caps[0].end_time.in_milliseconds()
        if max(start, end) > _MAX_MS:
            r.skip(f"{where}timestamp {block[0].strip()[:40]!r} is too large; block skipped")
        elif end < start:
            r.skip(f"{where}cue ends before it starts ({block[0].strip()[:60]!r}); block skipped")
        else:
            r.add(Cue(start / 1000, end / 1000, caps[0].raw_text if len(block) > 1 else ""))
    return dict(cues=r.cues, skipped=r.skipped, warnings=r.warnings)


def _read_ass(lines: list[str]) -> dict[str, Any]:
    r = _Reader()
    fmt = "ssa" if _looks_ssa("\n".join(lines[:200])) else "ass"
    names, head_end, in_events = None, None, False
    for i, line in enumerate(lines):
        sec = _SECTION.match(line)
        if sec:
            in_events = sec[1].strip().lower() == "events"
            if in_events and head_end is None:
                head_end = i + 1
        elif in_events and names is None and line.strip().lower().startswith("format:"):
            names = [n.strip() for n in line.split(":", 1)[1].split(",")]
            if not r.cues:  # lines between "[Events]" and "Format:" stay in the header
                head_end, r.pending = i + 1, []
                continue
        if head_end is None or i < head_end:
            continue
        ev = _EVENT.match(line) if in_events else None
        if not ev or ev[1].lower() == "comment":  # Comment events are never shown: kept verbatim
            r.pending.append(line + "\n")
            continue
        keys = names or _ASS_FORMATS[fmt]
        values = ev[2].split(",", len(keys) - 1)
        row = dict(zip(keys, values))
        try:
            if len(values) < len(keys):
                raise ValueError
            start, end = _seconds(row["Start"]), _seconds(row["End"])
        except (ValueError, KeyError):
            r.skip(f"line {i + 1}: cannot read event {line[:60]!r}; line skipped")
            continue
        if end < start:
            r.skip(f"line {i + 1}: event ends before it starts; line skipped")
            continue
        fields = {k: v for k, v in row.items() if k not in ("Start", "End", "Text")}
        r.add(Cue(start, end, row.get("Text", ""), fields=fields, kind=ev[1]))
    if head_end is None:
        head_end = len(lines)
    return dict(
        cues=r.cues,
        format=fmt,
        header="\n".join(lines[:head_end]),
        footer="".join(r.pending),
        skipped=r.skipped,
        warnings=r.warnings,
    )


_READERS = {"vtt": _read_vtt, "srt": _read_srt, "ass": _read_ass, "ssa": _read_ass, "sbv": _read_sbv}


def _looks_ssa(text: str) -> bool:
    return bool(re.search(r"^\s*\[V4 Styles\]|^\s*ScriptType:\s*v4\.00\s*$", text, re.M | re.I))


def _sniff(text: str, ext: str) -> str | None:
    head = text[:65536]
    if head.lstrip("\ufeff \t\n").startswith("WEBVTT"):
        return "vtt"
    # ASS/SSA: the first line that is not blank or a ";" comment opens a section (a cue
    # reading "[Events]" in an SRT file does not make it a script)
    first = next((ln for ln in head.split("\n", 1000)[:1000] if ln.strip() and not ln.lstrip().startswith(";")), "")
    if _SECTION.match(first):
        return "ssa" if _looks_ssa(head) else "ass"
    if _SBV_TIMING.match(first):  # before SRT: an SBV cue's text may quote an SRT timing
        return "sbv"
    timings = [m for m in map(_TIMING.match, head.split("\n")[:2000]) if m]
    if any("," in m[1] for m in timings):
        return "srt"
    if ext in SUPPORTED_FORMATS:
        return ext
    return "srt" if timings else None


def _parse(text: str, format: str | None, name: str, ext: str = "", encoding: str = "utf-8") -> Subtitles:
    if "\x00" in text or sum(c < " " and c not in "\t\n\r\f" for c in text[:65536]) > 0.01 * min(len(text), 65536):
        raise InputError(f"{name}: not a subtitle file (binary data)")
    newline = "\r\n" if "\r\n" in text else "\n"
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    fmt = _check_format(format) if format else _sniff(text, ext)
    if fmt is None:
        raise InputError(f"{name}: not a subtitle file (no WebVTT, SRT, ASS/SSA or SBV content found)")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    parsed = {"format": fmt, **_READERS[fmt](lines)}
    if not parsed["cues"]:
        first = f"; first: {parsed['warnings'][0]}" if parsed["warnings"] else ""
        raise InputError(f"{name}: no readable subtitle cues ({parsed['skipped']} malformed blocks skipped{first})")
    subs = Subtitles(encoding=encoding, newline=newline, **parsed)
    shown = np.array([c.kind.lower() == "dialogue" for c in subs.cues])
    s, e = subs.starts[shown], subs.ends[shown]
    for count, what in (
        (int(np.sum(e == s)), "zero-length"),
        (int(np.sum(s[1:] < e[:-1])), "overlapping the previous one"),
    ):
        if count:
            subs.warnings.append(f"{count} cue(s) {what} (kept)")
    return subs


def loads(text: str, *, format: str | None = None) -> Subtitles:
    """Parse subtitles from a string.

    Parameters
    ----------
    text : str
        File contents.
    format : str, optional
        Force a format; by default it is sniffed from the content.

    Returns
    -------
    Subtitles

    Raises
    ------
    InputError
        Not subtitles, or no readable cue.
    """
    return _parse(text, format, "<string>")


def read(path: Pathlike, *, encoding: str | None = None, format: str | None = None) -> Subtitles:
    """Read a subtitle file (WebVTT, SRT, ASS, SSA or YouTube SBV).

    Blocks that cannot be read are left out, counted in :attr:`Subtitles.skipped` and
    described in :attr:`Subtitles.warnings`; a warning (logger ``mmalign.subtitles``)
    names the file and the first of them.

    Parameters
    ----------
    path : str or Path
        The file.
    encoding : str, optional
        Codec; detected with :func:`detect_encoding` when None.
    format : str, optional
        Force a format; by default it is sniffed from the content (``WEBVTT``
        signature, ``[Script Info]``, an SBV timing line first, SRT timings
        with a comma), then taken from the extension.

    Returns
    -------
    Subtitles

    Raises
    ------
    InputError
        Missing or unreadable file, binary data, or no readable cue.
    UsageError
        Unknown ``format`` or ``encoding``.

    Examples
    --------
    >>> subs = read("movie.srt")                     # doctest: +SKIP
    >>> subs.starts[:3]                              # doctest: +SKIP
    array([1.   , 3.5  , 7.25 ])
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: subtitle file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read subtitle file ({exc.strerror or exc})") from None
    if not data.strip():
        raise InputError(f"{path}: subtitle file is empty")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UsageError(f"unknown encoding {encoding!r}") from None
    enc = encoding
    try:
        enc = encoding or detect_encoding(data)
        text = data.decode(enc)
        del data  # not needed any more: a 50 MB file should not be held twice
    except (UnicodeDecodeError, UnicodeError) as exc:
        where = f" (byte {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
        raise InputError(f"{path}: cannot decode as {enc}{where}") from None
    except LookupError:  # a codec charset-normalizer names but Python lacks
        raise InputError(f"{path}: not a subtitle file (no usable text encoding)") from None
    except InputError as exc:
        raise InputError(f"{path}: not a subtitle file ({exc})") from None
    subs = _parse(text, format, str(path), path.suffix.lower().lstrip("."), enc)
    if subs.skipped:  # counted in .skipped, and said: never dropped silently
        lost = [w for w in subs.warnings if w.endswith("skipped")]
        blocks = "1 block" if subs.skipped == 1 else f"{subs.skipped} blocks"
        log.warning(
            "%s: %s could not be read and %s left out%s",
            path,
            blocks,
            "is" if subs.skipped == 1 else "are",
            f" (first: {lost[0]})" if lost else "",
        )
    return subs


Subtitles.read = staticmethod(read)
Subtitles.loads = staticmethod(loads)

# ---------------------------------------------------------------- markup conversion

_TAG = re.compile(r"<[^>\n]*>")
_SOUND_DESCRIPTION = re.compile(r"\[[^\]]*\]?|\([^)]*\)?")  # [door slams], (laughs); unclosed at a cue's end
_MUSIC_LINE = re.compile(r"^.*[\u266a\u266b\u266c].*$", re.M)  # a line with ♪, ♫ or ♬: lyrics
_SPEAKER_LABEL = re.compile(r"^[\s\-\u2013\u2014]*[A-Z][A-Z0-9 .'\-]*:", re.M)  # "JOHN:", "- MAN 2:"


def _is_spoken(plain: str) -> bool:
    """Whether a cue's plain text has words left once sound descriptions, lyrics and labels go.

    Text with no words and nothing to remove (``"..."``, a hesitation) counts as speech.
    """
    if not plain.strip():
        return False
    rest = _SPEAKER_LABEL.sub("", _SOUND_DESCRIPTION.sub("", _MUSIC_LINE.sub("", plain)))
    return any(ch.isalnum() for ch in rest) or rest.strip() == plain.strip()


_ASS_OVERRIDE = re.compile(r"\{[^}]*\}")
_ASS_BIU = re.compile(r"\\([biu])(\d*)(?![a-z])")
_SIMPLE_TAG = re.compile(r"<(/?)([biu])\b[^>]*>", re.I)


def _to_simple(text: str, fmt: str) -> str:
    """Cue text -> plain text with ``"\\n"`` breaks and only ``<b>``, ``<i>``, ``<u>`` tags."""
    if fmt in _ASS:
        text = _ASS_OVERRIDE.sub(
            lambda m: "".join(f"<{'' if int(v or 0) else '/'}{t}>" for t, v in _ASS_BIU.findall(m[0])), text
        )
        return text.replace("\\N", "\n").replace("\\n", "\n").replace("\\h", "\u00a0")
    text = re.sub(r"\{\\[^}]*\}", "", text)  # ASS tags such as {\an8} found in SRT files
    text = _TAG.sub(lambda m: _SIMPLE_TAG.sub(r"<\1\2>", m[0]).lower() if _SIMPLE_TAG.match(m[0]) else "", text)
    return html.unescape(text) if fmt == "vtt" else text


def _from_simple(text: str, fmt: str) -> str:
    if fmt in _ASS:
        text = re.sub(r"<(/?)([biu])>", lambda m: f"{{\\{m[2]}{0 if m[1] else 1}}}", text)
        return text.replace("\n", "\\N")
    text = "\n".join(line for line in text.split("\n") if line.strip())  # a blank line would end the cue
    if fmt == "vtt":
        return re.sub(r"&lt;(/?[biu])&gt;", r"<\1>", html.escape(text, quote=False))
    if fmt == "sbv":  # plain text: SBV has no markup
        return re.sub(r"</?[biu]>", "", text)
    return text


def _convert(subs: Subtitles, fmt: str) -> list[Cue]:
    """Cues ready for writing as ``fmt``: unchanged within a format family."""
    if subs.format == fmt or (subs.format in _ASS and fmt in _ASS):
        return subs.cues
    return [
        Cue(
            c.start,
            c.end,
            _from_simple(_to_simple(c.text, subs.format), fmt),
            c.identifier if subs.format in ("vtt", "srt") else None,
        )
        for c in subs.cues
        if c.kind.lower() == "dialogue"
    ]


# ---------------------------------------------------------------- writing


def _fmt_time(t: float, fmt: str) -> str:
    if fmt in _ASS:  # to the millisecond first: a time 5 ms past a centisecond rounds up, always
        cs = (max(0, int(round(float(t) * 1000))) + 5) // 10
        return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"
    ms = max(0, int(round(float(t) * 1000)))
    if fmt == "sbv":
        return f"{ms // 3600000}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
    sep = "," if fmt == "srt" else "."
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _timing(c: Cue, fmt: str) -> str:
    line = f"{_fmt_time(c.start, fmt)} --> {_fmt_time(c.end, fmt)}"
    return f"{line} {c.settings}" if c.settings else line


_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls but tab and line feed, and DEL


def _writable(text: str, fmt: str) -> str:
    """Cue text as it can be written in ``fmt`` and read back unchanged (see "Writing any text").

    Line breaks (``\\r\\n``, ``\\r``) become ``\\n``; other control characters are dropped.
    ASS/SSA: ``\\n`` becomes ``\\N``.  VTT/SRT/SBV: blank lines (which would end the cue)
    are dropped, and ``->`` (which makes a line a timing line) is written ``-&gt;``
    (VTT, the same text once entities are resolved) or ``- >`` (SRT has no escapes);
    SBV needs no escape (a cue's timing is always its first line).
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub("", text)
    if fmt in _ASS:
        return text.replace("\n", "\\N")
    lines = [line for line in text.split("\n") if line.strip()]
    if fmt == "sbv":
        return "\n".join(lines)
    arrow = "-&gt;" if fmt == "vtt" else "- >"
    return "\n".join(line.replace("->", arrow) for line in lines)


def _write_vtt(subs: Subtitles, fmt: str) -> str:
    same = subs.format == "vtt"
    header = subs.header if same else ""
    if not header.startswith("WEBVTT"):
        header = "WEBVTT" + ("\n\n" + header if header.strip() else "")
    out = [header + "\n"]
    for c in _convert(subs, fmt):
        ident = f"{c.identifier}\n" if c.identifier else ""
        text = _writable(c.text, fmt)
        out.append(f"\n{c.notes_before}{ident}{_timing(c, fmt)}\n" + (f"{text}\n" if text else ""))
    if same:
        out.append(subs.footer)
    return "".join(out)


def _write_srt(subs: Subtitles, fmt: str) -> str:
    out = []
    for n, c in enumerate(_convert(subs, fmt), 1):
        ident = c.identifier if c.identifier and c.identifier.isdigit() else str(n)
        text = _writable(c.text, fmt)
        out.append(f"{ident}\n{_timing(c, fmt)}\n" + (f"{text}\n" if text else ""))
    return "\n".join(out)


def _write_sbv(subs: Subtitles, fmt: str) -> str:
    out = []
    for c in _convert(subs, fmt):
        text = _writable(c.text, fmt)
        out.append(f"{_fmt_time(c.start, fmt)},{_fmt_time(c.end, fmt)}\n" + (f"{text}\n" if text else ""))
    return "\n".join(out)


_ASS_HEADERS = {
    "ass": "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
    "PlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
    "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
    "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n",
    "ssa": "[Script Info]\nScriptType: v4.00\n\n[V4 Styles]\n"
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, TertiaryColour, BackColour, "
    "Bold, Italic, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, AlphaLevel, "
    "Encoding\nStyle: Default,Arial,16,16777215,16777215,16777215,0,0,0,1,1,0,2,10,10,10,0,0\n",
}
_ASS_DEFAULTS = {"Layer": "0", "Marked": "Marked=0", "Style": "Default", "MarginL": "0", "MarginR": "0", "MarginV": "0"}


def _write_ass(subs: Subtitles, fmt: str) -> str:
    found = re.search(r"^\s*\[Events\]\s*$(.*)", subs.header, re.M | re.I | re.S)
    if subs.format in _ASS and found:
        header, footer = subs.header, subs.footer
        fm = re.search(r"^\s*Format\s*:(.*)$", found[1], re.M | re.I)
        names = [n.strip() for n in fm[1].split(",")] if fm else _ASS_FORMATS[subs.format]
    else:  # another format, or a script made in code without its sections
        names = _ASS_FORMATS[fmt]
        header = f"{_ASS_HEADERS[fmt]}\n[Events]\nFormat: {', '.join(names)}"
        footer = ""
    out = [header + "\n"]
    for c in _convert(subs, fmt):
        own = {"Start": _fmt_time(c.start, fmt), "End": _fmt_time(c.end, fmt), "Text": _writable(c.text, fmt)}
        values = [own[k] if k in own else (c.fields or {}).get(k, _ASS_DEFAULTS.get(k, "")) for k in names]
        out.append(f"{c.notes_before}{c.kind}: {','.join(values)}\n")
    out.append(footer)
    return "".join(out)


_WRITERS = {"vtt": _write_vtt, "srt": _write_srt, "ass": _write_ass, "sbv": _write_sbv}
