"""Synthesised speech with word times: eSpeak NG, in-process.

Text is read aloud by eSpeak NG, loaded with :mod:`ctypes` from the
``espeakng-loader`` wheel (which bundles the library and its data for 100+
languages: no system espeak, no download). The synthesiser's own events give
the time of every word and phoneme, so the synthetic signal is a timed
reading of the text, the reference that forced alignment and word-level sync
compare a recording with.

Synthesis
    synthesize            one text → :class:`Synthesis` (PCM + word and phoneme times)
    synthesize_segments   several texts (cues, transcript lines) → one signal with
                          known segment boundaries

Languages
    languages             eSpeak NG's language codes and voice names
    resolve_language      a code (``en``, ``fr-fr``, ``zh``) → the voice that reads it
    detect_language       the language of a text (``py3langid``), as an eSpeak code

Text
    clean_text            drop what is not read aloud: markup, sound descriptions,
                          speaker labels, dialogue dashes, lyrics lines

Types
    Synthesis, Word, Phoneme, Segment   small frozen dataclasses; times in seconds

Notes
-----
eSpeak NG synthesises at 22050 Hz; the signal is resampled (``soxr``) to ``sr``.
Times come from the synthesiser's sample counter, so they are exact to the
native sample, whatever ``sr`` is. A word starts with its first phoneme and
ends where the next phoneme or pause starts.

Words are the text's tokens: runs of letters, marks and digits (apostrophes,
hyphens and digit separators inside a token keep it whole, so ``l'homme``,
``peut-être`` and ``3.5`` are one word each). In scripts written without spaces
(Chinese, Japanese kana) every character is a token, and a dictionary word that
eSpeak reads as one unit (``你好``) is divided among its characters at its
syllable onsets. Tokens eSpeak does not speak have no :class:`Word`.

eSpeak's state is global and not thread-safe: every call holds one lock, and
the library is loaded and initialised once per process, on first use (importing
this module loads nothing).
"""

from __future__ import annotations

import ctypes
import difflib
import html
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import MmalignError, UsageError

__all__ = [
    "VARIANTS",
    "Phoneme",
    "Segment",
    "Synthesis",
    "Word",
    "clean_text",
    "detect_language",
    "languages",
    "resolve_language",
    "synthesize",
    "synthesize_segments",
]

#: eSpeak NG's native sample rate (Hz).
NATIVE_SR = 22050
#: Default speaking rate, words per minute (eSpeak's own default).
DEFAULT_RATE = 175
_RATE_RANGE = (80, 450)
_SR_RANGE = (4000, 192000)


# ----------------------------------------------------------------------------------------------
# Types


@dataclass(frozen=True)
class Word:
    """One spoken word (token) of the text.

    Attributes
    ----------
    text : str
        The word as written, ``text[char_start:char_end]`` of its segment's text.
    start, end : float
        When it is spoken, seconds from the start of the signal.
    char_start, char_end : int
        Its span in the segment's text (Python string indices, end exclusive).
    segment : int
        Index of its segment (0 for :func:`synthesize`).
    """

    text: str
    start: float
    end: float
    char_start: int
    char_end: int
    segment: int = 0


@dataclass(frozen=True)
class Phoneme:
    """One phoneme, in IPA, with its time and the index of its word in ``Synthesis.words``."""

    name: str
    start: float
    end: float
    word: int


@dataclass(frozen=True)
class Segment:
    """One input text of :func:`synthesize_segments`.

    Attributes
    ----------
    text : str
        The text read.
    start, end : float
        Where its speech lies in the signal (first phoneme start, last phoneme end);
        ``start == end`` for a text with nothing to say.
    words : range
        Indices of its words in ``Synthesis.words``.
    """

    text: str
    start: float
    end: float
    words: range


@dataclass(frozen=True)
class Synthesis:
    """Synthesised speech and its timing.

    Attributes
    ----------
    audio : np.ndarray [shape=(n,), dtype=float32]
        Mono PCM in [-1, 1].
    sr : int
        Sample rate of ``audio``.
    language : str
        The language code it was read in (as given or detected).
    voice : str
        The eSpeak NG voice identifier used (``gmw/en``, ``sit/cmn``).
    words : tuple of Word
        Every spoken word, in order; times increase and do not overlap.
    phonemes : tuple of Phoneme
        Every phoneme (pauses left out), in order.
    segments : tuple of Segment
        One per input text.
    """

    audio: np.ndarray
    sr: int
    language: str
    voice: str
    words: tuple[Word, ...]
    phonemes: tuple[Phoneme, ...]
    segments: tuple[Segment, ...]

    @property
    def duration(self) -> float:
        """Length of ``audio`` in seconds."""
        return len(self.audio) / self.sr

    @property
    def text(self) -> str:
        """The text read (segments joined by newlines)."""
        return "\n".join(s.text for s in self.segments)


# ----------------------------------------------------------------------------------------------
# The engine: ctypes binding of libespeak-ng, loaded once, used under one lock

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PITCH_DEFAULT = 50  # eSpeak's default of both pitch and pitch range (0-100)
_EE_OK = 0


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

# (type, text_position (1-based characters), length, sample (native), phoneme name)
_RawEvent = tuple[int, int, int, int, str]


class _Engine:
    """libespeak-ng, initialised in synchronous mode with IPA phoneme events."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise MmalignError("speech synthesis needs espeakng-loader: pip install espeakng-loader") from exc
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            bundled = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise MmalignError(f"cannot load eSpeak NG from espeakng-loader: {exc}") from exc
        data, self.variant, self.speakers = _steady_data(bundled)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
        # buflength 1000 ms: fewer, larger callbacks
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 1000, data.encode(), options)
        if sr != NATIVE_SR:
            raise MmalignError(f"eSpeak NG did not initialise (returned {sr}) from {data}")
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._events: list[_RawEvent] = []
        self._callback = _CALLBACK(self._on_synth)  # kept referenced: espeak holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: tuple[str, str | None, int, int] | None = None
        self._rate: int | None = None
        self.voices = self._list_voices()

    def _on_synth(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while True:
            ev = events[i]
            kind = ev.type
            if kind == _EVENT_LIST_TERMINATED:
                break
            if kind in (_EVENT_WORD, _EVENT_PHONEME, _EVENT_END):
                name = ev.id.string.decode("utf-8", "ignore") if kind == _EVENT_PHONEME else ""
                self._events.append((kind, ev.text_position, ev.length, ev.sample, name))
            i += 1
        return 0

    def _list_voices(self) -> dict[str, tuple[int, str, str]]:
        """Language code → (priority, voice identifier, voice name); lowest priority wins."""
        table: dict[str, tuple[int, str, str]] = {}
        voices = self._lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            v = voices[i].contents
            name = v.name.decode("utf-8", "replace").strip()
            ident = v.identifier.decode("utf-8", "replace")
            p = v.languages
            while True:
                priority = ctypes.c_ubyte.from_address(p).value
                if priority == 0:
                    break
                code = ctypes.string_at(p + 1)
                p += 2 + len(code)
                key = code.decode("ascii", "replace").lower()
                if key not in table or priority < table[key][0]:
                    table[key] = (priority, ident, name)
            i += 1
        return table

    def synth(
        self,
        text: str,
        voice: str,
        rate: int,
        variant: str | None = None,
        pitch: int | None = None,
        pitch_range: int | None = None,
    ) -> tuple[list[np.ndarray], list[_RawEvent]]:
        """Synthesise ``text``: int16 PCM chunks at 22050 Hz and the raw events. Caller holds the lock.

        ``variant`` is one of :data:`VARIANTS` (its steady copy is loaded); ``pitch`` and
        ``pitch_range`` are eSpeak's 0-100 parameters (``None``: the voice's own, 50).
        """
        shape = (
            _PITCH_DEFAULT if pitch is None else int(pitch),
            _PITCH_DEFAULT if pitch_range is None else int(pitch_range),
        )
        key = (voice, variant, *shape)
        if key != self._voice:
            steady = self.variant if variant is None else self.speakers.get(variant)
            if variant is not None and steady is None:
                raise MmalignError(f"eSpeak NG has no steady copy of its voice variant {variant!r}")
            # pitch and range first, then the voice: a voice loaded before them keeps traces of
            # earlier settings (then the default reading would not be today's, sample for sample)
            self._lib.espeak_SetParameter(_PARAM_PITCH, shape[0], 0)
            self._lib.espeak_SetParameter(_PARAM_RANGE, shape[1], 0)
            name = f"{voice}+{steady}" if steady else voice
            if self._lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
                self._voice = None
                raise MmalignError(f"eSpeak NG cannot load its voice {name!r}")
            self._voice = key
            self._rate = None  # a new voice resets the rate
        if rate != self._rate:
            self._lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            self._rate = rate
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise MmalignError(f"eSpeak NG failed to synthesise (error {err})")
        chunks, events, self._chunks, self._events = self._chunks, self._events, [], []
        return chunks, events


#: eSpeak voice variant without pitch flutter or roughness: eSpeak advances its flutter from a
#: counter that lives as long as the process, so with it the same text would sound (and last) a
#: little different on every call. Flutter 0 makes synthesis a pure function of its input.
_VARIANT = "mmalign-steady"
_VARIANT_TEXT = "language variant\nname mmalign-steady\nflutter 0\nroughness 0\n"

#: eSpeak NG's voice variants that :func:`synthesize` can read with (``variant=``): other
#: speakers (male, female, Klatt-synthesised), each made steady (no flutter, roughness, breath
#: noise or echo: the same call always gives the same samples).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
)  # fmt: skip


def _steady_data(bundled: str) -> tuple[str, str | None, dict[str, str]]:
    """A data folder that is the bundled one plus steady variants: ``(path, variant, speakers)``.

    A private temporary folder of symbolic links to the bundled files (nothing is
    copied or downloaded; it is removed at exit), plus the steady variant and a steady copy
    of each of :data:`VARIANTS` (its own file without flutter, roughness, breath noise or echo,
    whose state eSpeak carries from one call to the next;
    ``speakers`` maps a variant's name to its copy's). Where links cannot be made, the
    bundled folder is used as it is, without the variants: ``(bundled, None, {})``.
    """
    import os
    import shutil
    import tempfile

    from .interrupt import remove_at_exit

    root = tempfile.mkdtemp(prefix="mmalign-espeak-")
    remove_at_exit(root, _LOCK)  # at once: a stop may come while the folder is being filled
    speakers: dict[str, str] = {}
    try:
        for entry in os.scandir(bundled):
            if entry.name != "voices":
                os.symlink(entry.path, os.path.join(root, entry.name))
        for sub in os.scandir(os.path.join(bundled, "voices")):
            target = os.path.join(root, "voices", sub.name)
            os.makedirs(target)
            for f in os.scandir(sub.path):
                os.symlink(f.path, os.path.join(target, f.name))
        variants = os.path.join(root, "voices", "!v")
        os.makedirs(variants, exist_ok=True)
        with open(os.path.join(variants, _VARIANT), "w", encoding="ascii") as fh:
            fh.write(_VARIANT_TEXT)
        for name in VARIANTS:
            try:
                with open(os.path.join(bundled, "voices", "!v", name), encoding="utf-8") as fh:
                    lines = fh.read().splitlines()
            except OSError:
                continue
            drop = ("name", "flutter", "roughness", "breath", "breathw", "echo")
            keep = [ln for ln in lines if (ln.split() or [""])[0] not in drop]
            steady = f"{_VARIANT}-{name}"
            with open(os.path.join(variants, steady), "w", encoding="utf-8") as fh:
                fh.write("\n".join([*keep, f"name {steady}", "flutter 0", "roughness 0", ""]))
            speakers[name] = steady
    except OSError:
        shutil.rmtree(root, ignore_errors=True)
        return bundled, None, {}
    return root, _VARIANT, speakers


_LOCK = threading.RLock()
_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    """The process's engine, created on first use. Caller holds ``_LOCK``."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


# ----------------------------------------------------------------------------------------------
# Languages


def languages() -> dict[str, str]:
    """eSpeak NG's languages.

    Returns
    -------
    dict of str to str
        Language code (lower case, as eSpeak spells it: ``en``, ``en-us``, ``fr``,
        ``cmn``, ``zh``) → name of the voice that reads it (``English (Great Britain)``).
        Where several voices claim a code, the one eSpeak prefers reads it.

    Examples
    --------
    >>> langs = languages()
    >>> langs["fr"]
    'French (France)'
    """
    with _LOCK:
        voices = _engine().voices
    return {code: name for code, (_, _, name) in sorted(voices.items())}


def _normalise_code(language: str) -> str:
    return language.strip().lower().replace("_", "-")


def resolve_language(language: str) -> str:
    """The eSpeak NG voice that reads ``language``.

    Parameters
    ----------
    language : str
        A language code as eSpeak or ISO 639 spell it, any case, ``-`` or ``_``
        (``en``, ``en-US``, ``pt_BR``, ``zh``, ``cmn``). A regional code eSpeak
        lacks falls back to its language (``de-at`` → ``de``).

    Returns
    -------
    str
        The voice identifier (``gmw/en-US``).

    Raises
    ------
    UsageError
        If eSpeak has no voice for it; the message names the parameter ``language``
        (``{language}``, see :class:`mmalign.errors.MmalignError`) and suggests close codes.
    """
    if not isinstance(language, str) or not language.strip():
        raise UsageError(f"{{language}} must be a language code such as 'en', not {language!r}", names=["language"])
    code = _normalise_code(language)
    with _LOCK:
        voices = _engine().voices
    if code in voices:
        return voices[code][1]
    base = code.split("-")[0]
    if base in voices:
        return voices[base][1]
    hints = list(dict.fromkeys(_close_codes(code, voices)))[:4]
    hint = f" (close: {', '.join(hints)})" if hints else ""
    raise UsageError(
        f"{{language}} {language!r} is not a language eSpeak NG speaks{hint}; `mmalign.speech.languages()` lists them",
        names=["language"],
    )


def _close_codes(code: str, voices: dict[str, tuple[int, str, str]]) -> list[str]:
    """Codes a person may have meant: a shorter code it starts with (``eng`` → ``en``),
    voices whose name starts with it (``english``), then spelling neighbours."""

    def plain_first(codes):
        return sorted(codes, key=lambda c: ("-" in c, len(c), c))

    prefix = plain_first(c for c in voices if len(c) >= 2 and "-" not in c and code.startswith(c))
    named = plain_first(c for c, (_, _, name) in voices.items() if len(code) >= 3 and name.lower().startswith(code))
    close = difflib.get_close_matches(code, list(voices), n=4, cutoff=0.5)
    return prefix + named + close


def detect_language(text: str) -> str:
    """Detect the language of ``text``, among those eSpeak NG speaks.

    Uses ``py3langid`` (imported on first use) and returns its best guess that
    eSpeak has a voice for. Short texts (a cue or two) are unreliable: detect on
    a whole transcript, or pass the language.

    Parameters
    ----------
    text : str
        The text, ideally a sentence or more.

    Returns
    -------
    str
        A code :func:`resolve_language` accepts (ISO 639-1 where it exists: ``en``,
        ``fr``, ``zh``).

    Raises
    ------
    UsageError
        If ``text`` has no letters to judge by, or no candidate is spoken by eSpeak.
    """
    if not isinstance(text, str):
        raise UsageError(f"text must be a str, not {type(text).__name__}")
    if not any(unicodedata.category(c)[0] == "L" for c in text):
        raise UsageError("cannot detect the language of a text without letters; pass {language}", names=["language"])
    import py3langid

    with _LOCK:
        voices = _engine().voices
    for code, _score in py3langid.rank(text):
        code = _normalise_code(code)
        if code in voices or code.split("-")[0] in voices:
            return code
    raise UsageError(  # pragma: no cover
        "the detected language is not one eSpeak NG speaks; pass {language}", names=["language"]
    )


# ----------------------------------------------------------------------------------------------
# Text cleanup

_ASS_BLOCK = re.compile(r"\{[^{}]*\}")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d{1,2}:\d{2}(?::\d{2})?[.,]\d{1,3}>")
_ASS_BREAK = re.compile(r"\\[Nnh]")
_BRACKETED = re.compile(r"\[[^\[\]]*\]|\([^()]*\)|（[^（）]*）|【[^【】]*】|［[^［］]*］")
_LYRICS = re.compile(r"[♪♫♬♩]|^\s*#|#\s*$")
_DASH = re.compile(r"^\s*[-‐‑–—―]+\s*")
_LABEL = re.compile(r"^\s*([^\W\d_][^:：\n]{0,29})[:：](?=\s|$)")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


def _is_label(label: str) -> bool:
    """A speaker label: upper case letters (digits, spaces, ``.'-`` allowed), at most 4 words."""
    letters = [c for c in label if c.isalpha()]
    return len(letters) >= 2 and label.isupper() and len(label.split()) <= 4 and not re.search(r"[,;!?]", label)


def clean_text(text: str) -> str:
    """Keep only what is read aloud.

    Removes, in order: ASS override blocks (``{\\an8}``, ``{\\i1}``) and line breaks
    (``\\N``), HTML/WebVTT tags (``<i>``, ``<font ...>``, ``<v Bob>``, inline
    timestamps), HTML entities (decoded), lyrics lines (any line with ``♪``/``♫``
    or a ``#`` at either end), sound descriptions in brackets or parentheses
    (``[door slams]``, ``(laughs)``, full-width ones too), speaker labels in
    capitals at the start of a line (``JOHN:``, ``MAN 2:``), dialogue dashes at
    the start of a line. Lines are joined with single spaces.

    Parameters
    ----------
    text : str
        Cue or transcript text.

    Returns
    -------
    str
        The text to read, stripped; empty if nothing is said (a music-only cue).

    Examples
    --------
    >>> clean_text("- JOHN: <i>Look out!</i> [door slams]\\n- (gasps) What?")
    'Look out! What?'
    """
    if not isinstance(text, str):
        raise UsageError(f"text must be a str, not {type(text).__name__}")
    text = _ASS_BLOCK.sub("", text)
    text = _ASS_BREAK.sub(lambda m: "\n" if m.group(0)[1] in "Nn" else " ", text)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    kept = []
    for line in text.splitlines():
        if _LYRICS.search(line):
            continue
        line = _BRACKETED.sub(" ", _BRACKETED.sub(" ", line))  # twice: one level of nesting
        line = _DASH.sub("", line)
        m = _LABEL.match(line)
        if m and _is_label(m.group(1)):
            line = line[m.end() :]
        line = _DASH.sub("", line)
        line = _SPACES.sub(" ", line).strip()
        if any(unicodedata.category(c)[0] in "LN" for c in line):
            kept.append(line)
    return " ".join(kept)


# ----------------------------------------------------------------------------------------------
# Tokens: the words of a text, and which of them eSpeak speaks when


def _is_ideograph(c: str) -> bool:
    """A character that is a word of its own: Han ideographs, kana, CJK compatibility."""
    o = ord(c)
    return (
        0x3040 <= o <= 0x30FF  # hiragana, katakana
        or 0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF
        or 0xF900 <= o <= 0xFAFF
        or 0x20000 <= o <= 0x3FFFF
    )


def _is_word_char(c: str) -> bool:
    return unicodedata.category(c)[0] in "LMN" and not _is_ideograph(c)


_JOINERS = "'’-‐"
_NUMBER_JOINERS = ".,:"


def _tokens(text: str) -> list[tuple[int, int]]:
    """Spans of the words of ``text``: letter/mark/digit runs (with inner joiners), or one ideograph."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if _is_ideograph(c):
            spans.append((i, i + 1))
            i += 1
            continue
        if not _is_word_char(c):
            i += 1
            continue
        j = i + 1
        while j < n:
            if _is_word_char(text[j]):
                j += 1
            elif (
                j + 1 < n
                and _is_word_char(text[j + 1])
                and (
                    text[j] in _JOINERS
                    or (text[j] in _NUMBER_JOINERS and text[j - 1].isdigit() and text[j + 1].isdigit())
                )
            ):
                j += 2
            else:
                break
        spans.append((i, j))
        i = j
    return spans


_IPA_VOWELS = set("aeiouyæøœɶɐɑɒɔəɘɵɛɜɞɤɪʊʌɯɨʉʏɚɝ")
_IPA_SKIP = set("ˈˌːˑ'ʰʲʷ")


def _is_nucleus(name: str) -> bool:
    """Whether an IPA phoneme is a syllable nucleus (a vowel or a syllabic consonant)."""
    if "\u0329" in name or "\u030d" in name:
        return True
    for c in name:
        if c in _IPA_SKIP:
            continue
        return unicodedata.normalize("NFD", c)[0] in _IPA_VOWELS
    return False


@dataclass
class _Group:
    """Tokens eSpeak read as one unit, with its phonemes (native samples, pauses kept)."""

    tokens: list[tuple[int, int]]
    event_sample: int
    phonemes: list[tuple[str, int, int]]  # (name, start, end)


def _timed_words(
    text: str, events: list[_RawEvent], total: int
) -> list[tuple[tuple[int, int], int, int, list[tuple[str, int, int]]]]:
    """Words of ``text`` with native-sample times and phonemes, from eSpeak's events.

    Returns ``[(span, start, end, phonemes)]`` in order, times in native samples.
    """
    tokens = _tokens(text)
    starts = [s for s, _ in tokens]

    # every phoneme event (pauses included) ends where the next one, or the message, ends
    bounds = [ev[3] for ev in events if ev[0] == _EVENT_PHONEME] + [total]
    ends = iter(bounds[1:])

    def token_at(pos: int) -> int | None:
        k = int(np.searchsorted(starts, pos, side="right")) - 1
        return k if k >= 0 and tokens[k][0] <= pos < tokens[k][1] else None

    groups: list[_Group] = []
    by_token: dict[int, _Group] = {}
    current: _Group | None = None
    for kind, position, length, sample, name in events:
        if kind == _EVENT_WORD:
            pos = position - 1
            k = token_at(pos)
            if k is not None:
                group = by_token.get(k)
                if group is None:
                    group = _Group([tokens[k]], sample, [])
                    by_token[k] = group
                    groups.append(group)
            else:
                # a spoken symbol outside any token ("%", "&"): joins a token it touches, or stands alone
                piece = text[max(pos, 0) : max(pos, 0) + max(length, 1)].strip()
                prev = token_at(pos - 1) if pos > 0 else None
                if prev is not None and prev in by_token:
                    group = by_token[prev]
                    s, _ = group.tokens[-1]
                    group.tokens[-1] = (s, max(group.tokens[-1][1], pos + len(piece)))
                elif piece:
                    group = _Group([(pos, pos + len(piece))], sample, [])
                    groups.append(group)
                else:
                    group = current
            current = group
        elif kind == _EVENT_PHONEME:
            end = next(ends)
            if current is None:
                if not groups:
                    continue  # leading pause before the first word
                current = groups[0]
            current.phonemes.append((name, sample, end))

    # ideographs eSpeak read inside a dictionary word (你好 → one event) join that word
    hit = set(by_token)
    for k, group in list(by_token.items()):
        j = k + 1
        if not _is_ideograph(text[tokens[k][0]]):
            continue
        while j < len(tokens) and j not in hit and _is_ideograph(text[tokens[j][0]]):
            if tokens[j][0] != tokens[j - 1][1]:
                break  # spaced apart: not one word
            group.tokens.append(tokens[j])
            hit.add(j)
            j += 1

    words = []
    for group in groups:
        spoken = [p for p in group.phonemes if p[0]]
        if spoken:
            start, end = spoken[0][1], spoken[-1][2]
        else:
            start = end = group.event_sample
        if len(group.tokens) == 1:
            words.append((group.tokens[0], start, end, spoken))
            continue
        for span, ((s, e), phon) in zip(group.tokens, _split_syllables(spoken, len(group.tokens), start, end)):
            words.append((span, s, e, phon))
    words.sort(key=lambda w: w[0][0])
    return words


def _split_syllables(
    phonemes: list[tuple[str, int, int]], k: int, start: int, end: int
) -> list[tuple[tuple[int, int], list[tuple[str, int, int]]]]:
    """Divide one unit's phonemes among ``k`` characters, at syllable onsets.

    With exactly ``k`` nuclei (vowel runs), each syllable starts at the consonant
    just before its nucleus (Mandarin onsets are single phonemes); otherwise the
    span is divided evenly in time.
    """
    nuclei: list[list[int]] = []
    for i, (name, _, _) in enumerate(phonemes):
        if _is_nucleus(name) and not (i > 0 and nuclei and nuclei[-1][1] == i - 1):
            nuclei.append([i, i])
        elif _is_nucleus(name):
            nuclei[-1][1] = i
    if len(nuclei) == k:
        cuts = [0]
        for (first, _), (_, prev_last) in zip(nuclei[1:], nuclei[:-1]):
            cuts.append(first - 1 if first - 1 > prev_last else first)
        cuts.append(len(phonemes))
        out = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            part = phonemes[a:b]
            out.append(((part[0][1], part[-1][2]), part))
        return out
    edges = np.linspace(start, end, k + 1).round().astype(int)
    return [((int(a), int(b)), [p for p in phonemes if a <= p[1] < b]) for a, b in zip(edges[:-1], edges[1:])]


# ----------------------------------------------------------------------------------------------
# Synthesis


def _check_options(rate: int, sr: int) -> None:
    lo, hi = _RATE_RANGE
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not lo <= rate <= hi:
        raise UsageError(f"rate must be an integer from {lo} to {hi} words a minute, not {rate!r}")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or not _SR_RANGE[0] <= sr <= _SR_RANGE[1]:
        raise UsageError(f"sr must be an integer sample rate from {_SR_RANGE[0]} to {_SR_RANGE[1]} Hz, not {sr!r}")


def _check_speaker(variant: str | None, pitch: int | None, pitch_range: int | None) -> None:
    if variant is not None and variant not in VARIANTS:
        raise UsageError(f"{{variant}} must be one of {', '.join(VARIANTS)}, not {variant!r}", names=["variant"])
    for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 100
        ):
            raise UsageError(f"{{{name}}} must be an integer from 0 to 100, not {value!r}", names=[name])


def _language_of(language: str | None, texts: Sequence[str]) -> str:
    if language is None:
        return detect_language(" ".join(texts))
    if not isinstance(language, str):
        raise UsageError(f"{{language}} must be a language code such as 'en', not {language!r}", names=["language"])
    return language


class _Output:
    """The signal, built piece by piece: int16 at 22050 Hz in, float32 at ``sr`` out.

    Pieces are resampled as they come (a ``soxr`` stream), so memory holds the output once
    plus one piece, never the whole signal at the native rate. The stream runs in float32:
    with int16 output soxr dithers, from a seed it does not always set (valgrind traced
    uninitialised bytes in its output), and about one utterance in 64 came out different
    from one process to the next.
    """

    def __init__(self, sr: int) -> None:
        self.sr = sr
        self.native = 0  # native samples written
        self._parts: list[np.ndarray] = []
        self._stream = None
        if sr != NATIVE_SR:
            import soxr

            self._stream = soxr.ResampleStream(NATIVE_SR, sr, 1, dtype="float32", quality="HQ")

    def write(self, pcm: np.ndarray) -> None:
        self.native += len(pcm)
        if len(pcm):
            y = pcm.astype(np.float32) * np.float32(1.0 / 32768.0)
            self._parts.append(self._stream.resample_chunk(y) if self._stream is not None else y)

    def audio(self) -> np.ndarray:
        if self._stream is not None and self.native:
            self._parts.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
        out = np.empty(sum(len(p) for p in self._parts), np.float32)
        i = 0
        self._parts.reverse()
        while self._parts:  # each piece freed as it is copied: the output once, plus a piece
            part = self._parts.pop()
            out[i : i + len(part)] = part
            i += len(part)
        return out


def _slices(chunks: list[np.ndarray], lo: int, hi: int):
    """The samples ``lo:hi`` of the concatenation of ``chunks``, chunk by chunk."""
    at = 0
    for chunk in chunks:
        a, b = max(lo - at, 0), min(hi - at, len(chunk))
        if a < b:
            yield chunk[a:b]
        at += len(chunk)


def synthesize(
    text: str,
    *,
    language: str | None = None,
    rate: int = DEFAULT_RATE,
    sr: int = 16000,
    variant: str | None = None,
    pitch: int | None = None,
    pitch_range: int | None = None,
) -> Synthesis:
    """Read ``text`` aloud with eSpeak NG and time its words.

    The text is read as given: clean cue text first with :func:`clean_text`.

    Parameters
    ----------
    text : str
        What to say. Empty (or unspeakable) text gives empty audio and no words.
    language : str or None
        Language code (see :func:`languages`); ``None`` detects it from the text
        (:func:`detect_language`).
    rate : int
        Speaking rate in words a minute, 80 to 450.
    sr : int
        Sample rate of the returned audio (resampled from eSpeak's 22050 Hz).
    variant : str or None
        Another speaker: one of :data:`VARIANTS` (eSpeak's voice variants ``m1`` .. ``m7``,
        ``f1`` .. ``f5``, ``klatt``, ...); ``None`` keeps the language's own voice.
    pitch, pitch_range : int or None
        eSpeak's base pitch and pitch range, 0 to 100; ``None`` keeps the voice's own (50).
        The defaults of these three give exactly the reading of earlier versions.

    Returns
    -------
    Synthesis
        ``audio`` (float32, ``sr``), one :class:`Word` per spoken word with times in
        seconds from the start of ``audio`` and character spans in ``text``, the
        phonemes, and one :class:`Segment`.

    Raises
    ------
    UsageError
        On an unknown ``language`` (the message names it as ``{language}``), a bad ``rate``,
        ``sr``, ``variant``, ``pitch`` or ``pitch_range``, or text that is not a str.

    See Also
    --------
    synthesize_segments : several texts into one signal.

    Examples
    --------
    >>> syn = synthesize("Hello world.", language="en")
    >>> [w.text for w in syn.words]
    ['Hello', 'world']
    """
    if not isinstance(text, str):
        raise UsageError(f"text must be a str, not {type(text).__name__}")
    return _synthesize(
        [text], language=language, rate=rate, sr=sr, gap=None, variant=variant, pitch=pitch, pitch_range=pitch_range
    )


def synthesize_segments(
    texts: Sequence[str],
    *,
    language: str | None = None,
    rate: int = DEFAULT_RATE,
    sr: int = 16000,
    gap: float = 0.2,
) -> Synthesis:
    """Read several texts (cues, transcript lines) into one signal with known boundaries.

    Each text is synthesised by one eSpeak call, cut to its speech (first phoneme
    to last), and the pieces are joined with ``gap`` seconds of silence between
    them. A text with nothing to say adds no audio and no gap; its segment has
    ``start == end``.

    Parameters
    ----------
    texts : sequence of str
        The texts, in order.
    language : str or None
        Language code; ``None`` detects it from all texts together.
    rate : int
        Speaking rate in words a minute, 80 to 450.
    sr : int
        Sample rate of the returned audio.
    gap : float >= 0
        Seconds of silence between consecutive spoken segments.

    Returns
    -------
    Synthesis
        With one :class:`Segment` per text; each word's ``segment`` says which, and
        its ``char_start``/``char_end`` index that segment's text.

    Raises
    ------
    UsageError
        On an unknown ``language``, a bad ``rate``, ``sr`` or ``gap``, or texts that
        are not a sequence of str.
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise UsageError("texts must be a sequence of str (one per segment)")
    if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not np.isfinite(gap) or gap < 0:
        raise UsageError(f"gap must be a number of seconds >= 0, not {gap!r}")
    return _synthesize(list(texts), language=language, rate=rate, sr=sr, gap=float(gap))


def _synthesize(
    texts: list[str],
    *,
    language: str | None,
    rate: int,
    sr: int,
    gap: float | None,
    variant: str | None = None,
    pitch: int | None = None,
    pitch_range: int | None = None,
) -> Synthesis:
    """Synthesise ``texts``; ``gap=None`` keeps eSpeak's whole output (one text only)."""
    _check_options(rate, sr)
    _check_speaker(variant, pitch, pitch_range)
    if language is None and not any(t.strip() for t in texts):
        language = "en"  # nothing to say: no language to detect
    language = _language_of(language, texts)
    voice = resolve_language(language)
    native = NATIVE_SR
    output = _Output(int(sr))
    words: list[Word] = []
    phonemes: list[Phoneme] = []
    segments: list[Segment] = []
    cursor = 0  # native samples
    spoken_before = False
    for index, text in enumerate(texts):
        if text.strip():
            with _LOCK:
                chunks, events = _engine().synth(text, voice, int(rate), variant, pitch, pitch_range)
            length = sum(len(c) for c in chunks)
            timed = _timed_words(text, events, length)
        else:
            chunks, length, timed = [], 0, []
        if gap is None:
            lo, hi = 0, length
        elif timed:
            lo, hi = timed[0][1], max(t[2] for t in timed)
        else:
            lo = hi = 0
        if gap is not None and hi > lo:
            if spoken_before:
                silence = int(round(gap * native))
                output.write(np.zeros(silence, np.int16))
                cursor += silence
            spoken_before = True
        shift = cursor - lo
        first = len(words)
        for (cs, ce), s, e, phon in timed:
            w = len(words)
            words.append(Word(text[cs:ce], (s + shift) / native, (e + shift) / native, cs, ce, index))
            phonemes.extend(Phoneme(name, (ps + shift) / native, (pe + shift) / native, w) for name, ps, pe in phon)
        if timed:
            seg_start = (timed[0][1] + shift) / native
            seg_end = (max(t[2] for t in timed) + shift) / native
        else:
            seg_start = seg_end = cursor / native
        segments.append(Segment(text, seg_start, seg_end, range(first, len(words))))
        for piece in _slices(chunks, lo, hi):
            output.write(piece)
        del chunks
        cursor += hi - lo
    return Synthesis(
        audio=output.audio(),
        sr=int(sr),
        language=language,
        voice=voice,
        words=tuple(words),
        phonemes=tuple(phonemes),
        segments=tuple(segments),
    )
