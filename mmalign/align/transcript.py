"""Transcripts for forced alignment: read them into segments, write what was found.

:func:`mmalign.align.words.force_align` takes a list of segment texts and returns their
times on the recording; this module is what lies on either side of it.

Reading
    read_transcript       a ``.txt`` file (one segment per line, or per sentence) or a
                          subtitle file (one segment per cue, its times ignored)
    split_sentences       a paragraph → its sentences (abbreviations by language; CJK
                          sentence punctuation)
    is_transcript_path    whether a path is a plain-text transcript (by its extension)

Aligning
    align_transcript      media + transcript file → :class:`~mmalign.align.words.ForcedAlignment`,
                          refused when nothing was found
    require_found         refuse a result with no segment found, or below ``min_confidence``

Writing
    output_format         ``vtt``, ``srt`` or ``json``, from an output path
    alignment_to_subtitles  found segments as cues (WebVTT karaoke timestamps with ``words``)
    alignment_to_json     the result as a JSON-ready dict
    write_alignment       to a file (atomically) or standard output, by its format

Notes
-----
Segments that were not found get no times anywhere: they are left out of VTT and SRT,
and listed in JSON with ``start``/``end`` null and their ``reason``.

WebVTT word times are inline timestamps, as in the WebVTT specification's karaoke
example: ``<hh:mm:ss.ttt>`` before every word but the first, whose time is the cue's
start. A timestamp must lie strictly after the cue's start and the previous timestamp,
and before the cue's end (to the millisecond); a word where it would not is left
without one.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import InputError, NotConfidentError, UsageError
from ..fileio import Pathlike
from ..subtitles import Cue, Subtitles

if TYPE_CHECKING:  # words.py loads Numba: only its functions, called, need it
    from .words import ForcedAlignment

__all__ = [
    "ALIGNERS",
    "OUTPUT_FORMATS",
    "SPLITS",
    "align_transcript",
    "alignment_to_json",
    "alignment_to_subtitles",
    "attention_aligner",
    "is_transcript_path",
    "output_format",
    "read_transcript",
    "require_found",
    "split_sentences",
    "write_alignment",
]

log = logging.getLogger("mmalign")

SPLITS = ("lines", "sentences")
"""How a plain-text transcript becomes segments: one per non-empty line, or per sentence."""

ALIGNERS = ("dtw", "attention", "combined")
"""Who finds a transcript's segments: synthesised speech + DTW, the attention aligner, or both."""

OUTPUT_FORMATS = ("vtt", "srt", "json")
"""What a forced alignment is written as, by the output's extension."""

TEXT_EXTS = (".txt",)

# ---------------------------------------------------------------- sentences

# Words that end with a period without ending a sentence, per language (lower case, no
# final period). A language not listed uses all of them.
_ABBREVIATIONS = {
    "en": "mr mrs ms dr prof st jr sr vs etc e.g i.e inc ltd co no mt approx fig dept est vol",
    "fr": "m mm mme mmes mlle dr pr st ste etc cf p.ex p ex av bd n° no env vol",
    "de": "z.b u.a d.h bzw usw ca dr prof nr hr fr str vgl s evtl ggf inkl z.t u.ä",
    "es": "sr sra srta dr dra ud uds etc p.ej núm av avda pág",
    "it": "sig sig.ra sigg dott prof ecc es pag",
    "pt": "sr sra dr dra etc ex pág av",
    "nl": "dhr mevr dr prof bv enz nr",
}
_ALL_ABBREVIATIONS = frozenset(w for words in _ABBREVIATIONS.values() for w in words.split())
_ORDINAL_LANGUAGES = ("de", "da", "no", "nb", "fi", "cs", "sk", "pl", "hu", "sl", "hr", "sr", "et", "lv", "lt")

# A full stop, question or exclamation mark (Latin, Arabic, Devanagari) with closing quotes
# or brackets, then white space; or CJK sentence punctuation, with or without space after.
_CJK_CLOSERS = "」』）〕】”’\"')"
_OPENERS = "「『（〔【“‘\"'("
_BOUNDARY = re.compile(
    r"(?P<cjk>[。！？｡．]+[」』）〕】”’\"')]*\s*)|(?P<latin>[.!?…‽؟।॥]+(?:[ \u00a0\u202f]?»)?[\"'”’»)\]]*(?=\s|$)\s*)"
)


def _abbreviations(language: str | None) -> frozenset[str]:
    if language is None:
        return _ALL_ABBREVIATIONS
    base = language.strip().lower().replace("_", "-").split("-")[0]
    return frozenset(_ABBREVIATIONS.get(base, " ".join(_ABBREVIATIONS.values())).split())


def _ends_sentence(text: str, start: int, end: int, mark: str, language: str | None) -> bool:
    """Whether the Latin-script end mark ``text[start:end]`` ends a sentence."""
    if not (mark.startswith(".") or mark.startswith("…")) or "?" in mark or "!" in mark:
        return True
    following = text[end:].lstrip("\"'“‘«([ ")
    if following[:1].islower():  # "etc. and so on", "... and then"
        return False
    if not mark.startswith("."):
        return True
    word = re.search(r"(\S+)$", text[:start])
    token = word.group(1).lstrip("\"'“‘«([").lower() if word else ""
    if len(token) == 1 and token.isalpha():  # an initial: "J. Smith"
        return False
    if token.isdigit() and language is not None and language.split("-")[0].lower() in _ORDINAL_LANGUAGES:
        return not following[:1].isalpha()  # "am 3. Mai"
    return token not in _abbreviations(language)


def split_sentences(text: str, *, language: str | None = None) -> list[str]:
    """Split a paragraph into sentences.

    A sentence ends at ``.``, ``!``, ``?``, ``…`` (or ``؟``, ``।``) followed by white
    space, closing quotes and brackets included, and at the CJK marks ``。！？``
    (white space or not). A full stop does not end a sentence after an abbreviation of
    ``language`` (``Mr.``, ``z.B.``, ``Mme.``; all known ones when ``language`` is
    None), after a single letter (an initial), after a number in languages that write
    ordinals so (German ``am 3. Mai``), or before a word in lower case.

    Parameters
    ----------
    text : str
        The paragraph (line breaks count as spaces).
    language : str, optional
        Language code (``en``, ``de-AT``): which abbreviations to know.

    Returns
    -------
    list of str
        The sentences, stripped, none empty.

    Examples
    --------
    >>> split_sentences("Mr. Smith arrived. He sat down! 你好。再见。")
    ['Mr. Smith arrived.', 'He sat down!', '你好。', '再见。']
    """
    if not isinstance(text, str):
        raise UsageError(f"text must be a str, not {type(text).__name__}")
    out: list[str] = []
    begin = 0
    for m in _BOUNDARY.finditer(text):
        if m.group("latin") and not _ends_sentence(text, m.start(), m.end(), m.group(0).strip(), language):
            continue
        if m.group("cjk") and m.group(0)[-1] in _CJK_CLOSERS and m.end() < len(text) and text[m.end()] not in _OPENERS:
            continue  # 「本当？」と彼は言った: the quoted sentence goes on
        out.append(text[begin : m.end()])
        begin = m.end()
    out.append(text[begin:])
    return [s for s in (" ".join(part.split()) for part in out) if s]


# ---------------------------------------------------------------- reading


def is_transcript_path(path: Pathlike) -> bool:
    """Whether ``path`` names a plain-text transcript (``.txt``, any case)."""
    return Path(path).suffix.lower() in TEXT_EXTS


def _is_cjk(c: str) -> bool:
    return "\u3040" <= c <= "\u30ff" or "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" or "\uff00" <= c


def _join_lines(lines: list[str]) -> str:
    """A paragraph's lines as one text: a space between them, none between two CJK characters."""
    text = ""
    for line in lines:
        if text and not (_is_cjk(text[-1]) and _is_cjk(line[0])):
            text += " "
        text += line
    return text


def read_transcript(path: Pathlike, *, split: str = "lines", language: str | None = None) -> list[str]:
    """The segments of a transcript file, in order.

    Parameters
    ----------
    path : str or os.PathLike
        A plain-text file (any extension but a subtitle one; the encoding is detected)
        or a subtitle file (``.vtt``, ``.srt``, ``.ass``, ``.ssa``, ``.sbv``), whose cues
        are the segments (their plain text, lines joined by spaces; times ignored).
    split : {"lines", "sentences"}
        Plain text only: one segment per non-empty line, or paragraphs (separated by
        blank lines) split into sentences (:func:`split_sentences`).
    language : str, optional
        For ``split="sentences"``: the language whose abbreviations to know.

    Returns
    -------
    list of str
        One text per segment; never empty.

    Raises
    ------
    InputError
        A missing or unreadable file, or one with no text.
    UsageError
        An unknown ``split``, or ``split="sentences"`` for a subtitle file.
    """
    from ..align.sync import is_subtitle_path
    from ..subtitles import detect_encoding, read

    if split not in SPLITS:
        raise UsageError(f"unknown {{split}} {split!r}; choose from {', '.join(SPLITS)}", names=["split"])
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: transcript not found")
    if is_subtitle_path(path):
        if split != "lines":
            raise UsageError(
                f"{path}: a subtitle file's cues are its segments; {{split}} {split} is for plain text", names=["split"]
            )
        segments = [" ".join(t.split()) for t in read(path).plain_texts()]
    else:
        data = path.read_bytes()
        try:
            text = data.decode(detect_encoding(data))
        except (InputError, UnicodeDecodeError, LookupError) as exc:
            raise InputError(f"{path}: not a text transcript ({exc}); give a .txt or subtitle file") from None
        if "\x00" in text:
            raise InputError(f"{path}: not a text transcript (binary data); give a .txt or subtitle file")
        text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        if split == "lines":
            segments = [line.strip() for line in text.split("\n")]
        else:
            paragraphs = re.split(r"\n\s*\n", text)
            segments = []
            for par in paragraphs:
                lines = [line.strip() for line in par.split("\n") if line.strip()]
                if lines:
                    segments.extend(split_sentences(_join_lines(lines), language=language))
    segments = [s for s in segments if s]
    if not segments:
        raise InputError(f"{path}: the transcript has no text")
    return segments


# ---------------------------------------------------------------- aligning


def require_found(result: ForcedAlignment, min_confidence: float = 0.0) -> ForcedAlignment:
    """``result`` itself when at least one segment was found at ``min_confidence`` or more.

    Raises
    ------
    NotConfidentError
        No segment was found (a transcript of something else, or nothing to say), or
        the confidence is below ``min_confidence``; the result is attached.
    """
    found = len(result.segments) - len(result.not_found)
    if found == 0:
        raise NotConfidentError(
            f"none of the {len(result.segments)} segments was found in the recording: "
            "check that the transcript belongs to this media",
            result,
        )
    if result.confidence < min_confidence:
        raise NotConfidentError(
            f"not confident in the alignment (confidence {result.confidence:.2f} < {min_confidence:g}): "
            "check that the transcript belongs to this media",
            result,
        )
    return result


def align_transcript(
    media: Pathlike,
    transcript: Pathlike,
    *,
    split: str = "lines",
    language: str | None = None,
    audio_stream: int | None = None,
    jobs: int | None = None,
    min_confidence: float = 0.0,
    aligner: str = "dtw",
    model: Pathlike | None = None,
) -> ForcedAlignment:
    """Forced alignment of a transcript file with a media file.

    Reads the segments (:func:`read_transcript`), finds them in the recording and refuses a
    result with nothing found (:func:`require_found`); segments not found are logged as one
    warning. The aligner (:data:`ALIGNERS`): ``"dtw"``, synthesised speech and DTW
    (:func:`mmalign.align.words.force_align`); ``"attention"``, the trained attention
    aligner over the whole recording in one piece (:func:`mmalign.align.attention.attention_align`,
    needs torch; about four minutes of dense speech at most); ``"combined"``,
    the DTW with the attention aligner's frame embeddings joined to its features (the
    ``model`` argument of :func:`~mmalign.align.words.force_align`; needs torch).

    Parameters
    ----------
    media : str or os.PathLike
        A media file with an audio stream.
    transcript : str or os.PathLike
        Plain text or a subtitle file (see :func:`read_transcript`).
    split : {"lines", "sentences"}
        How plain text becomes segments.
    language : str, optional
        Language code; default: detected from the whole transcript.
    audio_stream : int, optional
        Audio stream of the media (0 = first); default: its default stream.
    jobs : int, optional
        Processes decoding the media (default: one per CPU).
    min_confidence : float
        Refuse a result whose confidence is lower (0: refuse only when nothing is found).
    aligner : {"dtw", "attention", "combined"}
        Which aligner finds the segments.
    model : str or os.PathLike, optional
        The attention aligner's weights (:func:`mmalign.align.attention.save_model`);
        default: the shipped ones.

    Returns
    -------
    ForcedAlignment

    Raises
    ------
    InputError
        A missing or unreadable input.
    UsageError
        Bad options; a language eSpeak NG does not speak (named ``{language}``).
    NotConfidentError
        No segment found, or a confidence below ``min_confidence``.
    """
    from .words import force_align

    if aligner not in ALIGNERS:
        raise UsageError(f"{{aligner}} must be one of {', '.join(ALIGNERS)}, not {aligner!r}", names=["aligner"])
    if model is not None and aligner == "dtw":
        raise UsageError("{model} applies to the attention aligner (attention or combined)", names=["model"])
    if not Path(media).exists():
        raise InputError(f"{media}: media file not found")
    if model is not None and not Path(model).is_file():
        raise InputError(f"{model}: aligner weights not found")
    if isinstance(min_confidence, bool) or not 0.0 <= min_confidence <= 1.0:
        raise UsageError(
            f"{{min_confidence}} must be between 0 and 1, not {min_confidence!r}", names=["min_confidence"]
        )
    attention = None if aligner == "dtw" else attention_aligner()  # no torch: refused before any work
    segments = read_transcript(transcript, split=split, language=language)
    if aligner == "attention":
        result = _attention(attention, media, segments, language=language, audio_stream=audio_stream, model=model)
    else:
        learned = None
        if aligner == "combined":
            from .attention import default_model_path

            learned = default_model_path() if model is None else model
        result = force_align(media, segments, language=language, audio_stream=audio_stream, jobs=jobs, model=learned)
    require_found(result, min_confidence)
    missing = [s for s in result.segments if not s.found]
    if missing:
        shown = "; ".join(f"{s.index + 1} ({s.reason}): {_short(s.text)!r}" for s in missing[:3])
        more = f"; and {len(missing) - 3} more" if len(missing) > 3 else ""
        log.warning("%d of %d segments not found, left without times: %s%s", len(missing), len(segments), shown, more)
    return result


def attention_aligner() -> Any:
    """:func:`mmalign.align.attention.attention_align`, imported (with torch) only here.

    Raises
    ------
    UsageError
        Without torch: naming ``pip install 'mmalign[torch]'`` and ``{aligner} dtw``.
    """
    try:
        from .attention import attention_align
    except ImportError as exc:
        raise UsageError(
            f"the attention aligner needs torch ({exc}); install it: pip install 'mmalign[torch]', "
            "or use {aligner} dtw",
            names=["aligner"],
        ) from exc
    return attention_align


def _attention(align: Any, media: Pathlike, segments: list[str], **kwargs: Any) -> ForcedAlignment:
    """``align(media, segments, **kwargs)``, its "give a guide" refusal worded for this front end."""
    try:
        result: ForcedAlignment = align(media, segments, **kwargs)
    except UsageError as exc:
        if "guide" not in exc.names:
            raise
        # "align it with a guide": here, the DTW alignment is the guide
        raise UsageError(
            exc.template.replace("with a {guide}", "with {aligner} combined"), names=[*exc.names, "aligner"]
        ) from exc
    return result


def _short(text: str, size: int = 40) -> str:
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"


# ---------------------------------------------------------------- writing


def output_format(path: Pathlike | None, *, words: bool = False) -> str:
    """The format of an output path by its extension: ``vtt``, ``srt`` or ``json``.

    ``None`` (standard output) is JSON.

    Raises
    ------
    UsageError
        Another extension, or ``words`` with SRT (which has no word times).
    """
    if path is None:
        return "json"
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"{path}: cannot tell the output format; end the name with .vtt, .srt or .json")
    if words and fmt == "srt":
        raise UsageError(f"{path}: SRT has no word times; write .vtt or .json with {{words}}", names=["words"])
    return fmt


def _ms(t: float) -> int:
    return max(0, int(round(t * 1000)))


def _timestamp(ms: int) -> str:
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _karaoke(text: str, start: float, end: float, words: Sequence[tuple[str, float]]) -> str:
    """WebVTT cue text: ``text`` escaped, with ``<hh:mm:ss.ttt>`` before each word but the first."""
    pieces: list[str] = []
    cursor = 0
    last = _ms(start)
    for k, (word, at) in enumerate(words):
        i = text.find(word, cursor)
        if i < 0:
            continue
        ms = _ms(at)
        if k > 0 and last < ms < _ms(end):
            pieces.append(html.escape(text[cursor:i], quote=False))
            pieces.append(f"<{_timestamp(ms)}>")
            cursor = i
            last = ms
    pieces.append(html.escape(text[cursor:], quote=False))
    return "".join(pieces)


def alignment_to_subtitles(result: ForcedAlignment, *, format: str = "vtt", words: bool = False) -> Subtitles:
    """The found segments as cues, in order (segments not found are left out).

    Parameters
    ----------
    result : ForcedAlignment
    format : {"vtt", "srt"}
        The subtitle format to build (VTT cue text is escaped as WebVTT needs).
    words : bool
        VTT only: an inline ``<hh:mm:ss.ttt>`` timestamp before each word but the first.

    Returns
    -------
    Subtitles
        Write it with :meth:`~mmalign.subtitles.Subtitles.write`.
    """
    if format not in ("vtt", "srt"):
        raise UsageError(f"{{format}} must be vtt or srt, not {format!r}", names=["format"])
    if words and format != "vtt":
        raise UsageError("SRT has no word times; {words} needs vtt", names=["words"])
    cues = []
    for seg in result.segments:
        if seg.start is None or seg.end is None:
            continue
        text = seg.text
        if format == "vtt":
            timed = [(w.text, w.start) for w in seg.words] if words else []
            text = _karaoke(text, seg.start, seg.end, timed)
        cues.append(Cue(seg.start, seg.end, text))
    return Subtitles(cues=cues, format=format)


def _number(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 3)


def alignment_to_json(result: ForcedAlignment, *, words: bool = False, **extra: Any) -> dict[str, Any]:
    """The result as a JSON-ready dict.

    Keys: ``extra`` first (e.g. ``media``, ``transcript``), then ``language``,
    ``duration``, ``confidence``, ``found``, ``not_found`` (indices) and ``segments``:
    one per input segment, in order, with ``index``, ``text``, ``start``, ``end``,
    ``score`` (null when not found, with a ``reason`` instead), and with ``words`` a
    list of ``{"text", "start", "end"}``. Seconds to the millisecond.
    """
    segments: list[dict[str, Any]] = []
    for seg in result.segments:
        item: dict[str, Any] = {
            "index": seg.index,
            "text": seg.text,
            "start": None if seg.start is None else round(seg.start, 3),
            "end": None if seg.end is None else round(seg.end, 3),
            "score": _number(seg.score),
        }
        if not seg.found:
            item["reason"] = seg.reason
        if words:
            item["words"] = [{"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3)} for w in seg.words]
        segments.append(item)
    return {
        **extra,
        "language": result.language,
        "duration": round(result.duration, 3),
        "confidence": round(result.confidence, 4),
        "found": len(result.segments) - len(result.not_found),
        "not_found": list(result.not_found),
        "segments": segments,
    }


def _dumps(doc: dict[str, Any]) -> str:
    """JSON with one segment a line: readable, and a line-oriented diff stays small."""
    head = {k: v for k, v in doc.items() if k != "segments"}
    lines = [json.dumps(seg, ensure_ascii=False) for seg in doc["segments"]]
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "segments": [\n' + ",\n".join(lines) + "\n]}"


def write_alignment(
    result: ForcedAlignment, out: Pathlike | None, *, words: bool = False, stdout: IO[str] | None = None, **extra: Any
) -> None:
    """Write ``result`` to ``out`` in the format of its extension (:func:`output_format`).

    VTT and SRT through :meth:`mmalign.subtitles.Subtitles.write`, JSON through
    :func:`mmalign.fileio.atomic_file`: atomically either way. ``out=None`` writes JSON
    to ``stdout`` (default: ``sys.stdout``). ``extra`` goes into the JSON (see
    :func:`alignment_to_json`).

    Raises
    ------
    UsageError
        An output name whose format is unknown.
    OutputError
        The file cannot be written.
    """
    fmt = output_format(out, words=words)
    if out is not None and fmt != "json":
        alignment_to_subtitles(result, format=fmt, words=words).write(out)
        return
    doc = _dumps(alignment_to_json(result, words=words, **extra))
    if out is None:
        stream = stdout or sys.stdout
        stream.write(doc + "\n")
        stream.flush()
        return
    from ..fileio import atomic_file

    with atomic_file(out, "wb") as fh:
        fh.write((doc + "\n").encode("utf-8"))
