"""VidVRD-II on the CPU: one training step (forward + focal losses + backward over 12 segments of
64 pairs), segment inference (one 300-frame video, 19 segments of 10 tracklets: classification,
propagation, 3-step iterative inference, candidates, relation NMS) and the greedy association of a
200-video synthetic set (ground-truth relation pieces plus distractors, 50 predictions per segment),
against the pair-at-a-time reference (``associate_reference``).

    OMP_NUM_THREADS=1 pytest benchmarks/bench_vidvrd2.py --benchmark-only

Shapes are here rather than in ``shapes.py``: they are this model's presets, not op shapes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from harness import provider_params, record, run

from pyvrel.data.segments import segment_spans
from pyvrel.data.synthetic import SynthConfig, generate
from pyvrel.data.tracklets import Tracklet
from pyvrel.eval.association import SegmentRelation, Track, associate, cut_relations
from pyvrel.eval.reference import associate_reference
from pyvrel.models.vidvrd2 import IterativeClassifier, PairBatch, VidVRD2Config
from pyvrel.models.vidvrd2.inference import predict_segments, video_segments

PRESETS = ["vidvrd", "synthetic"]  # VidVRD's full widths (D 1536, hidden 768, 36 x 132 tables); the small model
PROVIDERS = provider_params("cpp")  # the model's ops on the CPU, automatic backend


def _model(preset: str) -> IterativeClassifier:
    torch.manual_seed(0)
    return IterativeClassifier(getattr(VidVRD2Config, preset)())


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_train_step(benchmark, provider, preset):
    model = _model(preset)
    cfg, B = model.cfg, 12 * 64
    g = torch.Generator().manual_seed(0)
    batch = PairBatch(torch.randn(B, cfg.feature_dim, generator=g), torch.randn(B, cfg.feature_dim, generator=g),
                      torch.randn(B, 12, generator=g), torch.randint(0, cfg.num_objects + 1, (B,), generator=g),
                      torch.randint(0, cfg.num_objects + 1, (B,), generator=g),
                      (torch.rand(B, cfg.num_predicates, generator=g) < 0.01).float())
    benchmark.group = "vidvrd2-train-step"
    record(benchmark, provider, preset=preset, pairs=B)

    def step():
        model.zero_grad()
        loss = model(batch)["loss"]
        loss.backward()
        return loss

    assert torch.isfinite(run(benchmark, step, provider))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_segment_inference(benchmark, provider, preset):
    model = _model(preset).eval()
    cfg = model.cfg
    rng = np.random.default_rng(0)
    tracks = []
    for _ in range(10):
        xy = rng.uniform(0, 500, 2) + np.cumsum(rng.normal(0, 2, (300, 2)), 0)
        wh = rng.uniform(40, 200, 2)
        tracks.append(Tracklet("dog", 1.0, 0, np.concatenate([xy, xy + wh], 1),
                               rng.normal(0, 1, (300, cfg.feature_dim)).astype(np.float32)))
    segments = video_segments(tracks, 300, cfg.segment_length, cfg.segment_stride)
    objects, predicates = [f"o{i}" for i in range(cfg.num_objects)], [f"p{i}" for i in range(cfg.num_predicates)]
    benchmark.group = "vidvrd2-segment-inference"
    record(benchmark, provider, preset=preset, segments=len(segments), tracklets=10)
    out = run(benchmark, lambda: predict_segments(model, segments, objects, predicates, 1280, 720), provider)
    assert len(out) == 19


def _association_set(videos: int = 200, per_segment: int = 50):
    rng = np.random.default_rng(0)
    out = []
    for video in generate(SynthConfig(seed=3, num_videos=videos, features=False, train_fraction=0.0)):
        gt = video.annotation.relation_view()
        triplets = sorted({r.triplet for r in gt}) or [("a", "b", "c")]
        segs = []
        for s, e in segment_spans(video.annotation.frame_count):
            pieces = cut_relations(gt, s, e)
            preds = [replace(p, score=float(rng.uniform(0.5, 1))) for p in pieces]
            while pieces and len(preds) < per_segment:  # distractors: other triplets on jittered pieces
                p = pieces[int(rng.integers(len(pieces)))]
                jitter = rng.normal(0, 5, 4)
                preds.append(SegmentRelation(triplets[int(rng.integers(len(triplets)))], float(rng.uniform(0, 0.5)),
                                             Track(p.sub.start, p.sub.boxes + jitter),
                                             Track(p.obj.start, p.obj.boxes - jitter)))
            segs.append(((s, e), preds))
        out.append(segs)
    return out


@pytest.mark.parametrize("provider", provider_params("reference", "pyvrel"))
def test_association_200_videos(benchmark, provider):
    videos = _association_set()
    benchmark.group = "vidvrd2-association"
    record(benchmark, provider, videos=len(videos), predictions=sum(len(p) for v in videos for _, p in v))
    fn = associate_reference if provider == "reference" else associate
    out = run(benchmark, lambda: [fn(v, "vidvrd2", pixel_offset=0) for v in videos], provider, min_rounds=1)
    assert len(out) == 200 and sum(map(len, out)) > 0
