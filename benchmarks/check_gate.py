"""The ``--check`` CI gate on the real-speech corpus: in sync exits 0, shifted exits 5, unrelated 4.

For each recording of ``../shared/corpus``: its reference subtitles as they are (in sync),
shifted by each of ``--shifts`` seconds (default ±0.5, ±1, ±3, +20), and another
recording's subtitles (unrelated). All cases run as one ``mmalign batch sync --check``
over a JSONL manifest; the script prints each case's status and exit code and a tally.

Run::

    python benchmarks/check_gate.py [--corpus ../shared/corpus] [--tolerance 0.2] [-j 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _common as C  # noqa: E402

EXPECT = {"in sync": "done", "shifted": "failed", "unrelated": "refused"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--shifts", default="-3,-1,-0.5,0.5,1,3,20")
    ap.add_argument("--tolerance", default="0.2")
    ap.add_argument("-j", default="2")
    args = ap.parse_args(argv)
    entries = C.load_manifest(args.corpus)
    shifts = [float(s) for s in args.shifts.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mmalign-check-"))
    lines, kinds = [], {}
    for k, e in enumerate(entries):
        audio = args.corpus / e["audio"]
        cues = C.parse_subtitles(args.corpus / e["reference"])
        cases = [("in sync", 0.0, cues)] + [("shifted", s, cues) for s in shifts]
        other = entries[(k + 1) % len(entries)]
        cases.append(("unrelated", 0.0, C.parse_subtitles(args.corpus / other["reference"])))
        for kind, shift, base in cases:
            name = f"{e['case']}.{kind.replace(' ', '_')}{shift:+g}.vtt"
            C.write_subtitles([C.Cue(c.start + shift, c.end + shift, c.text) for c in base], work / name)
            lines.append(json.dumps({"media": str(audio), "subs": str(work / name), "out": name}))
            kinds[name] = (e["case"], kind, shift)
    manifest = work / "jobs.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    cmd, env = C.mmalign_command()
    argv_ = cmd + ["batch", "sync", "--manifest", str(manifest), "-o", str(work / "out"), "--check"]
    proc = C.run_measured(argv_ + ["--tolerance", args.tolerance, "-j", args.j, "--json"], 3600, env=env)
    rows, tally = [], Counter()
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        case, kind, shift = kinds[r["key"]]
        ok = r["status"] == EXPECT[kind]
        tally[(kind, ok)] += 1
        detail = r.get("error", "") or json.dumps(r.get("check", {}))
        rows.append([case, kind, f"{shift:+g}", r["status"], str(r["exit_code"]), "yes" if ok else "NO", detail[-90:]])
    rows.sort()
    C.print_table(rows, ["case", "kind", "shift", "status", "exit", "right", "detail"])
    for kind in EXPECT:
        right, wrong = tally[(kind, True)], tally[(kind, False)]
        print(f"{kind}: {right}/{right + wrong} right (expected {EXPECT[kind]})")
    print(f"batch exit code {proc.returncode}; {proc.wall_s:.1f} s wall for {len(lines)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(C.run_main(main, sys.argv[1:]))
