"""Held-out forced-alignment cases: synthesised speech unlike the aligner's own reading.

The real-speech corpus has five clips; tuning the forced aligner to them alone would
fit those clips. These cases are material it was not tuned on: transcripts in eight
languages read by eSpeak NG through the public speech API (:mod:`mmalign.speech`) in
*other* voices where eSpeak has them (``en-us``, ``fr-be``, ``pt-br``, ``es-419``), at
other rates (each segment its own), then made unlike a clean reading:

- a reading that is not even: the tempo changes every 0.3–1 s (0.7–1.45×, a phase
  vocoder), and some segments get a pause or a hesitation (``um``, ``euh``) between two
  words;
- a speaker change: the signal replayed 0.85–1.15× faster or slower (pitch and formants
  move together, as from a child's or a deep voice; times scale with it);
- pauses of 0–2.5 s between segments, sometimes untranscribed talk there (another
  text in the same language) or before the first segment;
- a lead-in before any speech: silence, noise, a music-like jingle or talk;
- a room (exponentially decaying noise as impulse response), a microphone's tilt or a
  telephone band, noise at 5–30 dB below the speech, and sometimes music under it.

Every case is made from a seed, so it is the same on every run. The truth is eSpeak's
own segment and word start times, carried through the edits.

Run from the repository root: ``python benchmarks/_heldout.py`` (prints per case and
overall; ``benchmarks/forced_alignment.py`` prints the overall line too).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import make_filler  # noqa: E402

SR = 16000

TEXTS = {
    "en": [
        "The library opens at nine o'clock every morning except on Sundays.",
        "Last summer we drove along the coast and stopped in every small harbour.",
        "Nobody expected the committee to reach a decision before the end of the year.",
        "If you want good bread, you have to let the dough rise slowly overnight.",
        "The old bridge was closed for repairs, so the buses took a much longer route.",
        "She wrote three letters to the newspaper, but none of them was ever printed.",
        "Our neighbours keep bees in the garden and sell the honey at the market.",
        "After the storm, the river rose quickly and flooded the fields near the village.",
    ],
    "fr": [
        "La bibliothèque ouvre ses portes à neuf heures tous les matins sauf le dimanche.",
        "L'été dernier, nous avons longé la côte en nous arrêtant dans chaque petit port.",
        "Personne ne pensait que le comité prendrait une décision avant la fin de l'année.",
        "Pour faire du bon pain, il faut laisser la pâte lever lentement pendant la nuit.",
        "Le vieux pont était fermé pour travaux, alors les bus ont fait un long détour.",
        "Elle a écrit trois lettres au journal, mais aucune n'a jamais été publiée.",
        "Nos voisins élèvent des abeilles au jardin et vendent le miel au marché.",
        "Après l'orage, la rivière est montée très vite et a inondé les champs du village.",
    ],
    "de": [
        "Die Bibliothek öffnet jeden Morgen um neun Uhr, außer am Sonntag.",
        "Letzten Sommer sind wir an der Küste entlang gefahren und haben in jedem Hafen angehalten.",
        "Niemand hatte erwartet, dass der Ausschuss noch vor dem Jahresende entscheidet.",
        "Für gutes Brot muss der Teig über Nacht langsam gehen.",
        "Die alte Brücke war wegen Bauarbeiten gesperrt, deshalb fuhren die Busse einen Umweg.",
        "Sie schrieb drei Briefe an die Zeitung, aber keiner wurde jemals gedruckt.",
        "Unsere Nachbarn halten Bienen im Garten und verkaufen den Honig auf dem Markt.",
        "Nach dem Sturm stieg der Fluss schnell an und überschwemmte die Felder am Dorf.",
    ],
    "es": [
        "La biblioteca abre a las nueve de la mañana todos los días excepto el domingo.",
        "El verano pasado recorrimos la costa y paramos en cada pequeño puerto.",
        "Nadie esperaba que el comité tomara una decisión antes de fin de año.",
        "Para hacer buen pan hay que dejar que la masa suba despacio durante la noche.",
        "El puente viejo estaba cerrado por obras, así que los autobuses dieron un rodeo.",
        "Escribió tres cartas al periódico, pero ninguna se publicó jamás.",
        "Nuestros vecinos tienen abejas en el jardín y venden la miel en el mercado.",
        "Después de la tormenta, el río creció rápido e inundó los campos del pueblo.",
    ],
    "it": [
        "La biblioteca apre alle nove ogni mattina, tranne la domenica.",
        "L'estate scorsa abbiamo percorso la costa fermandoci in ogni piccolo porto.",
        "Nessuno si aspettava che il comitato decidesse prima della fine dell'anno.",
        "Per fare un buon pane bisogna lasciare lievitare l'impasto lentamente per tutta la notte.",
        "Il vecchio ponte era chiuso per lavori, quindi gli autobus hanno fatto un lungo giro.",
        "Ha scritto tre lettere al giornale, ma nessuna è mai stata pubblicata.",
        "I nostri vicini allevano api in giardino e vendono il miele al mercato.",
        "Dopo il temporale il fiume è salito in fretta e ha allagato i campi vicino al paese.",
    ],
    "nl": [
        "De bibliotheek gaat elke ochtend om negen uur open, behalve op zondag.",
        "Vorige zomer reden we langs de kust en stopten we in elke kleine haven.",
        "Niemand had verwacht dat de commissie voor het einde van het jaar zou beslissen.",
        "Voor goed brood moet je het deeg de hele nacht langzaam laten rijzen.",
        "De oude brug was dicht voor herstelwerk, dus de bussen reden een heel eind om.",
        "Ze schreef drie brieven aan de krant, maar geen enkele werd ooit geplaatst.",
        "Onze buren houden bijen in de tuin en verkopen de honing op de markt.",
        "Na de storm steeg de rivier snel en liepen de velden bij het dorp onder water.",
    ],
    "pt": [
        "A biblioteca abre às nove horas todas as manhãs, exceto ao domingo.",
        "No verão passado percorremos a costa e parámos em cada pequeno porto.",
        "Ninguém esperava que a comissão tomasse uma decisão antes do fim do ano.",
        "Para fazer um bom pão é preciso deixar a massa crescer devagar durante a noite.",
        "A ponte velha estava fechada para obras, por isso os autocarros fizeram um desvio.",
        "Ela escreveu três cartas ao jornal, mas nenhuma foi alguma vez publicada.",
        "Os nossos vizinhos têm abelhas no jardim e vendem o mel no mercado.",
        "Depois da tempestade, o rio subiu depressa e inundou os campos perto da aldeia.",
    ],
    "pl": [
        "Biblioteka jest otwarta codziennie od dziewiątej rano, oprócz niedzieli.",
        "Zeszłego lata jechaliśmy wzdłuż wybrzeża i zatrzymywaliśmy się w każdym porcie.",
        "Nikt się nie spodziewał, że komisja podejmie decyzję przed końcem roku.",
        "Żeby upiec dobry chleb, ciasto musi rosnąć powoli przez całą noc.",
        "Stary most był zamknięty z powodu remontu, więc autobusy jechały objazdem.",
        "Napisała trzy listy do gazety, ale żaden nie został wydrukowany.",
        "Nasi sąsiedzi trzymają pszczoły w ogrodzie i sprzedają miód na targu.",
        "Po burzy rzeka szybko wezbrała i zalała pola koło wsi.",
    ],
}

# the voice a case is read in: another variant of the language where eSpeak has one
VOICES = {"en": "en-us", "fr": "fr-be", "pt": "pt-br", "es": "es-419"}


@dataclass
class Case:
    """One held-out recording, its transcript and the true times."""

    name: str
    y: np.ndarray  # float32 at SR
    language: str  # what the aligner is told
    texts: list[str]
    starts: list[float]  # true segment starts, seconds
    word_starts: list[list[float]]  # per segment


def _read(text: str, voice: str, rate: int) -> tuple[np.ndarray, list[float], float]:
    """Speech of ``text``: samples, word starts and the last word's end (seconds)."""
    from mmalign import speech

    syn = speech.synthesize_segments([text], language=voice, rate=rate, sr=SR)
    return syn.audio, [w.start for w in syn.words], max(w.end for w in syn.words)


FILLERS = {"en": "um", "fr": "euh", "de": "äh", "es": "eh", "it": "ehm", "nl": "uh", "pt": "é", "pl": "yyy", "zh": "嗯"}


def _uneven(audio: np.ndarray, ws: list[float], rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    """Tempo changing every 0.3–1 s (a phase vocoder per piece); word times carried along."""
    import librosa

    cuts = [0]
    while cuts[-1] < len(audio):
        cuts.append(min(len(audio), cuts[-1] + int(rng.uniform(0.3, 1.0) * SR)))
    out, new_cuts, rates = [], [0], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        r = float(np.exp(rng.uniform(np.log(0.7), np.log(1.45))))
        piece = librosa.effects.time_stretch(audio[a:b], rate=r, n_fft=512) if b - a > 2048 else audio[a:b]
        if b - a <= 2048:
            r = 1.0
        out.append(piece)
        rates.append((b - a) / max(len(piece), 1))
        new_cuts.append(new_cuts[-1] + len(piece))
    times = []
    for w in ws:
        n = w * SR
        k = min(int(np.searchsorted(cuts, n, side="right")) - 1, len(rates) - 1)
        times.append((new_cuts[k] + (n - cuts[k]) / rates[k]) / SR)
    return np.concatenate(out).astype(np.float32), times


def _hesitate(
    audio: np.ndarray, ws: list[float], voice: str, language: str, rng: np.random.Generator
) -> tuple[np.ndarray, list[float]]:
    """A pause, or a hesitation sound and a pause, before one word inside the segment."""
    if len(ws) < 4:
        return audio, ws
    k = int(rng.integers(2, len(ws) - 1))
    at = int(ws[k] * SR) - int(0.03 * SR)
    insert = [np.zeros(int(rng.uniform(0.15, 0.8) * SR), np.float32)]
    if rng.uniform() < 0.5:
        um, _, _ = _read(FILLERS[language], voice, int(rng.integers(90, 140)))
        insert += [um * 0.7, np.zeros(int(rng.uniform(0.05, 0.4) * SR), np.float32)]
    extra = sum(len(x) for x in insert)
    y = np.concatenate([audio[:at], *insert, audio[at:]])
    return y, [w if j < k else w + extra / SR for j, w in enumerate(ws)]


def _room(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.15, 0.5)
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.25
    ir[0] = 1.0
    from scipy.signal import fftconvolve

    return fftconvolve(y, ir)[: len(y)].astype(np.float32)


def _colour(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    kind = rng.integers(3)
    if kind == 0:  # telephone band
        sos = butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")
    elif kind == 1:  # thin microphone
        sos = butter(2, rng.uniform(150, 400), btype="highpass", fs=SR, output="sos")
    else:  # dull room
        sos = butter(2, rng.uniform(2500, 5000), btype="lowpass", fs=SR, output="sos")
    return sosfilt(sos, y).astype(np.float32)


def _level(y: np.ndarray) -> float:
    hop = SR // 20
    n = len(y) // hop
    fr = np.sqrt(np.mean(y[: n * hop].reshape(n, hop) ** 2, axis=1))
    return float(np.percentile(fr, 90) + 1e-9)


def make_case(index: int, language: str) -> Case:
    """The held-out case ``index``, in ``language``; the same for the same arguments."""
    rng = np.random.default_rng(1000 + index)
    voice = VOICES.get(language, language)
    pool = TEXTS[language]
    order = rng.permutation(len(pool))
    n_seg = int(rng.integers(4, 7))
    texts = [pool[k] for k in order[:n_seg]]
    spare = [pool[k] for k in order[n_seg:]]  # untranscribed talk
    base = int(rng.integers(130, 240))
    pieces: list[np.ndarray] = []
    at = 0
    starts: list[float] = []
    words: list[list[float]] = []

    def add(x: np.ndarray) -> None:
        nonlocal at
        pieces.append(x.astype(np.float32))
        at += len(x)

    lead = ["none", "silence", "noise", "jingle", "talk"][index % 5]
    level = 0.1
    if lead == "silence":
        add(np.zeros(int(rng.uniform(0.5, 3) * SR)))
    elif lead == "noise":
        add(make_filler("noise", rng.uniform(2, 8), rng, level, sr=SR))
    elif lead == "jingle":
        add(make_filler("chords", rng.uniform(5, 25), rng, level, sr=SR))
    elif lead == "talk":
        audio, _, _ = _read(spare[0], voice, int(rng.integers(130, 240)))
        add(audio / (_level(audio) + 1e-9) * level)
    for k, text in enumerate(texts):
        if k:
            add(np.zeros(int(rng.uniform(0.0, 2.5) * SR)))
            if spare and rng.uniform() < 0.15:  # a sentence nobody transcribed
                audio, _, _ = _read(spare[-1], voice, base)
                add(audio / (_level(audio) + 1e-9) * level)
                add(np.zeros(int(rng.uniform(0.2, 1.0) * SR)))
        rate = int(np.clip(base * rng.uniform(0.85, 1.15), 80, 450))
        audio, ws, _ = _read(text, voice, rate)
        if rng.uniform() < 0.4:
            audio, ws = _hesitate(audio, ws, voice, language, rng)
        audio, ws = _uneven(audio, ws, rng)
        audio = audio / (_level(audio) + 1e-9) * level
        starts.append((at + ws[0] * SR) / SR)
        words.append([(at + w * SR) / SR for w in ws])
        add(audio)
    add(np.zeros(int(rng.uniform(0.3, 2) * SR)))
    y = np.concatenate(pieces)

    # a speaker change: replayed at another speed (pitch, formants and times together)
    speed = float(rng.uniform(0.85, 1.15))
    import soxr

    y = soxr.resample(y, SR * speed, SR).astype(np.float32)
    starts = [s / speed for s in starts]
    words = [[w / speed for w in ws] for ws in words]

    if rng.uniform() < 0.7:
        y = _room(y, rng)
    if rng.uniform() < 0.7:
        y = _colour(y, rng)
    if rng.uniform() < 0.25:  # music under the speech
        y = y + make_filler("chords", len(y) / SR, rng, _level(y) * 10 ** (-rng.uniform(12, 20) / 20), sr=SR)
    snr = rng.uniform(5, 30)
    y = y + (rng.standard_normal(len(y)) * _level(y) * 10 ** (-snr / 20)).astype(np.float32)
    y = (y / (np.abs(y).max() + 1e-9) * 0.9).astype(np.float32)
    name = f"{index:02d}-{language}-{voice}-{base}wpm-x{speed:.2f}-{lead}-snr{snr:.0f}"
    return Case(name, y, language, texts, starts, words)


def cases() -> list[Case]:
    """Sixteen cases, two per language."""
    langs = list(TEXTS)
    return [make_case(k, langs[k % len(langs)]) for k in range(2 * len(langs))]


def evaluate(align=None, *, verbose: bool = False) -> dict:
    """Align every case with ``align(y, sr, texts, language) -> ForcedAlignment`` (default: force_align).

    Returns the share of segment starts within 0.1 and 0.25 s, of word starts within
    0.1 s, the median segment confidence and the seconds of audio per wall second.
    """
    if align is None:
        from mmalign.align.words import force_align

        def align(y, sr, texts, language):
            return force_align(y, texts, language=language, sr=sr)

    seg_err: list[float] = []
    word_err: list[float] = []
    confidences: list[float] = []
    audio_s = wall = 0.0
    for case in cases():
        t0 = time.perf_counter()
        r = align(case.y, SR, case.texts, case.language)
        wall += time.perf_counter() - t0
        audio_s += len(case.y) / SR
        errs = [abs(s.start - t) if s.start is not None else np.inf for s, t in zip(r.segments, case.starts)]
        seg_err += errs
        for s, ws in zip(r.segments, case.word_starts):
            if s.start is None:
                word_err += [np.inf] * len(ws)
            else:
                word_err += [abs(w.start - t) for w, t in zip(s.words, ws)]
        confidences.append(r.confidence)
        if verbose:
            e = np.array(errs)
            print(
                f"  {case.name:42s} {np.mean(e <= 0.25):5.0%} conf {r.confidence:.2f}  "
                + " ".join(f"{x:.2f}" for x in e)
            )
    s, w = np.array(seg_err), np.array(word_err)
    return {
        "segments": len(s),
        "seg_0.1": float(np.mean(s <= 0.1)),
        "seg_0.25": float(np.mean(s <= 0.25)),
        "word_0.1": float(np.mean(w <= 0.1)),
        "confidence": float(np.median(confidences)),
        "x_realtime": audio_s / wall,
    }


def summary(res: dict) -> str:
    return (
        f"held-out ({res['segments']} segments, synthesised, other voices): "
        f"{res['seg_0.1']:.0%} of starts within 0.1 s, {res['seg_0.25']:.0%} within 0.25 s, "
        f"{res['word_0.1']:.0%} of word starts within 0.1 s, median confidence {res['confidence']:.2f}, "
        f"{res['x_realtime']:.0f}x real time"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(summary(evaluate(verbose="-q" not in sys.argv)))
