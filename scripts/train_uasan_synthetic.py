"""Train UASAN and its Model A on the base labels of the open-vocabulary synthetic world (CPU) and
report, on the held-out videos' novel and all splits: trajectory classification R@5/10 and RelDet
mAP / R@50 / R@100 in PredCls and SGDet (paper Tables 1, 3 and 4 in miniature).

    OMP_NUM_THREADS=1 nice python scripts/train_uasan_synthetic.py --out /tmp/uasan_synth
    python scripts/train_uasan_synthetic.py --videos 20 --epochs 1 --text hashed   # seconds: a smoke run

Every run goes through ``pyvrel.engine.run.prepare_run``, as ``pyvrel train --model uasan`` does.
The world (``open_vocab=16``) has 61 novel predicates that are new combinations of base words
(``walk_behind`` when ``walk_left`` and ``run_behind`` are base) and 10 novel categories; training
never sees them (:func:`pyvrel.models.uasan.task.training_items`). Text encoders: the offline
hashed default and, when ``pyvrel[text]`` is installed, all-MiniLM-L6-v2 (``--text hashed minilm``).
Results go to ``OUT/metrics.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyvrel.data.dataset import open_dataset
from pyvrel.data.text import minilm_available
from pyvrel.engine.run import prepare_run
from pyvrel.models.uasan.task import evaluate_open_vocab, load

SETTINGS = ("predcls", "sgdet")


def run_one(variant: str, text: str, args: argparse.Namespace) -> dict:
    """Train one model and evaluate it; returns the results and the time taken."""
    t0 = time.time()
    section = {"variant": variant, "text": text, "eval_split": None, "union": args.union,
               "world": {"seed": args.seed, "num_videos": args.videos}}
    train = {"epochs": args.epochs, "progress": False, "seed": args.seed, "log_every": 100}
    run = prepare_run("uasan", "synthetic", {"model": section, "train": train}, args.out / f"{variant}_{text}")
    summary = run.fit(clear=run.out.exists())  # a rerun starts afresh
    train_s = time.time() - t0
    detector = load(torch.load(summary["checkpoint"], map_location="cpu", weights_only=False))
    dataset = open_dataset("synthetic", run.meta["model_config"]["world"])
    result = evaluate_open_vocab(detector, dataset, "test", SETTINGS)
    print(f"{variant} / {text}: {len(run.task.train_set)} segments, {summary['step']} steps, loss "
          f"{summary['train']['loss']:.3f}, trained {train_s:.0f} s, total {time.time() - t0:.0f} s", flush=True)
    return {**result, "train_seconds": train_s, "seconds": time.time() - t0, "segments": len(run.task.train_set)}


def table(results: dict) -> str:
    head = ["model", "text", "traj novel R@5", "R@10", "traj all R@5", "R@10"]
    head += [f"{s} {p} {m}" for s in SETTINGS for p in ("novel", "all") for m in ("mAP", "R@50", "R@100")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, r in results.items():
        variant, text = key.split("/")
        cells = ["UASAN" if variant == "full" else "Model A", text]
        cells += [f"{100 * r['trajectory'][p][k]:.1f}" for p in ("novel", "all") for k in ("R@5", "R@10")]
        cells += [f"{100 * r[f'{s}/{p}'][m]:.2f}" for s in SETTINGS for p in ("novel", "all")
                  for m in ("mAP", "R@50", "R@100")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=160, help="videos in the world (80%% train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--union", choices=("box", "segment"), default="box")
    ap.add_argument("--text", nargs="+", default=["hashed", "minilm"], help="text encoders (minilm: if installed)")
    ap.add_argument("--variants", nargs="+", default=["full", "A"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=Path("runs/uasan_synthetic"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for text in args.text:
        if text == "minilm" and minilm_available():
            print(f"skipping minilm: {minilm_available()}")
            continue
        for variant in args.variants:
            results[f"{variant}/{text}"] = run_one(variant, text, args)
            (args.out / "metrics.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                               "results": results}, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
