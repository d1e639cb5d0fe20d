"""UASAN on the CPU: one training step (eq. 12's losses + backward) and classifying every pair of a
200-video set (trajectory classes over 35 categories, predicate scores over 132 predicates), for
the full model and Table 4's Model A. Shapes: ``benchmarks/shapes.py`` (UASAN_*).

    OMP_NUM_THREADS=1 pytest benchmarks/bench_uasan.py --benchmark-only
"""

from __future__ import annotations

import pytest
import torch
from harness import provider_params, record, run
from shapes import UASAN_CLASSIFY, UASAN_TRAIN, UASANShape

from pyvrel.models.uasan import UASAN, UASANConfig
from pyvrel.models.uasan.task import collate


def make(shape: UASANShape, variant: str, objects: int, predicates: int):
    torch.manual_seed(0)
    layers = 3 if shape.hidden >= 512 else 1
    cfg = UASANConfig(visual_dim=shape.visual_dim, text_dim=shape.text_dim, hidden=shape.hidden, tokens=shape.tokens,
                      heads=8 if shape.hidden >= 512 else 4, layers=layers, variant=variant)
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(shape.segments):
        pairs = torch.randint(0, shape.tracks, (shape.pairs, 2), generator=g)
        pairs[:, 1] = (pairs[:, 0] + 1 + pairs[:, 1] % (shape.tracks - 1)) % shape.tracks  # s != o
        items.append({"traj": torch.randn(shape.tracks, shape.visual_dim, generator=g),
                      "traj_label": torch.randint(0, objects, (shape.tracks,), generator=g), "pairs": pairs,
                      "union": torch.randn(shape.pairs, shape.visual_dim, generator=g),
                      "motion": torch.randn(shape.pairs, 15, generator=g),
                      "labels": (torch.rand(shape.pairs, predicates, generator=g) < 0.02).float()})
    text = torch.randn(objects, shape.text_dim, generator=g), torch.randn(predicates, shape.text_dim, generator=g)
    return UASAN(cfg), collate(items), text


PROVIDERS = provider_params("cpp")  # the model on the CPU, automatic backend


@pytest.mark.parametrize("variant", ["full", "A"])
@pytest.mark.parametrize("shape", UASAN_TRAIN, ids=lambda s: s.name)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_train_step(benchmark, provider, shape, variant):
    model, batch, (objects, predicates) = make(shape, variant, 25, 71)
    benchmark.group = f"uasan-train-step-{shape.name}"
    record(benchmark, provider, shape, variant=variant)

    def step():
        model.zero_grad()
        loss = model(batch, objects, predicates)["loss"]
        loss.backward()
        return loss

    assert torch.isfinite(run(benchmark, step, provider))


@pytest.mark.parametrize("variant", ["full", "A"])
@pytest.mark.parametrize("shape", UASAN_CLASSIFY, ids=lambda s: s.name)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_classify_all_pairs(benchmark, provider, shape, variant):
    model, batch, (objects, predicates) = make(shape, variant, 35, 132)
    model.eval()
    benchmark.group = f"uasan-classify-{shape.name}"
    record(benchmark, provider, shape, variant=variant, pairs=len(batch["pairs"]))

    def classify():
        obj = model.object_embeddings(objects)
        pred = model.predicate_embeddings(predicates)
        cls = torch.softmax(model.trajectory_logits(batch["traj"], obj), -1).max(-1)
        return cls, model.scores(model.relation_logits(batch["traj"], batch["pairs"], batch["union"],
                                                      batch["motion"], pred))

    with torch.no_grad():
        _, scores = run(benchmark, classify, provider)
    assert scores.shape == (shape.segments * shape.pairs, 132) and bool(torch.isfinite(scores).all())
