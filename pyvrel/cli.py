"""The ``pyvrel`` command (also ``python -m pyvrel``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyvrel.data import RelationTable


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


def _groundtruth_table(spec: str, normalize: bool) -> RelationTable:
    """The ground truth ``GT`` names: an annotation folder or file, or ``"synthetic"`` (the test
    videos of the world ``pyvrel train/detect --data synthetic`` use); divided by each video's
    width/height when ``normalize``."""
    from pyvrel.data import RelationTable, read_groundtruth_table

    if spec != "synthetic":
        return read_groundtruth_table(spec, normalize=normalize)
    from dataclasses import replace

    from pyvrel.data.dataset import open_dataset

    rels = {}
    for vid, a in open_dataset("synthetic").annotations("test").items():
        scale = [a.width, a.height, a.width, a.height] if normalize else 1
        rels[vid] = [replace(r, sub_traj=r.sub_traj / scale, obj_traj=r.obj_traj / scale) for r in a.relation_view()]
    return RelationTable.from_relations(rels, scores=False)


def _swapped_hint(gt: str, pred: str) -> str:
    """A hint when GT and PRED look given the other way round (PRED a folder or an annotation,
    GT a prediction file), else ``""``."""
    from pathlib import Path

    def head(path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read(4096)
        except OSError:
            return b""

    gt_is_pred = Path(gt).is_file() and b'"results"' in head(gt)
    pred_is_gt = Path(pred).is_dir() or b'"relation_instances"' in head(pred) or b'"video_id"' in head(pred)
    if gt_is_pred or pred_is_gt:
        return f" (hint: GT comes first, then PRED: pyvrel eval {pred} {gt}?)"
    return ""


def _eval_grounding(args: argparse.Namespace) -> int:
    """AccS / AccO / AccR of grounded queries (one relation per triplet and video) at the paper's three
    spatial thresholds and over all three (the code's tIoU)."""
    from pyvrel.data import FormatError, load_groundtruth, read_predictions
    from pyvrel.models.vrgv.task import evaluate_grounding

    try:
        result = evaluate_grounding(load_groundtruth(args.gt), read_predictions(args.pred).results)
    except (FormatError, FileNotFoundError, ValueError) as e:
        print(f"pyvrel eval: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
        return 0
    avg = result["avg"]
    print(f"pyvrel eval --grounding: {args.pred} against {args.gt} ({avg['videos']} videos, {avg['queries']} queries)")
    print(f"{'sIoU':>6}" + "".join(f"{k:>9}" for k in ("AccS", "AccO", "AccR")))
    for name, res in result.items():
        print(f"{name:>6}" + "".join(f"{100 * res[k]:>8.2f}%" for k in ("AccS", "AccO", "AccR")))
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.grounding:
        return _eval_grounding(args)
    from pyvrel._gc import paused_gc

    if "numpy" not in sys.modules:  # numpy is imported next: settings for this short process (benchmarks/README.md)
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS call follows; its threads spun ~30 ms of CPU
        os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")  # 2 MiB pages stalled on compaction after a big process
    with paused_gc():  # the collector's passes over the imports and tables cost ~10% of the command
        return _eval_relations(args)


def _eval_relations(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from pyvrel.data import FormatError, read_prediction_table
    from pyvrel.eval import evaluate_relations, evaluate_zero_shot, input_warnings
    from pyvrel.eval.checks import normalized

    def fail(message: str) -> int:
        print(f"pyvrel eval: error: {message}", file=sys.stderr)
        return EXIT_FAILED

    try:
        def check(path: str, what: str) -> str:  # every missing input reads the same
            if path != "synthetic" and not Path(path).exists():
                raise FileNotFoundError(f"{path}: no such file or folder ({what})")
            return path

        if Path(check(args.pred, "PRED")).is_dir():
            raise FileNotFoundError(f"{args.pred}: is a folder; PRED is one prediction file (.json or .json.xz)")
        pred = read_prediction_table(args.pred)  # columnar: no Relation object per prediction
        gt = _groundtruth_table(check(args.gt, "GT"), normalized(pred.version))  # VidVRD-II: coordinates in [0, 1]
        train = _groundtruth_table(check(args.train_gt, "--train-gt"), False) if args.train_gt else None
    except (FormatError, FileNotFoundError, ValueError) as e:  # bad input files: say which and why
        return fail(f"{e}{_swapped_hint(args.gt, args.pred)}")
    found = input_warnings(gt, pred)
    if args.strict and found:
        for w in found:
            fail(f"{w} (--strict)")
        return EXIT_FAILED
    kw = dict(viou_threshold=args.viou_threshold, mean_recall=args.mean_recall, per_video=args.per_video)
    try:
        with warnings.catch_warnings(record=True) as caught:  # the evaluation's own warnings join the list
            warnings.simplefilter("always")
            result = evaluate_relations(gt, pred, args.variant, **kw)
            if train is not None:
                kw["per_video"] = False
                result["zero_shot"] = evaluate_zero_shot(gt, pred, train, args.variant, **kw)
                result["generalized_zero_shot"] = evaluate_zero_shot(gt, pred, train, args.variant, generalized=True,
                                                                     **kw)
    except ValueError as e:  # e.g. no ground-truth relation at all
        return fail(f"{e}{_swapped_hint(args.gt, args.pred)}")
    found += [str(w.message) for w in caught]
    for w in found:
        print(f"pyvrel eval: warning: {w}", file=sys.stderr)
    result["warnings"] = found
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
    from pyvrel.engine import ConfigError
    from pyvrel.engine.rundir import OutputFolderError, check_out_dir, clear_dir

    try:
        config = SynthConfig(seed=args.seed, num_videos=args.videos, tail=args.tail, feature_dim=args.feature_dim,
                             features=not args.no_features, clip_dim=args.clip_dim, grounding=args.grounding,
                             proposals=args.proposals, sampled_frames=args.sampled_frames, open_vocab=args.open_vocab,
                             hvrnet=args.hvrnet, predicate_tail=args.predicate_tail,
                             pair_relations=args.pair_relations, twins=args.twins)
        clear = check_out_dir(args.out_dir, "OUT_DIR", overwrite=args.overwrite)
    except ConfigError as e:  # named by its option
        print(f"pyvrel synth: error: --{e.key.replace('num_', '').replace('_', '-')}: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except OutputFolderError as e:
        print(f"pyvrel synth: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if clear:  # no mixture of two worlds
        clear_dir(args.out_dir)
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


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_SECTIONS = ("model", "train")


class _UsageError(Exception):
    """A wrong command line or config value (exit code 2)."""


def _read_config_file(path: str) -> dict:
    """The ``{"model": {...}, "train": {...}}`` mapping of a JSON or YAML file; errors name the file."""
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    text = file.read_text()
    if file.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise _UsageError(f"{path}: YAML configs need PyYAML (pip install pyyaml); or write the config as JSON")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise _UsageError(f"{path}: not valid YAML: {e}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise _UsageError(f"{path}: not valid JSON: {e}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise _UsageError(f"{path}: expected a mapping with sections {', '.join(_SECTIONS)}, got {type(data).__name__}")
    for section, values in data.items():
        if section not in _SECTIONS:
            raise _UsageError(f"{path}: {section}: unknown section (valid: {', '.join(_SECTIONS)})")
        if not isinstance(values, dict):
            raise _UsageError(f"{path}: {section}: expected a mapping, got {values!r}")
    return data


def _apply_set(config: dict, origins: dict, item: str) -> None:
    """Apply one ``--set section.key=value`` (value parsed as JSON, else kept as a string)."""
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or parts[0] not in _SECTIONS or not all(parts):
        raise _UsageError(f"--set {item}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(_SECTIONS)} "
                          "(e.g. train.lr=1e-3)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    node = config.setdefault(parts[0], {})
    for part in parts[1:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise _UsageError(f"--set {item}: {part} is not a mapping")
    node[parts[-1]] = value
    origins[f"{parts[0]}.{parts[1]}"] = "--set"


def _train(args: argparse.Namespace) -> int:
    import logging

    from pyvrel.engine import distributed as dist

    handler = logging.StreamHandler(sys.stderr)  # this command's messages; removed when it returns
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("pyvrel")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if dist.env_rank() == 0 else logging.WARNING)
    try:
        return _run_training(args)
    finally:
        logger.removeHandler(handler)


def _run_training(args: argparse.Namespace) -> int:
    from pyvrel.engine import ConfigError, UnknownModelError
    from pyvrel.engine import distributed as dist
    from pyvrel.engine.run import default_out, prepare_run
    from pyvrel.engine.rundir import OutputFolderError, check_run_dir

    origins: dict[str, str] = {}
    try:
        out = args.out or default_out(args.model)  # refused before anything is built or written
        clear = dist.env_rank() == 0 and check_run_dir(out, args.resume, args.overwrite)
        config: dict = {}
        if args.config:
            config = _read_config_file(args.config)
            origins = {f"{s}.{k}": args.config for s, values in config.items() for k in values}
        for item in args.set:
            _apply_set(config, origins, item)
        run = prepare_run(args.model, args.data, config, out)
        summary = run.fit(resume=args.resume, clear=clear)
    except UnknownModelError as e:
        print(f"pyvrel train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as e:
        source = e.source or origins.get(".".join(e.key.split(".")[:2]).split("[")[0], "defaults")
        print(f"pyvrel train: error: {source}: {e.key}: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except (_UsageError, OutputFolderError) as e:
        print(f"pyvrel train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError, FloatingPointError) as e:  # bad input files, diverged training
        print(f"pyvrel train: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("pyvrel train: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if dist.env_rank() == 0:
        parts = [f"trained to epoch {summary['epoch']} ({summary['step']} steps)"]
        if "loss" in summary["train"]:
            parts.append(f"last loss {summary['train']['loss']:.4g}")
        if summary["eval"]:
            parts.append("eval " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in summary["eval"].items()))
        print(", ".join(parts) + f"; outputs in {run.out}")
    return EXIT_OK


def _predict(args: argparse.Namespace, command: str, load: Callable, run: Callable, summary: str) -> int:
    """``pyvrel detect``/``ground``: the checkpoint's model (``load(ckpt, ema=...)``) run on ``--data``
    (``run(model, dataset)`` -> video id -> predictions), written to ``--out``; ``summary`` (with
    ``{}`` for the number of predictions) starts the line printed at the end. An object detector
    (a model with ``write_detections(dataset, split, out)``, HVR-Net's) instead writes its per-frame
    detections into the new or empty folder ``--out`` (``--split all``: every split)."""
    from pathlib import Path

    from pyvrel.data import write_predictions
    from pyvrel.data.dataset import check_data, open_dataset
    from pyvrel.engine import UnknownModelError, load_checkpoint
    from pyvrel.engine.rundir import OutputFolderError, check_out_dir, check_out_file

    try:
        out = Path(args.out)  # checked before the work: a file, or an object detector's new or empty folder
        if not out.is_dir():
            check_out_file(out, "--out")
        elif any(out.iterdir()):
            raise OutputFolderError(f"--out {out}: is a folder; give a file name (or, for an object detector such "
                                    "as hvrnet, a new or empty folder)")
        check_data(args.data)
        ckpt = load_checkpoint(args.checkpoint)
        try:
            model = load(ckpt, ema=not args.no_ema)
        except (UnknownModelError, ValueError) as e:
            raise ValueError(f"{args.checkpoint}: {e}") from None
        dataset = open_dataset(args.data, ckpt["meta"].get("model_config", {}).get("world"))  # its own world
        if hasattr(model, "write_detections"):
            check_out_dir(args.out, "--out")
            count = model.write_detections(dataset, args.split, args.out)
            print(f"detected objects on every frame of {count} videos ({args.split}); wrote {args.out} (pyvrel track "
                  f"{args.out} --data DIR --out TRACKED)")
            return EXIT_OK
        check_out_file(out, "--out")  # an empty folder is an object detector's output only
        if args.split == "all":
            raise _UsageError(f"--split all: only for an object detector (hvrnet), not {ckpt['meta']['model']}")
        preds = run(model, dataset)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_predictions(preds, args.out)
    except (OutputFolderError, _UsageError) as e:
        print(f"pyvrel {command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, ValueError) as e:
        print(f"pyvrel {command}: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{summary.format(sum(map(len, preds.values())))} in {len(preds)} {args.split} videos; wrote {args.out}")
    return EXIT_OK


def _detect(args: argparse.Namespace) -> int:
    from pyvrel.engine.registry import load_detector

    return _predict(args, "detect", load_detector, lambda model, data: model.detect(data, args.split),
                    "detected {} relations")


def _ground(args: argparse.Namespace) -> int:
    from pyvrel.data.queries import read_queries
    from pyvrel.engine import load_grounder

    def run(grounder, dataset):
        queries = read_queries(args.queries) if args.queries else None
        return grounder.ground(dataset, args.split, queries, legacy=args.legacy, greedy=args.greedy,
                               temporal_threshold=args.threshold)

    return _predict(args, "ground", load_grounder, run, "grounded {} queries")


def _track(args: argparse.Namespace) -> int:
    from pyvrel.data import FormatError
    from pyvrel.engine.rundir import OutputFolderError, check_out_dir, clear_dir
    from pyvrel.track import TrackConfig, track_folder

    try:
        config = TrackConfig(nms_threshold=args.nms_threshold, max_per_frame=args.max_per_frame,
                             link_threshold=args.link_threshold, suppress_threshold=args.suppress_threshold,
                             max_gap=args.max_gap, min_length=args.min_length)
        if args.detections == args.out or args.data == args.out:
            raise OutputFolderError(f"--out {args.out}: must differ from DETECTIONS and --data (it is written)")
        if check_out_dir(args.out, "--out", overwrite=args.overwrite):
            clear_dir(args.out)
    except OutputFolderError as e:
        print(f"pyvrel track: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = track_folder(args.detections, args.data, args.out, config)
    except (FormatError, FileNotFoundError, ValueError) as e:
        print(f"pyvrel track: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    if summary["empty"]:
        print(f"pyvrel track: warning: no tracklet in {len(summary['empty'])} videos ({', '.join(summary['empty'][:3])}"
              f"{', ...' if len(summary['empty']) > 3 else ''}); their feature files hold none", file=sys.stderr)
    print(f"tracked {summary['videos']} videos into {summary['tracklets']} tracklets in {summary['seconds']:.1f} s; "
          f"wrote the dataset folder {args.out} (pyvrel train/detect --data {args.out})")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from pyvrel.demo import run_demo
    from pyvrel.engine import UnknownModelError

    try:
        run_demo(args.out, quick=args.quick, threads=args.threads, model=args.model)
    except UnknownModelError as e:
        print(f"pyvrel demo: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pyvrel demo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


class _VersionAction(argparse.Action):
    """``--version``: the package metadata is read only when asked (it costs ~60 ms per command)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from pyvrel import __version__

        print(f"pyvrel {__version__}")
        parser.exit()


def _in_range(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse ``type``: a finite ``kind`` (int or float) in ``[low, high]``; otherwise argparse's
    usage error naming the option (exit 2)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a value in [{low}, {high}], got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyvrel", description="Video visual relation detection and grounding.")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="show what this installation was built with (pyvrel.build_info())")
    info.add_argument("--json", action="store_true", help="print the full build info as JSON")
    info.set_defaults(func=_info)

    ev = sub.add_parser("eval", help="score relation detection/tagging as the official VidVRD/VidOR evaluation does",
                        description="Score predictions (official prediction JSON, .json.xz too) against ground truth "
                                    "(an annotation folder, a per-video file, a JSON mapping video id -> annotation, "
                                    "or the evaluator's relation view). Warns (stderr, and 'warnings' in --json) when "
                                    "the two do not look like they belong together.",
                        epilog="exit codes: 0 scored; 1 missing/invalid input files, or a warning under --strict; "
                               "2 bad command line")
    ev.add_argument("gt", metavar="GT", help="ground truth: annotation folder or JSON file, or 'synthetic' (the test "
                                             "videos of the world 'pyvrel train/detect --data synthetic' use)")
    ev.add_argument("pred", metavar="PRED", help="prediction file (.json or .json.xz)")
    ev.add_argument("--variant", choices=("official", "vru", "vidvrd2"), default="official",
                    help="official: VidVRD-helper; vru: VRU'20 server (top 200, 4 decimals); vidvrd2: VidVRD-II "
                         "(no +1 on box areas, P@k over k)")
    ev.add_argument("--train-gt", metavar="TRAIN_GT", help="training ground truth: adds zero-shot and generalized "
                                                          "zero-shot scores")
    ev.add_argument("--viou-threshold", type=_in_range(float, 0.0, 1.0), default=0.5, help="vIoU a detection needs (default 0.5)")
    ev.add_argument("--mean-recall", action="store_true", help="add per-predicate mR@K and Mean")
    ev.add_argument("--per-video", action="store_true", help="add a per-video breakdown")
    ev.add_argument("--json", action="store_true", help="print one JSON object (with the warnings under 'warnings')")
    ev.add_argument("--strict", action="store_true", help="fail (exit 1) instead of warning when the predictions "
                                                         "name videos the ground truth lacks, cover fewer than half "
                                                         "of its videos, or hold coordinates outside the range their "
                                                         "version declares")
    ev.add_argument("--grounding", action="store_true",
                    help="score relation grounding (pyvrel ground's output) with vRGV's AccS/AccO/AccR at spatial "
                         "IoU 0.3, 0.5, 0.7 and averaged over the three")
    ev.set_defaults(func=_eval)

    sy = sub.add_parser("synth", help="write the synthetic video-relation world (official formats)",
                        description="Generate the deterministic synthetic world (pyvrel.data.synthetic): "
                                    "annotations/{train,test}/<vid>.json, features/<vid>.npz, world.json.",
                        epilog="exit codes: 0 done; 2 a bad option, or OUT_DIR is a file or a non-empty folder "
                               "(without --overwrite)")
    sy.add_argument("out_dir", metavar="OUT_DIR")
    sy.add_argument("--videos", type=int, default=200, help="number of videos (default 200)")
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--tail", type=float, default=1.0, help="long-tail exponent of category/motion frequencies")
    sy.add_argument("--feature-dim", type=int, default=32, help="appearance feature dimension")
    sy.add_argument("--clip-dim", type=int, default=0,
                    help="also write VrdONE-X's per-entity stream tracklet_clip of this width (default 0: none)")
    sy.add_argument("--open-vocab", type=int, default=0,
                    help="write UASAN's open-vocabulary stream of this width: tracklet_concept, union_grid and a "
                         "base/novel split whose names carry meaning (default 0: none)")
    sy.add_argument("--grounding", action="store_true",
                    help="write vRGV's grounding stream: proposal_* arrays with distractors, jitter and shuffled "
                         "slots (pyvrel.data.synthetic.streams.grounding) in place of the plain proposals")
    sy.add_argument("--proposals", type=int, default=10,
                    help="region proposals per sampled frame (default 10; 'pyvrel train --model vrgv' on the "
                         "synthetic preset reads 16)")
    sy.add_argument("--sampled-frames", type=int, default=120,
                    help="frames sampled for the proposals (default 120, vRGV's; the vrgv synthetic preset reads 24)")
    sy.add_argument("--hvrnet", action="store_true",
                    help="write HVR-Net's stream: RoI proposals with confusable categories (roi_*) and features of "
                         "the per-frame detections (det_features, for pyvrel track)")
    sy.add_argument("--predicate-tail", type=float, default=0.0,
                    help="long-tail exponent of the training split's predicate labels, over predicates that share "
                         "patterns (DLL's study; default 0: every relation kept)")
    sy.add_argument("--pair-relations", type=int, default=0,
                    help="keep at most this many relation instances (the longest) per subject-object pair "
                         "(vRGV's grounding world; default 0: all)")
    sy.add_argument("--twins", type=int, default=0,
                    help="same-category entities added per entity, in no relation, while each relation leaves a "
                         "trace of its predicate on its two entities' grounding features (vRGV's grounding world "
                         "of twins; default 0: none)")
    sy.add_argument("--no-features", action="store_true", help="annotations only")
    sy.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT_DIR, deleting its content "
                                                             "first (without it such a folder is refused)")
    sy.add_argument("--json", action="store_true", help="print a JSON summary")
    sy.set_defaults(func=_synth)

    tr = sub.add_parser("train", help="train a model (one process, or many under torchrun)",
                        description="Train a registered model with pyvrel.engine. The run's config has two sections: "
                                    "'model' (the model's settings) and 'train' (pyvrel.engine.TrainConfig), read "
                                    "from --config and then overridden by --set. Under torchrun the same command "
                                    "trains with DDP: torchrun --nproc_per_node N -m pyvrel train ...",
                        epilog="exit codes: 0 done; 1 missing/invalid input files or the run failed (e.g. a "
                               "non-finite loss); 2 bad command line or config (unknown model, key or value; "
                               "--out a file, or a non-empty folder that --resume does not continue, without "
                               "--overwrite); 130 interrupted")
    tr.add_argument("--model", required=True, help="a registered model name, or module:function of a task builder")
    tr.add_argument("--data", required=True, metavar="DIR|synthetic",
                    help="dataset folder (annotations/{train,test}/ official JSON, features/<video_id>.npz "
                         "tracklets, optional objects.txt/predicates.txt; see README 'Data'), or 'synthetic' for "
                         "the built-in synthetic world")
    tr.add_argument("--config", metavar="FILE", help="JSON (or YAML, with PyYAML) file with 'model' and 'train' "
                                                     "sections")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one setting, e.g. --set train.lr=1e-3 --set train.epochs=5 (VALUE is JSON, "
                         "else a string); repeatable")
    tr.add_argument("--out", metavar="DIR", help="output folder: config.json, metrics.jsonl, checkpoints/ "
                                                "(default runs/<model>)")
    tr.add_argument("--resume", metavar="CKPT|auto", help="continue from a checkpoint; 'auto': OUT/checkpoints/last.pt "
                                                          "when it exists")
    tr.add_argument("--overwrite", action="store_true",
                    help="start afresh in a non-empty --out, deleting its content first (without it such a "
                         "folder is refused unless --resume continues the run kept there)")
    tr.set_defaults(func=_train)

    de = sub.add_parser("detect", help="detect relations with a trained checkpoint (official prediction JSON)",
                        description="Rebuild the model of a 'pyvrel train' checkpoint (any registered model with "
                                    "a loader, e.g. vrdone; its EMA weights), detect relations in the videos of a "
                                    "split (named with the checkpoint's vocabulary), and write the "
                                    "official prediction JSON that 'pyvrel eval' reads. An hvrnet checkpoint "
                                    "detects objects instead: it writes per-frame detections into the folder "
                                    "--out, the input of 'pyvrel track'.",
                        epilog="exit codes: 0 done; 1 missing/invalid checkpoint or data; 2 bad command line")
    de.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file (e.g. RUN/checkpoints/last.pt)")
    de.add_argument("--data", required=True, metavar="DIR|synthetic",
                    help="dataset folder (as for 'pyvrel train'; written by 'pyvrel synth' too), or 'synthetic' "
                         "(the checkpoint's own world)")
    de.add_argument("--out", required=True, metavar="PRED.json|DIR",
                    help="prediction file to write (.json or .json.xz); for an object detector (hvrnet) a new or "
                         "empty folder of per-frame detections (<video_id>.npz, the input of 'pyvrel track')")
    de.add_argument("--split", default="test", choices=("train", "test", "all"),
                    help="videos to detect on (default test; all: every split, only for an object detector)")
    de.add_argument("--no-ema", action="store_true", help="use the trained weights instead of their EMA")
    de.set_defaults(func=_detect)

    gr = sub.add_parser("ground", help="ground relation queries with a trained vRGV checkpoint (subject and object "
                                       "trajectories, official prediction JSON)",
                        description="Rebuild vRGV from a 'pyvrel train --model vrgv' stage-2 checkpoint, ground each "
                                    "query 'subject-predicate-object' in its video (temporal attention threshold, "
                                    "Viterbi linking of the attended proposals, interpolation to every frame) and "
                                    "write one relation per query in the official prediction format; "
                                    "'pyvrel eval --grounding' scores it.",
                        epilog="exit codes: 0 done; 1 missing/invalid checkpoint, data or queries; 2 bad command line")
    gr.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file (e.g. RUN/checkpoints/last.pt)")
    gr.add_argument("--data", required=True, metavar="DIR|synthetic",
                    help="dataset folder (annotations/, features/<video_id>.npz with proposal_frames, "
                         "proposal_boxes, proposal_features), or 'synthetic' (the checkpoint's own world)")
    gr.add_argument("--queries", metavar="FILE", help='JSON {video_id: ["subject-predicate-object", ...]} '
                                                      "(default: every ground-truth triplet of the split's videos)")
    gr.add_argument("--out", required=True, metavar="OUT.json", help="prediction file to write (.json or .json.xz)")
    gr.add_argument("--split", default="test", choices=("train", "test"), help="videos to ground in (default test)")
    gr.add_argument("--legacy", action="store_true", help="the public code's linking score (last link dropped)")
    gr.add_argument("--greedy", action="store_true", help="vRGV*: greedy linking (lambda = 0)")
    gr.add_argument("--threshold", type=_in_range(float, 0.0, 2.0), metavar="SIGMA",
                    help="temporal threshold on the score beta2 + beta1 (default: the checkpoint's "
                         "model.temporal_threshold; pyvrel.models.vrgv.task.select_threshold picks one on "
                         "annotated videos)")
    gr.add_argument("--no-ema", action="store_true", help="use the trained weights instead of their EMA")
    gr.set_defaults(func=_ground)

    tk = sub.add_parser("track", help="link per-frame detections into tracklets with features (a dataset folder "
                                      "for 'pyvrel train/detect --data')",
                        description="The detection front end (pyvrel.track): per-frame detections of every annotated "
                                    "video of --data (DETECTIONS/<video_id>.npz with det_frame, det_boxes, "
                                    "det_scores, det_labels, det_features, or <video_id>.json; "
                                    "pyvrel.data.detections) -> per-frame class-aware NMS -> Seq-NMS linking -> "
                                    "tracklets with per-frame features and category scores, written to --out with "
                                    "--data's annotations: a dataset folder every relation model reads.",
                        epilog="exit codes: 0 done; 1 missing/invalid detections or annotations; 2 bad command "
                               "line or --out not empty (without --overwrite)")
    tk.add_argument("detections", metavar="DETECTIONS", help="folder of per-video detection files (.npz or .json)")
    tk.add_argument("--data", required=True, metavar="DIR", help="the dataset folder of the videos (annotations/, "
                                                                "optional objects.txt/predicates.txt)")
    tk.add_argument("--out", required=True, metavar="OUT", help="dataset folder to write (annotations/, features/)")
    tk.add_argument("--nms-threshold", type=_in_range(float, 0.0, 1.0), default=0.5,
                    help="per-frame NMS IoU within a label (default 0.5)")
    tk.add_argument("--max-per-frame", type=_in_range(int, 1, 1 << 20), default=20,
                    help="boxes kept per frame after NMS (default 20)")
    tk.add_argument("--link-threshold", type=_in_range(float, 0.0, 1.0), default=0.3,
                    help="Seq-NMS IoU linking consecutive frames (default 0.3)")
    tk.add_argument("--suppress-threshold", type=_in_range(float, 0.0, 1.0), default=0.3,
                    help="Seq-NMS IoU with a selected box that removes a box (default 0.3)")
    tk.add_argument("--max-gap", type=_in_range(int, 0, 1 << 20), default=5,
                    help="frames a tracklet may miss and be joined across (default 5; 0: no joining)")
    tk.add_argument("--min-length", type=_in_range(int, 1, 1 << 20), default=3,
                    help="shortest tracklet kept, frames (default 3)")
    tk.add_argument("--overwrite", action="store_true", help="write into a non-empty --out, deleting its content "
                                                             "first")
    tk.set_defaults(func=_track)

    dm = sub.add_parser("demo", help="train a model (VrdONE by default) on a small synthetic world on the CPU (under "
                                     "5 minutes), evaluate it next to its baseline, draw pictures",
                        description="The pyvrel demo: builds a synthetic world, trains MODEL on the CPU as 'pyvrel "
                                    "train' does (its training defaults and the demo settings of its registry "
                                    "entry), runs it on the held-out videos and prints its scores next to a "
                                    "baseline's. VrdONE (default): RelDet/RelTag (%) next to the frequency prior; "
                                    "groundtruth.json, predictions.json and prior_predictions.json ('pyvrel eval' "
                                    "reproduces the table from them), metrics.json, metrics.jsonl, checkpoints/, "
                                    "timeline.svg and training_curve.svg. vrgv: grounding AccS/AccO/AccR next to "
                                    "the co-occurrence model, grounding.svg. dll: VidVRD-II with and without DLL's "
                                    "heads on a long-tailed world, mR@K and recall.svg (per-predicate recall). uasan: base/novel splits "
                                    "next to Model A. hvrnet: frame-only vs relation stages, and 'pyvrel track' "
                                    "tracklets against the ground truth. It lists every file it wrote.")
    dm.add_argument("model", nargs="?", default="vrdone", metavar="MODEL",
                    help="a registered model with a demo: vrdone (default), vrgv, dll, uasan, hvrnet")
    dm.add_argument("--out", default="pyvrel_demo", metavar="DIR", help="output folder (default pyvrel_demo)")
    dm.add_argument("--quick", action="store_true", help="a tiny world and one short epoch (seconds; for tests)")
    dm.add_argument("--threads", type=_in_range(int, 1, 1024), default=1, help="torch CPU threads (default 1: on a busy 2-core machine "
                                                        "2 threads ran a step 25x slower)")
    dm.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyvrel`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    code = args.func(args)
    if argv is None and (args.func is _eval or int(os.environ.get("WORLD_SIZE", "1")) > 1):
        # End the process without the interpreter's teardown, once its files are closed and its two streams
        # flushed: `pyvrel eval` frees every module and table object one by one there (~0.03 s, 10% of the
        # command), and a torchrun worker (WORLD_SIZE > 1) aborted there in about 1 run of 4, after its last
        # Python line ("terminate called without an active exception", in torch's C++ teardown; 0 of 24 so), most
        # likely (not shown) a gloo worker thread that frees a finished collective's tensors and needs the GIL
        # of an interpreter being torn down: the race behind the deadlock that Trainer._drop_ddp avoids.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
