"""Shared helpers for the mmalign benchmarks (``sync_accuracy.py``, ``sync_speed.py``).

Everything here is plain Python + numpy + soundfile and the ``ffmpeg`` binary:

* locating the real-speech corpus (``<repo>/../shared/corpus``) and decoding its audio;
* generating filler audio (silence, room tone, noise, tone, music-like chords);
* reading and writing subtitle files (WebVTT, SRT, minimal ASS) without the package
  under test, so that the harness never trusts the code it measures;
* muxing audio under a cheap generated picture track;
* running a tool as a subprocess with wall time and peak memory;
* scoring re-timed cues against the truth and printing tables.

Nothing here writes into the repository: every generated file goes to a work folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"

#: sample rate of every generated audio track (like a film)
SR = 48000


class BenchError(Exception):
    """The harness itself cannot run (missing corpus, missing ffmpeg, broken build step)."""


def run_main(main, args) -> int:
    """Run a benchmark's ``main(args)``; a :class:`BenchError` is one line on stderr and exit 2."""
    try:
        return main(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------- environment


def require_ffmpeg() -> str:
    """Path of the ffmpeg binary, or a BenchError telling how to install it."""
    path = shutil.which("ffmpeg")
    if not path:
        raise BenchError(
            "the ffmpeg binary is not on PATH; install it (e.g. `apt-get install -y ffmpeg`) and run again"
        )
    return path


def video_codec_args() -> list[str]:
    """Cheap H.264 settings (libx264 ultrafast), or MPEG-4 part 2 where libx264 is absent."""
    try:
        enc = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        enc = ""
    if re.search(r"\blibx264\b", enc):
        return ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    return ["-c:v", "mpeg4", "-q:v", "10", "-pix_fmt", "yuv420p"]


def load_manifest(corpus: Path) -> list[dict]:
    """The corpus manifest (list of recordings), checked for the files it names."""
    corpus = Path(corpus)
    mf = corpus / "manifest.json"
    if not mf.is_file():
        raise BenchError(f"corpus not found: {mf} is missing (pass --corpus DIR)")
    entries = json.loads(mf.read_text(encoding="utf-8"))
    for e in entries:
        for key in ("audio", "reference"):
            if not (corpus / e[key]).is_file():
                raise BenchError(f"corpus is incomplete: {corpus / e[key]} is missing")
    return entries


def stable_rng(seed: int, *names) -> np.random.Generator:
    """A generator that depends only on the seed and the given names (not on call order)."""
    keys = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(n).encode()) for n in names]
    return np.random.default_rng(keys)


def run_ffmpeg(args: list[str], what: str, timeout: float = 1800) -> None:
    """Run ``ffmpeg -nostdin -v error -y ARGS``; BenchError with its stderr on failure."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"ffmpeg timed out while {what}") from exc
    if p.returncode != 0:
        raise BenchError(f"ffmpeg failed while {what}: {p.stderr.strip()[-800:]}\n  cmd: {shlex.join(cmd)}")


def decode_audio(path: Path, sr: int = SR, channels: int = 1) -> np.ndarray:
    """Decode any audio with the ffmpeg binary to float32 (n,) or (n, channels)."""
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-vn",
        "-ac",
        str(channels),
        "-ar",
        str(sr),
        "-f",
        "f32le",
        "-",
    ]
    p = subprocess.run(cmd, capture_output=True, timeout=600)
    if p.returncode != 0:
        raise BenchError(f"cannot decode {path}: {p.stderr.decode(errors='replace').strip()[-500:]}")
    x = np.frombuffer(p.stdout, dtype=np.float32).copy()
    return x if channels == 1 else x.reshape(-1, channels)


# --------------------------------------------------------------------------- subtitles

_TS = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TS}\s*-->\s*{_TS}")


@dataclass
class Cue:
    start: float
    end: float
    text: str = ""
    ident: str = ""


def _ts(h, m, s, frac) -> float:
    frac = (frac or "0").ljust(3, "0")
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac) / 1000.0


def parse_subtitles(path: Path) -> list[Cue]:
    """Cues of a WebVTT, SRT or ASS/SSA file, in file order (timing only matters here)."""
    raw = Path(path).read_bytes()
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if re.search(r"^\s*\[Script Info\]", text, re.M | re.I) or re.search(r"^Dialogue:", text, re.M):
        return _parse_ass(text)
    cues: list[Cue] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n")]
        while lines and not lines[0].strip():
            lines.pop(0)
        for i, ln in enumerate(lines):
            m = _TIMING.match(ln)
            if m:
                g = m.groups()
                ident = lines[i - 1].strip() if i > 0 else ""
                cues.append(Cue(_ts(*g[:4]), _ts(*g[4:]), "\n".join(lines[i + 1 :]).strip(), ident))
                break
    return cues


def _parse_ass(text: str) -> list[Cue]:
    fmt = None
    cues = []
    ts = re.compile(r"(\d+):(\d{1,2}):(\d{1,2})[.](\d{1,3})")
    for ln in text.split("\n"):
        if ln.lower().startswith("format:") and fmt is None and "start" in ln.lower():
            fmt = [f.strip().lower() for f in ln.split(":", 1)[1].split(",")]
        if ln.startswith("Dialogue:"):
            fields = ln.split(":", 1)[1].split(",", (len(fmt) - 1) if fmt else 9)
            names = fmt or ["layer", "start", "end", "style", "name", "marginl", "marginr", "marginv", "effect", "text"]
            d = dict(zip(names, fields))
            ms, me = ts.match(d["start"].strip()), ts.match(d["end"].strip())
            if ms and me:
                # ASS uses centiseconds: "0:00:01.50" is 1.5 s
                def sec(m):
                    return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) + float("0." + m[4])

                cues.append(Cue(sec(ms), sec(me), d.get("text", "").strip(), ""))
    return cues


def _fmt(t: float, sep: str) -> str:
    ms = int(round(max(0.0, t) * 1000))
    h, ms = divmod(ms, 3600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_subtitles(cues: list[Cue], path: Path) -> None:
    """Write cues as WebVTT or SRT, chosen by the file extension."""
    path = Path(path)
    out = []
    if path.suffix.lower() == ".srt":
        for i, c in enumerate(cues, 1):
            out.append(f"{i}\n{_fmt(c.start, ',')} --> {_fmt(c.end, ',')}\n{c.text}\n")
    else:
        out.append("WEBVTT\n")
        for i, c in enumerate(cues, 1):
            ident = c.ident or str(i)
            out.append(f"{ident}\n{_fmt(c.start, '.')} --> {_fmt(c.end, '.')}\n{c.text}\n")
    path.write_text("\n".join(out), encoding="utf-8")


# --------------------------------------------------------------------------- audio fillers

FILLERS = ("silence", "roomtone", "noise", "tone", "chords", "speech")


def speech_level(x: np.ndarray, sr: int = SR) -> float:
    """RMS of the loud part of a recording (90th percentile of 50 ms frame RMS)."""
    hop = sr // 20
    n = len(x) // hop
    if n == 0:
        return float(np.sqrt(np.mean(x**2)) + 1e-9)
    fr = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    return float(np.percentile(fr, 90) + 1e-9)


def _db(x: float) -> float:
    return 10 ** (x / 20)


def make_filler(
    kind: str,
    seconds: float,
    rng: np.random.Generator,
    level: float,
    speech_pool: list[np.ndarray] | None = None,
    sr: int = SR,
) -> np.ndarray:
    """``seconds`` of filler audio of the given kind, scaled relative to ``level`` (speech RMS).

    silence: digital silence; roomtone: very quiet noise (like an empty room);
    noise: broadband noise (crowd, rain) at -12 dB; tone: a test tone at -10 dB;
    chords: a music-like chord progression with a beat at -6 dB;
    speech: a stretch of another recording (speech nobody subtitled), same level.
    """
    n = int(round(seconds * sr))
    t = np.arange(n, dtype=np.float64) / sr
    if kind == "silence":
        y = np.zeros(n)
    elif kind == "roomtone":
        y = rng.standard_normal(n) * level * _db(-45)
    elif kind == "noise":
        w = rng.standard_normal(n + 64)
        y = np.convolve(w, np.ones(8) / 8, mode="same")[:n]  # slightly coloured
        y = y / (np.std(y) + 1e-12) * level * _db(-12)
    elif kind == "tone":
        f = rng.choice([440.0, 1000.0])
        y = np.sin(2 * np.pi * f * t) * math.sqrt(2) * level * _db(-10)
    elif kind == "chords":
        y = _chords(n, rng, sr) * level * _db(-6)
    elif kind == "speech":
        if not speech_pool:
            raise ValueError("speech filler needs a pool of other recordings")
        src = speech_pool[int(rng.integers(len(speech_pool)))]
        reps = int(math.ceil((n + len(src)) / max(1, len(src)))) + 1
        loop = np.tile(src, reps)
        start = int(rng.integers(0, max(1, len(src))))
        y = loop[start : start + n].astype(np.float64)
        y = y / speech_level(y.astype(np.float32), sr) * level
    else:
        raise ValueError(f"unknown filler {kind!r}")
    y = y.astype(np.float32)
    fade = min(len(y) // 2, sr // 100)  # 10 ms fades against clicks
    if fade > 0:
        ramp = np.linspace(0, 1, fade, dtype=np.float32)
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    return y


def _chords(n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Chords with harmonics and decaying envelopes plus a noise hi-hat: music-ish."""
    prog = [[0, 4, 7], [7, 11, 14], [9, 12, 16], [5, 9, 12]]  # I V vi IV
    root = 48 + int(rng.integers(0, 12))
    y = np.zeros(n)
    pos = 0
    bar = 0
    beat = int(sr * rng.uniform(0.45, 0.6))
    while pos < n:
        length = min(n - pos, 4 * beat)
        tt = np.arange(length) / sr
        env = np.exp(-tt * 1.2)
        chord = prog[bar % len(prog)]
        seg = np.zeros(length)
        for semis in chord + [chord[0] - 12]:
            f = 440.0 * 2 ** ((root + semis - 69) / 12)
            for h, a in ((1, 1.0), (2, 0.5), (3, 0.25), (4, 0.12)):
                seg += a * np.sin(2 * np.pi * f * h * tt)
        seg *= env
        for b in range(4):  # hi-hat on each beat
            s = b * beat
            if s >= length:
                break
            k = min(length - s, sr // 20)
            seg[s : s + k] += 0.6 * rng.standard_normal(k) * np.exp(-np.arange(k) / (sr / 200))
        y[pos : pos + length] = seg
        pos += length
        bar += 1
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def write_wav(x: np.ndarray, path: Path, sr: int = SR) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(x, -1.0, 1.0), sr, subtype="PCM_16")


def mux_with_picture(
    wav: Path,
    out: Path,
    size: str = "160x90",
    rate: int = 10,
    source: str = "color",
    audio_bitrate: str = "96k",
    channels: int | None = None,
) -> None:
    """Put an audio file under a generated picture track (H.264 + AAC in MP4)."""
    import soundfile as sf

    dur = sf.info(str(wav)).duration
    if source == "color":
        lavfi = f"color=c=0x203050:s={size}:r={rate}"
    else:
        lavfi = f"{source}=size={size}:rate={rate}"
    args = [
        "-f",
        "lavfi",
        "-i",
        lavfi,
        "-i",
        str(wav),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-t",
        f"{dur:.6f}",
        *video_codec_args(),
        "-c:a",
        "aac",
        "-b:a",
        audio_bitrate,
        "-ar",
        str(SR),
    ]
    if channels:
        args += ["-ac", str(channels)]
    run_ffmpeg(args + [str(out)], f"making {out.name}")


# --------------------------------------------------------------------------- tools


def mmalign_command(override: str | None = None) -> tuple[list[str], dict]:
    """Command prefix for mmalign and the environment to run it in.

    ``override`` (or env ``MMALIGN``) is a shell-style command line, e.g. a stand-in.
    Otherwise ``python -m mmalign`` from this checkout (PYTHONPATH = repo root), so the
    working tree is measured rather than some other installed copy.
    """
    env = dict(os.environ)
    cmd = override or os.environ.get("MMALIGN")
    if cmd:
        return shlex.split(cmd), env
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return [sys.executable, "-m", "mmalign"], env


def find_ffsubsync() -> str | None:
    """ffsubsync from env FFSUBSYNC, PATH, or /opt/ffsubsync/bin/ffsubsync."""
    cand = os.environ.get("FFSUBSYNC") or shutil.which("ffsubsync") or "/opt/ffsubsync/bin/ffsubsync"
    return cand if cand and Path(cand).is_file() and os.access(cand, os.X_OK) else None


def tool_works(cmd: list[str], env: dict | None = None, timeout: float = 120) -> tuple[bool, str]:
    """Run ``cmd`` (a --help call); (True, '') when it exits 0, else (False, why)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if p.returncode != 0:
        return False, f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-400:]}"
    return True, ""


def _proc_mem_kb(pid: int, page_kb: int) -> int:
    """PSS of one process (shared pages split among their users), else its RSS, in KiB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    return int(ln.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * page_kb
    except (OSError, IndexError, ValueError):
        return 0


def _tree_mem_kb(root: int) -> int:
    """Memory of a process and its descendants (summed PSS from /proc), in KiB."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                st = f.read().decode(errors="replace")
            ppid = int(st.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _proc_mem_kb(pid, page_kb)
        stack.extend(children.get(pid, []))
    return total


@dataclass
class Proc:
    """One finished subprocess: exit code, wall time, peak memory, output."""

    returncode: int
    wall_s: float
    maxrss_kb: int  # peak RSS of the largest single process in the tree (wait4)
    tree_kb: int  # peak of the summed PSS of the whole tree (sampled every 50 ms)
    stdout: str
    stderr: str
    timed_out: bool = False


def run_measured(
    cmd: list[str], timeout: float, env: dict | None = None, cwd: str | Path | None = None, sample: bool = True
) -> Proc:
    """Run a command, measuring wall time (perf_counter) and peak RSS.

    Peak RSS comes from ``os.wait4`` (like ``/usr/bin/time -v``: the largest single process
    of the tree); with ``sample`` a thread also sums PSS (RSS with shared pages split among
    the processes sharing them) over the whole process tree every 50 ms, which catches tools
    that run ffmpeg or worker processes beside themselves.
    """
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True
        )
        peak = [0]
        done = threading.Event()
        timed_out = [False]

        def sampler():
            while not done.wait(0.05):
                try:
                    peak[0] = max(peak[0], _tree_mem_kb(p.pid))
                except Exception:  # noqa: BLE001 - sampling is best effort
                    pass

        def killer():
            timed_out[0] = True
            try:
                os.killpg(p.pid, 9)
            except OSError:
                pass

        th = threading.Thread(target=sampler, daemon=True) if sample else None
        if th:
            th.start()
        timer = threading.Timer(timeout, killer)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            wall = time.perf_counter() - t0
            timer.cancel()
            done.set()
            if th:
                th.join()
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        return Proc(
            p.returncode,
            wall,
            int(ru.ru_maxrss),
            peak[0],
            fo.read().decode(errors="replace"),
            fe.read().decode(errors="replace"),
            timed_out[0],
        )


def parse_json_stdout(text: str) -> dict | None:
    """The JSON object a ``--json`` run printed (whole stdout, else its last JSON line)."""
    text = text.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else None
    except json.JSONDecodeError:
        pass
    for ln in reversed(text.splitlines()):
        ln = ln.strip()
        if ln.startswith("{"):
            try:
                obj = json.loads(ln)
                if isinstance(obj, dict):
                    return obj
            except json.JSONDecodeError:
                continue
    return None


def last_line(text: str, n: int = 300) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:n] if lines else ""


# --------------------------------------------------------------------------- scoring

THRESHOLDS = (0.1, 0.25, 0.5)


def _norm_text(t: str) -> str:
    return " ".join(re.sub(r"<[^>]*>|\{[^}]*\}", " ", t).split()).lower()


def match_cues(out: list[Cue] | None, truth: list[Cue]) -> list[Cue | None]:
    """The output cue for each truth cue (None where it is missing).

    By index when the counts agree (the tools keep cue count and order). Otherwise (e.g.
    ffsubsync drops cues it shifted below 0 s) by text, in order, with difflib.
    """
    if not out:
        return [None] * len(truth)
    if len(out) == len(truth):
        return list(out)
    import difflib

    a = [_norm_text(c.text) for c in truth]
    b = [_norm_text(c.text) for c in out]
    res: list[Cue | None] = [None] * len(truth)
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for blk in sm.get_matching_blocks():
        for k in range(blk.size):
            res[blk.a + k] = out[blk.b + k]
    return res


def start_errors(out: list[Cue] | None, truth: list[Cue]) -> list[float]:
    """|start error| per truth cue; a cue missing from the output counts as +inf."""
    return [abs(o.start - c.start) if o is not None else math.inf for o, c in zip(match_cues(out, truth), truth)]


def end_errors(out: list[Cue] | None, truth: list[Cue]) -> list[float]:
    """|end error| per truth cue; a cue missing from the output counts as +inf."""
    return [abs(o.end - c.end) if o is not None else math.inf for o, c in zip(match_cues(out, truth), truth)]


@dataclass
class Tally:
    """Running totals for one (kind, tool) row."""

    cases: int = 0
    failures: int = 0  # crashed, timed out, wrote nothing readable
    declined: int = 0  # refused ("not confident"), wrote nothing
    errors: list = field(default_factory=list)
    walls: list = field(default_factory=list)
    end_errors: list = field(default_factory=list)

    def add(
        self,
        errs: list[float],
        wall: float | None,
        failed: bool,
        declined: bool = False,
        end_errs: list[float] | None = None,
    ) -> None:
        self.cases += 1
        self.failures += int(failed and not declined)
        self.declined += int(declined)
        self.errors.extend(errs)
        self.end_errors.extend(end_errs if end_errs is not None else [])
        if wall is not None:
            self.walls.append(wall)

    def summary(self) -> dict:
        e = np.array(self.errors, dtype=float)
        n = len(e)
        d = {
            "cases": self.cases,
            "failures": self.failures,
            "declined": self.declined,
            "cues": n,
            "median_abs_err_s": float(np.median(e)) if n else None,
            "total_wall_s": float(sum(self.walls)),
            "median_wall_s": float(statistics.median(self.walls)) if self.walls else None,
        }
        for th in THRESHOLDS:
            d[f"within_{th}"] = float(np.mean(e <= th)) if n else None
        ends = np.array(self.end_errors, dtype=float)
        d["ends_within_0.25"] = float(np.mean(ends <= 0.25)) if len(ends) else None
        return d


def fmt_s(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:5.1f}%"


def print_table(rows: list[list[str]], header: list[str], out=sys.stdout) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))
    print(line, file=out)
    print("-" * len(line), file=out)
    for r in rows:
        print(
            "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))),
            file=out,
        )
    out.flush()
