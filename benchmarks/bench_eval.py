"""Relation evaluation: pyvrel vs a plain-Python transcription of the official VidVRD-helper loop
(pyvrel.eval.reference), on synthetic data of the issue's size (benchmarks/shapes.py).

Groups: ``eval-score`` (scoring only, inputs already in memory: pyvrel's columnar
``RelationTable``s, and for comparison ``pyvrel-records``, dicts of ``Relation`` records that are
converted to tables first) and ``eval-end2end`` (load the ground-truth folder and the prediction
file, then score; pyvrel reads them with ``read_groundtruth_table`` and ``read_prediction_table``, as
``pyvrel eval`` does). ``python benchmarks/bench_eval.py DIR`` writes the data set to ``DIR`` for
timing whole commands (``pyvrel eval`` against ``benchmarks/official_eval.py``, see README.md). The results are checked to agree (1e-6) once, outside the timed region.

    pytest benchmarks/bench_eval.py --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest
from harness import provider_params, record, run
from shapes import EVAL_GT_PER_VIDEO, EVAL_PRED_PER_VIDEO, EVAL_SEED, EVAL_VIDEOS

from pyvrel.data import (Relation, RelationTable, load_groundtruth, read_groundtruth_table, read_prediction_table,
                         read_predictions, write_annotations, write_predictions)
from pyvrel.data.synthetic import SynthConfig, World, generate_video
from pyvrel.eval import evaluate_relations
from pyvrel.eval.reference import evaluate_reference, load_reference


def make_eval_data(root):
    """Ground truth (a folder of per-video annotation files, ~30 relations each) and 200
    predictions per video: jittered/retimed copies of ground-truth relations (some with another
    predicate) and relations between the video's entities with made-up predicates and spans."""
    rng = np.random.default_rng(EVAL_SEED)
    config = SynthConfig(seed=EVAL_SEED, num_videos=EVAL_VIDEOS, features=False)
    world = World(config)
    preds = {}
    annos = []
    for i in range(EVAL_VIDEOS):
        anno = generate_video(config, i, world).annotation
        anno.relations = anno.relations[:EVAL_GT_PER_VIDEO]
        annos.append(anno)
        gt = anno.relation_view()
        tubes = anno.boxes_by_tid()
        cats = anno.category_of()
        out = []
        for _ in range(EVAL_PRED_PER_VIDEO):
            if gt and rng.random() < 0.4:
                g = gt[int(rng.integers(len(gt)))]
                pred = g.triplet[1] if rng.random() < 0.7 else str(rng.choice(world.vocab.predicates))
                s = max(g.duration[0] + int(rng.integers(-3, 4)), 0)
                e = min(max(s + 1, g.duration[1] + int(rng.integers(-3, 4))), anno.frame_count)
                s_tid, o_tid = g.subject_tid, g.object_tid
            else:
                s_tid, o_tid = (int(t) for t in rng.choice(list(cats), 2, replace=False))
                pred = str(rng.choice(world.vocab.predicates[:30]))
                s = int(rng.integers(0, anno.frame_count - 10))
                e = s + int(rng.integers(10, 60))
            frames = [f for f in range(s, e) if f in tubes[s_tid] and f in tubes[o_tid]]
            if len(frames) < 2:
                continue
            s, e = frames[0], frames[-1] + 1
            if len(frames) != e - s:
                continue
            jit = lambda tid: np.array([tubes[tid][f] for f in range(s, e)], float) + rng.normal(0, 2, (e - s, 4))  # noqa: E731
            out.append(Relation((cats[s_tid], pred, cats[o_tid]), (s, e), jit(s_tid).round(2), jit(o_tid).round(2),
                                float(rng.random())))
        preds[anno.video_id] = out
    write_annotations(annos, root / "gt")
    write_predictions(preds, root / "pred.json")
    return root / "gt", root / "pred.json"


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    gt_dir, pred_path = make_eval_data(tmp_path_factory.mktemp("eval"))
    ref_gt, ref_pred = load_reference(gt_dir, pred_path)
    gt, pred = load_groundtruth(gt_dir), read_predictions(pred_path).results
    tables = RelationTable.from_relations(gt, scores=False), read_prediction_table(pred_path)
    ours = evaluate_relations(*tables)
    assert evaluate_relations(gt, pred) == ours == _end2end_pyvrel(gt_dir, pred_path)
    ref = evaluate_reference(ref_gt, ref_pred)
    for task in ("RelDet", "RelTag"):
        for k, v in ref[task].items():
            assert abs(ours[task][k] - v) <= 1e-6, (task, k, ours[task][k], v)
    return {"paths": (gt_dir, pred_path), "ref": (ref_gt, ref_pred), "records": (gt, pred), "ours": tables,
            "result": ours,
            "sizes": {"videos": len(gt), "gt": sum(map(len, gt.values())), "pred": sum(map(len, pred.values()))}}


@pytest.mark.benchmark(group="eval-score")
@pytest.mark.parametrize("provider", provider_params("reference", "pyvrel", "pyvrel-records"))
def test_score(benchmark, eval_data, provider):
    record(benchmark, provider, **eval_data["sizes"], result=eval_data["result"]["RelDet"])
    if provider == "reference":
        run(benchmark, lambda: evaluate_reference(*eval_data["ref"]), provider, min_rounds=2)
    else:
        args = eval_data["ours" if provider == "pyvrel" else "records"]
        run(benchmark, lambda: evaluate_relations(*args), provider)


def _end2end_reference(gt_dir, pred_path):
    return evaluate_reference(*load_reference(gt_dir, pred_path))


def _end2end_pyvrel(gt_dir, pred_path):
    return evaluate_relations(read_groundtruth_table(gt_dir), read_prediction_table(pred_path))


@pytest.mark.benchmark(group="eval-end2end")
@pytest.mark.parametrize("provider", provider_params("reference", "pyvrel"))
def test_end2end(benchmark, eval_data, provider):
    record(benchmark, provider, **eval_data["sizes"])
    fn = _end2end_reference if provider == "reference" else _end2end_pyvrel
    run(benchmark, lambda: fn(*eval_data["paths"]), provider, min_rounds=2)


if __name__ == "__main__":  # write the data set for timing whole commands: python benchmarks/bench_eval.py DIR
    import sys
    from pathlib import Path

    print(*make_eval_data(Path(sys.argv[1])))
