"""Paired comparison of grounding runs of scripts/train_vrgv_synthetic.py over seeds.

    python scripts/vrgv_paired.py runs/final/s0 runs/final/s1 ...   # each holds vRGV/ and Co-occur/metrics.json
    python scripts/vrgv_paired.py runs/final/s* --a vRGV --b 'vRGV*'  # exact against greedy linking

For each seed directory: rows ``--a`` and ``--b`` (a row of a ``metrics.json``: ``vRGV``, ``vRGV*``,
``Co-occur``, ...; found in its ``metrics.json`` or any ``*/metrics.json`` under it), their AccR
(the code's tIoU averaged over the three spatial thresholds, %) and the difference a - b on the same
test videos. Then the
mean over seeds, the seeds where a wins / ties / loses, and a paired bootstrap 95 % interval of the
mean difference: the test videos of each seed resampled with replacement (the per-video AccR of both
rows move together), the seed's AccR the mean over its resampled videos, as the metric's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def per_video(seed_dir: Path, row: str) -> dict[str, float]:
    """Video id -> AccR (avg) of ``row`` in the first metrics.json of ``seed_dir`` that has it."""
    for path in [p for p in [seed_dir / "metrics.json"] if p.is_file()] + sorted(seed_dir.glob("*/metrics.json")):
        rows = json.loads(path.read_text())["grounding"]
        if row in rows:
            if "per_video" not in rows[row]["avg"]:
                raise SystemExit(f"{path}: row {row!r} has no per_video AccR (a run of an older script)")
            return {v: r["AccR"] for v, r in rows[row]["avg"]["per_video"].items()}
    raise SystemExit(f"{seed_dir}: no */metrics.json with the row {row!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("seeds", type=Path, nargs="+", help="one directory per seed")
    ap.add_argument("--a", default="vRGV")
    ap.add_argument("--b", default="Co-occur")
    ap.add_argument("--resamples", type=int, default=10000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    diffs, boot = [], np.zeros(args.resamples)
    print(f"{'seed':>24} {args.a:>10} {args.b:>10} {'a - b':>8} videos")
    for d in args.seeds:
        a, b = per_video(d, args.a), per_video(d, args.b)
        if a.keys() != b.keys():
            raise SystemExit(f"{d}: {args.a} and {args.b} were scored on different videos")
        x = np.array([[a[v], b[v]] for v in sorted(a)]) * 100
        diff = x[:, 0] - x[:, 1]
        diffs.append(diff.mean())
        print(f"{str(d):>24} {x[:, 0].mean():>10.2f} {x[:, 1].mean():>10.2f} {diff.mean():>8.2f} {len(diff)}")
        boot += diff[rng.integers(len(diff), size=(args.resamples, len(diff)))].mean(1)
    boot /= len(args.seeds)
    d = np.array(diffs)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    print(f"mean a - b {d.mean():.2f} over {len(d)} seeds; a wins {int((d > 0).sum())}, ties {int((d == 0).sum())}, "
          f"loses {int((d < 0).sum())}; paired bootstrap over videos, 95 % interval [{lo:.2f}, {hi:.2f}]")


if __name__ == "__main__":
    main()
