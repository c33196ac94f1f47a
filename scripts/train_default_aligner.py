#!/usr/bin/env python3
"""Train the attention aligner's default weights from synthetic speech, from nothing downloaded.

Texts: for each language, ``--lines`` sentences of 3 to 14 words drawn (seeded) from the small
word lists below (common words written for this script, public domain), plus numbers, which
eSpeak reads in the language. Each line is read by eSpeak NG ``--copies`` times at different
rates, by varied speakers (eSpeak voice variants, pitch, pitch range; ``--no-speakers``: the
language's own voice only) and augmented (:func:`mmalign.train.make_data`), then the model is trained
(:func:`mmalign.train.train_aligner`) and the validation score (held-out synthetic word starts
within 0.05/0.1/0.25 s) printed after every epoch. The defaults: 8 languages × 200 lines × 2
readings (3,200 utterances, 3.8 h), 20 cepstra, half the training utterances joined in pairs,
only the alignments that keep each word inside its known times summed (``--no-words``: all),
each utterance's bands warped and runs of bands and frames masked anew each epoch
(``--no-augment``: as read), 20 epochs, the rate falling to 0 over the last 30 % of the steps,
and the weights of the epoch with the best validation score kept (2 threads: 16 min, epoch
20 kept, 96.6 % within 0.05 s; without the augmentation epoch 18, 95.8 %; without the words'
times either, epoch 10, 92.4 %). These defaults make the weights that ship with mmalign
(``mmalign/align/aligner.safetensors``): the same tensors and metadata, bit for bit. Run from the repository root::

    python scripts/train_default_aligner.py -o aligner.safetensors   # 2 CPU threads: about 17 min
    python scripts/train_default_aligner.py -o aligner.safetensors --device cuda --jobs 16
    python scripts/train_default_aligner.py -o quick.safetensors --lines 40 --epochs 2   # a smoke run

Re-running with the same options gives the same data and, on the CPU with the same ``--threads``
(and the same kind of CPU), the same weights. A killed run goes on from its last epoch with
``--resume`` (the data folder is kept in ``--work``).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

WORDS = {
    "en": "time people year way day man thing woman life child world school state family student group country "
    "problem hand part place case week company system program question work government number night point home "
    "water room mother area money story fact month lot right study book eye job word business issue side kind "
    "head house service friend father power hour game line end member law car city name team minute idea body "
    "is was has said made went came took saw knew gave found told asked felt left kept began seemed helped "
    "good new first last long great little own other old right big high small large next early young important "
    "the a of and to in that it for on with as at by from this but not what all were when we there can",
    "fr": "temps personne année jour homme chose femme vie enfant monde école état famille groupe pays problème "
    "main partie lieu semaine travail nombre nuit point maison eau pièce mère argent histoire mois livre oeil "
    "mot côté tête service ami père pouvoir heure jeu ligne fin membre loi voiture ville nom idée corps "
    "est était a dit fait allait venait prenait voyait savait donnait trouvait parlait aimait restait "
    "bon nouveau premier dernier long grand petit autre vieux jeune beau belle important "
    "le la les un une des de du et à en que qui pour dans sur avec par pas mais nous vous ils elles",
    "de": "Zeit Mensch Jahr Weg Tag Mann Ding Frau Leben Kind Welt Schule Staat Familie Gruppe Land Problem Hand "
    "Teil Platz Woche Arbeit Zahl Nacht Punkt Haus Wasser Zimmer Mutter Geld Geschichte Monat Buch Auge Wort "
    "Seite Kopf Freund Vater Macht Stunde Spiel Linie Ende Gesetz Auto Stadt Name Idee Körper "
    "ist war hat sagte machte ging kam nahm sah wusste gab fand sprach liebte blieb "
    "gut neu erste letzte lang groß klein andere alt jung schön wichtig "
    "der die das ein eine und zu in den von mit auf für nicht aber wir sie es auch noch nach",
    "es": "tiempo persona año camino día hombre cosa mujer vida niño mundo escuela estado familia grupo país problema "
    "mano parte lugar semana trabajo número noche punto casa agua cuarto madre dinero historia mes libro ojo "
    "palabra lado cabeza amigo padre poder hora juego línea fin ley coche ciudad nombre idea cuerpo "
    "es era tiene dijo hizo fue vino tomó vio sabía dio encontró habló quería quedó "
    "bueno nuevo primero último largo grande pequeño otro viejo joven bonito importante "
    "el la los las un una de del y a en que para con por no pero nosotros ellos también",
    "it": "tempo persona anno strada giorno uomo cosa donna vita bambino mondo scuola stato famiglia gruppo paese "
    "problema mano parte posto settimana lavoro numero notte punto casa acqua stanza madre soldi storia mese "
    "libro occhio parola lato testa amico padre potere ora gioco linea fine legge macchina città nome idea corpo "
    "è era ha disse fece andò venne prese vide sapeva diede trovò parlò voleva restò "
    "buono nuovo primo ultimo lungo grande piccolo altro vecchio giovane bello importante "
    "il la lo gli le un una di del e a in che per con su non ma noi loro anche",
    "pt": "tempo pessoa ano caminho dia homem coisa mulher vida criança mundo escola estado família grupo país "
    "problema mão parte lugar semana trabalho número noite ponto casa água quarto mãe dinheiro história mês "
    "livro olho palavra lado cabeça amigo pai hora jogo linha fim lei carro cidade nome ideia corpo "
    "é era tem disse fez foi veio tomou viu sabia deu achou falou queria ficou "
    "bom novo primeiro último longo grande pequeno outro velho jovem bonito importante "
    "o a os as um uma de do da e em que para com por não mas nós eles também",
    "nl": "tijd mens jaar weg dag man ding vrouw leven kind wereld school staat familie groep land probleem hand "
    "deel plaats week werk nummer nacht punt huis water kamer moeder geld verhaal maand boek oog woord kant "
    "hoofd vriend vader macht uur spel lijn einde wet auto stad naam idee lichaam "
    "is was heeft zei maakte ging kwam nam zag wist gaf vond sprak bleef "
    "goed nieuw eerste laatste lang groot klein ander oud jong mooi belangrijk "
    "de het een en van in op met voor niet maar wij zij ook nog naar",
    "zh": "时间 人 年 路 天 男人 东西 女人 生活 孩子 世界 学校 国家 家庭 问题 手 地方 星期 工作 数字 晚上 "
    "房子 水 房间 妈妈 钱 故事 月 书 眼睛 朋友 爸爸 小时 城市 名字 身体 是 有 说 做 去 来 看 知道 给 找到 "
    "喜欢 好 新 第一 最后 长 大 小 老 年轻 漂亮 重要 的 了 在 和 我们 他们 也 不 很 都",
}


def sentences(language: str, count: int, seed: int) -> list[str]:
    """``count`` seeded sentences of 3 to 14 words (and numbers) from the language's list."""
    words = WORDS[language].split()
    rng = np.random.default_rng([seed, sorted(WORDS).index(language)])
    out = []
    for _ in range(count):
        k = int(rng.integers(3, 15))
        picked = [str(int(rng.integers(1, 2000))) if rng.random() < 0.06 else words[int(rng.integers(len(words)))]
                  for _ in range(k)]  # fmt: skip
        sep = "" if language == "zh" else " "
        text = sep.join(picked)
        text = text[0].upper() + text[1:]
        mark = "。" if language == "zh" else str(rng.choice([".", ".", ".", "?", "!"]))
        if language != "zh" and k > 6 and rng.random() < 0.5:  # a comma: a pause, sometimes
            cut = text.split(" ")
            cut[k // 2] += ","
            text = " ".join(cut)
        out.append(text + mark)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--output", type=Path, required=True, help="the weights file (safetensors)")
    p.add_argument("--work", type=Path, default=Path("aligner-work"), help="folder for texts, data, checkpoint")
    p.add_argument("--languages", default=",".join(sorted(WORDS)), help="comma-separated, from: " + ",".join(WORDS))
    p.add_argument("--lines", type=int, default=200, help="sentences per language")
    p.add_argument("--copies", type=int, default=2, help="readings per sentence")
    on = functools.partial(p.add_argument, action=argparse.BooleanOptionalAction, default=True)  # --x/--no-x
    on("--speakers", help="vary the reader (eSpeak voice variants, pitch, pitch range); --no-speakers: one voice")
    p.add_argument(
        "--cepstra", type=int, default=20, help="the audio encoder reads this many cepstra of its log-mel (0: log-mel)"
    )
    p.add_argument("--joined", type=float, default=0.5, help="share of training utterances joined in pairs")
    on("--words", help="sum only the alignments that keep each word inside its known times")
    on("--augment", help="warp the bands (vocal tract length) and mask runs of bands and frames, anew each epoch")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--decay", type=float, default=0.3, help="share of the last steps over which the rate falls to 0")
    p.add_argument("--keep", default="best", choices=["best", "last"], help="which epoch's weights are written")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None, help="processes synthesising the data")
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads (the weights depend on their number)",
    )
    p.add_argument("--resume", action="store_true", help="keep the data and go on from the checkpoint")
    args = p.parse_args(argv)

    import torch

    from mmalign.align.attention import AlignerConfig
    from mmalign.train import best_epoch, make_data, train_aligner

    torch.set_num_threads(args.threads)  # the sums' order, hence the weights, follow the thread count

    t0 = time.perf_counter()
    data = args.work / "data"
    if not (args.resume and (data / "dataset.json").exists()):
        texts = []
        (args.work / "texts").mkdir(parents=True, exist_ok=True)
        for lang in args.languages.split(","):
            path = args.work / "texts" / f"{lang}.txt"
            path.write_text("\n".join(sentences(lang, args.lines, args.seed)) + "\n", encoding="utf-8")
            texts.append(path)
        header = make_data(texts, data, copies=args.copies, speakers=args.speakers, seed=args.seed, jobs=args.jobs)
        print(f"data: {header['utterances']} utterances, {header['speech_seconds'] / 3600:.2f} h, "
              f"{header['languages']} in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip

    def report(r) -> None:
        within = ", ".join(f"{float(k):.2f} s {v:.1%}" for k, v in r.within.items())
        raw = ", ".join(f"{v:.1%}" for v in r.within_raw.values())
        print(f"epoch {r.epoch}: loss {r.loss:.3f}; validation word starts within {within} "
              f"(junction {r.junction * 1000:.1f} ms; read as is: {raw}) ({r.seconds:.0f} s)", flush=True)  # fmt: skip

    history = train_aligner(
        [data], args.output, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, decay=args.decay,
        keep=args.keep, device=args.device, seed=args.seed, resume=args.resume, on_epoch=report,
        config=AlignerConfig(n_cepstra=args.cepstra), joined=args.joined, words=args.words,
        augment=args.augment,
    )  # fmt: skip
    kept = (best_epoch(history) if args.keep == "best" else len(history)) if history else 0
    final = history[kept - 1].within if history else {}
    print(json.dumps({"output": str(args.output), "epoch_kept": kept, "validation_within": final,
                      "minutes": round((time.perf_counter() - t0) / 60, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
