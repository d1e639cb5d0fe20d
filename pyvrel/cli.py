"""The ``pyvrel`` command (also ``python -m pyvrel``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _info(args: argparse.Namespace) -> int:
    from pyvrel import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    cpu, cuda = info["cpu"], info["cuda"]
    print(f"pyvrel {info['version']}  (torch {info['torch']}, CUDA device available: {info['torch_cuda_available']})")
    if cpu["available"]:
        print(f"  C++ extension : {cpu['compiler']}, OpenMP {cpu['openmp']} ({cpu['openmp_max_threads']} threads)")
    else:
        print(f"  C++ extension : not available ({cpu['error']})")
    if cuda["available"]:
        print(f"  CUDA extension: CUDA {cuda['cuda_version']}, architectures {cuda['architectures']}")
    else:
        print(f"  CUDA extension: not built (nvcc on PATH: {info['nvcc_on_path']})")
    triton = info["triton"] or "not installed"
    print(f"  Triton        : {triton}{' (interpreter mode)' if info['triton_interpret'] else ''}")
    return 0


def _normalized_groundtruth(path: str) -> dict:
    """Ground truth divided by each video's width/height, for VidVRD-II's normalised outputs."""
    from pyvrel.data import read_annotations

    out = {}
    for vid, anno in read_annotations(path).items():
        scale = [anno.width, anno.height, anno.width, anno.height]
        rels = anno.relation_view()
        for r in rels:
            r.sub_traj, r.obj_traj = r.sub_traj / scale, r.obj_traj / scale
        out[vid] = rels
    return out


def _eval(args: argparse.Namespace) -> int:
    from pyvrel.data import FormatError, load_groundtruth, read_predictions
    from pyvrel.eval import evaluate_relations, evaluate_zero_shot

    try:
        pred = read_predictions(args.pred)
        if pred.version is not None and pred.version >= "VERSION 2.1":  # VidVRD-II: coordinates in [0, 1]
            gt = _normalized_groundtruth(args.gt)
        else:
            gt = load_groundtruth(args.gt)
    except (FormatError, FileNotFoundError, ValueError) as e:  # bad input files: say which and why
        print(f"pyvrel eval: error: {e}", file=sys.stderr)
        return 1
    kw = dict(viou_threshold=args.viou_threshold, mean_recall=args.mean_recall, per_video=args.per_video)
    result = evaluate_relations(gt, pred.results, args.variant, **kw)
    if args.train_gt:
        train = load_groundtruth(args.train_gt)
        kw["per_video"] = False
        result["zero_shot"] = evaluate_zero_shot(gt, pred.results, train, args.variant, **kw)
        result["generalized_zero_shot"] = evaluate_zero_shot(gt, pred.results, train, args.variant, generalized=True,
                                                             **kw)
    if args.json:
        print(json.dumps(result))
        return 0
    sections = [("all", result)] + [(k.replace("_", " "), result[k]) for k in ("zero_shot", "generalized_zero_shot")
                                    if k in result]
    print(f"pyvrel eval ({args.variant} variant): {args.pred} against {args.gt}")
    for name, res in sections:
        cols = {**{f"RelDet {k}": v for k, v in res["RelDet"].items()}, **{f"RelTag {k}": v for k, v in res["RelTag"].items()}}
        print(f"\n{name} ({res['videos']} videos)")
        print("  ".join(f"{k:>12}" for k in cols))
        print("  ".join(f"{100 * v:>11.2f}%" for v in cols.values()))
    if args.per_video:
        print("\nper video: " + "  ".join(f"{k:>8}" for k in next(iter(result["per_video"].values()))))
        for vid, row in result["per_video"].items():
            print(f"{vid:>10}: " + "  ".join(f"{v:>8.4g}" for v in row.values()))
    return 0


def _synth(args: argparse.Namespace) -> int:
    import time

    from pyvrel.data.synthetic import SynthConfig, write_world

    config = SynthConfig(seed=args.seed, num_videos=args.videos, tail=args.tail, feature_dim=args.feature_dim,
                         features=not args.no_features)
    t0 = time.perf_counter()
    meta = write_world(args.out_dir, config)
    seconds = time.perf_counter() - t0
    counts = meta["predicate_counts"]
    summary = {"out_dir": str(args.out_dir), "videos": {k: len(v) for k, v in meta["videos"].items()},
               "relations": sum(counts.values()), "predicates_used": len(counts), "seconds": round(seconds, 2)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {config.num_videos} videos ({summary['videos']['train']} train, {summary['videos']['test']} test) "
              f"with {summary['relations']} relations of {len(counts)} predicates to {args.out_dir} in {seconds:.1f} s")
        print("most frequent: " + ", ".join(f"{p} {n}" for p, n in list(counts.items())[:8]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pyvrel import __version__

    parser = argparse.ArgumentParser(prog="pyvrel", description="Video visual relation detection and grounding.")
    parser.add_argument("--version", action="version", version=f"pyvrel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="show what this installation was built with (pyvrel.build_info())")
    info.add_argument("--json", action="store_true", help="print the full build info as JSON")
    info.set_defaults(func=_info)

    ev = sub.add_parser("eval", help="score relation detection/tagging as the official VidVRD/VidOR evaluation does",
                        description="Score predictions (official prediction JSON, .json.xz too) against ground truth "
                                    "(an annotation folder, a per-video file, a JSON mapping video id -> annotation, "
                                    "or the evaluator's relation view).")
    ev.add_argument("gt", metavar="GT", help="ground truth: annotation folder or JSON file")
    ev.add_argument("pred", metavar="PRED", help="prediction file (.json or .json.xz)")
    ev.add_argument("--variant", choices=("official", "vru", "vidvrd2"), default="official",
                    help="official: VidVRD-helper; vru: VRU'20 server (top 200, 4 decimals); vidvrd2: VidVRD-II "
                         "(no +1 on box areas, P@k over k)")
    ev.add_argument("--train-gt", metavar="TRAIN_GT", help="training ground truth: adds zero-shot and generalized "
                                                          "zero-shot scores")
    ev.add_argument("--viou-threshold", type=float, default=0.5, help="vIoU a detection needs (default 0.5)")
    ev.add_argument("--mean-recall", action="store_true", help="add per-predicate mR@K and Mean")
    ev.add_argument("--per-video", action="store_true", help="add a per-video breakdown")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=_eval)

    sy = sub.add_parser("synth", help="write the synthetic video-relation world (official formats)",
                        description="Generate the deterministic synthetic world (pyvrel.data.synthetic): "
                                    "annotations/{train,test}/<vid>.json, features/<vid>.npz, world.json.")
    sy.add_argument("out_dir", metavar="OUT_DIR")
    sy.add_argument("--videos", type=int, default=200, help="number of videos (default 200)")
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--tail", type=float, default=1.0, help="long-tail exponent of category/motion frequencies")
    sy.add_argument("--feature-dim", type=int, default=32, help="appearance feature dimension")
    sy.add_argument("--no-features", action="store_true", help="annotations only")
    sy.add_argument("--json", action="store_true", help="print a JSON summary")
    sy.set_defaults(func=_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyvrel`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
