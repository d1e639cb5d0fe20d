"""How sharp the last relation stage of trained HVR-Net runs attends on the held-out videos: for each
run folder of ``scripts/train_hvrnet_synthetic.py`` (``OUT/intra``, ``OUT/inter...``), the windows
of ``pyvrel.models.hvrnet.task.detect_video`` over every test video, the last stage's affinities
``q k^T / sqrt(d)`` of each foreground proposal (a query) over the window's proposals (the keys):
their standard deviation over the keys (near 0: the stage averages the window, a collapse) and the
entropy of its attention in units of log N (1: uniform).

    OMP_NUM_THREADS=1 nice python scripts/hvrnet_attention.py /tmp/hvrnet_study/intra /tmp/hvrnet_study/inter
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from pyvrel.data.dataset import open_dataset
from pyvrel.engine import load_checkpoint
from pyvrel.models.hvrnet.task import load_videos, model_from_checkpoint


@torch.no_grad()
def attention_spread(run: Path) -> tuple[float, float]:
    """(mean affinity standard deviation, mean attention entropy / log N) of a run's last stage."""
    model, resolved = model_from_checkpoint(load_checkpoint(run / "checkpoints" / "last.pt"))
    if model.cfg.relations == "none":
        raise SystemExit(f"{run}: a frame-only model has no relation stage")
    std, entropy = [], []
    for video in load_videos(open_dataset("synthetic", resolved["world"]), "test", model.cfg, resolved["objects"]):
        S, M = video.labels.shape
        T = min(model.cfg.window, S)
        start = (torch.arange(S) - T // 2).clamp(0, S - T)
        take = start[:, None] + torch.arange(T)[None, :]
        x = model.intra(video.features[take].reshape(S, T * M, -1), torch.ones(S, T * M, dtype=torch.bool))
        last = model.stages[-1]
        affinity = last.relation(last.fc(x))[1]  # (S, T M, T M)
        fg = video.labels[take].reshape(S, T * M) > 0
        a = affinity[fg]
        std.append(a.std(-1))
        p = torch.softmax(a, -1)
        entropy.append(-(p * p.clamp(min=1e-30).log()).sum(-1) / math.log(T * M))
    return float(torch.cat(std).mean()), float(torch.cat(entropy).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders with checkpoints/last.pt")
    args = parser.parse_args()
    for run in args.runs:
        std, entropy = attention_spread(run)
        print(f"{run}: affinity std over keys {std:.3f}, attention entropy {entropy:.3f} x log N")


if __name__ == "__main__":
    main()
