"""vRGV on the CPU: one training step (stage 2: grounder + decoder + reconstruction loss + backward)
and grounding one query in one video (model forward + temporal segments + Viterbi linking of subject
and object + interpolation). Provider ``soft_tubes``: the training step with
``tube_training="soft_viterbi"`` (regions pooled with ``ops.soft_viterbi``'s marginals, three calls
of the op per step). The linking op alone, against a NumPy DP, is in ``bench_viterbi.py``.
Shapes: ``benchmarks/shapes.py`` (VRGV).

    pytest benchmarks/bench_vrgv.py --benchmark-only
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from harness import provider_params, record, run
from shapes import VRGV, VRGVShape

from pyvrel.models.vrgv import VRGVConfig, VRGVTrainModel, box_term, ground_pair
from pyvrel.models.vrgv.task import collate


def make(shape: VRGVShape, tube_training: str = "attention"):
    torch.manual_seed(0)
    cfg = replace(VRGVConfig() if shape.preset == "vidvrd" else VRGVConfig.synthetic(), tube_training=tube_training)
    model = VRGVTrainModel(cfg, 200, torch.randn(35, cfg.word_dim), stage=2)
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(cfg.num_frames, cfg.num_proposals, 2, generator=g) * 500
    boxes = torch.cat([xy, xy + 20 + torch.rand(cfg.num_frames, cfg.num_proposals, 2, generator=g) * 100], -1)
    where = box_term(boxes, 640.0, 640.0)  # the regions' box values (the soft path links these boxes)
    items = [(torch.cat([torch.randn(cfg.num_frames, cfg.num_proposals, cfg.feature_dim, generator=g), where], -1),
              b % 35, (b + 1) % 35, [1, 4 + b % 10, 5, 6, 2]) for b in range(shape.batch)]
    frames = torch.round(torch.linspace(0, shape.frame_count - 1, cfg.num_frames)).long()
    return cfg, model, collate(items), boxes, frames


def _ground(model, cfg, batch, boxes, frames, frame_count):
    out = model.grounder(batch["regions"][:1], batch["subject"][:1], batch["object"][:1])
    return ground_pair(boxes, frames, frame_count, out.alpha_s[0], out.alpha_o[0], out.beta_frame[0],
                       out.beta_clip[0], temporal_threshold=0.0)


PROVIDERS = provider_params("cpp")  # the model's ops on the CPU, automatic backend


@pytest.mark.parametrize("shape", VRGV, ids=lambda s: s.name)
@pytest.mark.parametrize("provider", PROVIDERS + provider_params("soft_tubes"))
def test_train_step(benchmark, provider, shape):
    cfg, model, batch, *_ = make(shape, "soft_viterbi" if provider == "soft_tubes" else "attention")
    benchmark.group = "vrgv-train-step"
    record(benchmark, provider, shape)

    def step():
        model.zero_grad()
        loss = model(batch)["loss"]
        loss.backward()
        return loss

    loss = run(benchmark, step, provider)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("shape", VRGV, ids=lambda s: s.name)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_ground_video(benchmark, provider, shape):
    cfg, model, batch, boxes, frames = make(shape)
    model.eval()
    benchmark.group = "vrgv-ground-video"
    record(benchmark, provider, shape)
    with torch.no_grad():
        g = run(benchmark, lambda: _ground(model, cfg, batch, boxes, frames, shape.frame_count), provider)
    assert g.duration == (0, shape.frame_count)  # threshold 0: the whole video is one segment
