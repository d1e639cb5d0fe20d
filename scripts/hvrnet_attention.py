"""How sharp the last relation stage of trained HVR-Net runs attends on the held-out videos: for each
run folder of ``scripts/train_hvrnet_synthetic.py`` (``OUT/intra``, ``OUT/inter...``), the windows
of ``pyvrel.models.hvrnet.task.detect_video`` over every test video, the last stage's affinities
``q k^T / sqrt(d)`` of each foreground proposal (a query) over the window's proposals (the keys):
their standard deviation over the keys (near 0: the stage averages the window, a collapse), the
entropy of its attention in units of log N (1: uniform), and how category-selective it is: the
attention mass on the keys of the query's own label beside the share of such keys (what a uniform
attention gives), over all foreground queries and over those of the confusable categories.

    OMP_NUM_THREADS=1 nice python scripts/hvrnet_attention.py /tmp/hvrnet_study/intra /tmp/hvrnet_study/inter
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from pyvrel.data.dataset import open_dataset
from pyvrel.engine import load_checkpoint
from pyvrel.models.hvrnet.task import confusable_labels, load_videos, model_from_checkpoint


@torch.no_grad()
def attention_spread(run: Path) -> dict[str, float]:
    """A run's last stage: the means over foreground queries of the affinity standard deviation
    (``std``), the attention entropy / log N (``entropy``), the attention mass on keys of the query's
    label (``same``) and those keys' share (``share``); ``same_confusable``, ``share_confusable``: over
    the queries of the confusable categories."""
    model, resolved = model_from_checkpoint(load_checkpoint(run / "checkpoints" / "last.pt"))
    if model.cfg.relations == "none":
        raise SystemExit(f"{run}: a frame-only model has no relation stage")
    std, entropy, same, share, confusable = [], [], [], [], []
    conf = torch.tensor(confusable_labels(resolved["objects"]), dtype=torch.int64)
    for video in load_videos(open_dataset("synthetic", resolved["world"]), "test", model.cfg, resolved["objects"]):
        S, M = video.labels.shape
        T = min(model.cfg.window, S)
        start = (torch.arange(S) - T // 2).clamp(0, S - T)
        take = start[:, None] + torch.arange(T)[None, :]
        x = model.intra(video.features[take].reshape(S, T * M, -1), torch.ones(S, T * M, dtype=torch.bool))
        last = model.stages[-1]
        affinity = last.relation(last.fc(x))[1]  # (S, T M, T M)
        labels = video.labels[take].reshape(S, T * M)
        fg = labels > 0
        a = affinity[fg]
        std.append(a.std(-1))
        p = torch.softmax(a, -1)
        entropy.append(-(p * p.clamp(min=1e-30).log()).sum(-1) / math.log(T * M))
        match = (labels[:, :, None] == labels[:, None, :])[fg].float()  # (queries, keys): the query's label
        same.append((p * match).sum(-1))
        share.append(match.mean(-1))
        confusable.append(torch.isin(labels[fg], conf))
    std, entropy, same, share, confusable = map(torch.cat, (std, entropy, same, share, confusable))
    return {"std": float(std.mean()), "entropy": float(entropy.mean()), "same": float(same.mean()),
            "share": float(share.mean()), "same_confusable": float(same[confusable].mean()),
            "share_confusable": float(share[confusable].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run folders with checkpoints/last.pt")
    args = parser.parse_args()
    for run in args.runs:
        r = attention_spread(run)
        print(f"{run}: affinity std over keys {r['std']:.3f}, attention entropy {r['entropy']:.3f} x log N, "
              f"attention on the query's label {r['same']:.3f} (uniform {r['share']:.3f}; confusable queries "
              f"{r['same_confusable']:.3f}, uniform {r['share_confusable']:.3f})")


if __name__ == "__main__":
    main()
