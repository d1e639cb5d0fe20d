"""vRGV on the CPU: one training step (stage 2: grounder + decoder + reconstruction loss + backward)
and grounding one query in one video (model forward + temporal segments + Viterbi linking of subject
and object + interpolation), next to the linking alone with pyvrel's op and with a NumPy DP in the
public code's style (one vectorised max-plus step per link, ``specs/postprocessing.md`` §4.1).
Shapes: ``benchmarks/shapes.py`` (VRGV).

    pytest benchmarks/bench_vrgv.py --benchmark-only
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from shapes import VRGV, VRGVShape

from pyvrel.models.vrgv import VRGVConfig, VRGVTrainModel, ground_pair
from pyvrel.models.vrgv.task import collate


def make(shape: VRGVShape):
    torch.manual_seed(0)
    cfg = VRGVConfig() if shape.preset == "vidvrd" else VRGVConfig.synthetic()
    model = VRGVTrainModel(cfg, 200, torch.randn(35, cfg.word_dim), stage=2)
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(cfg.num_frames, cfg.num_proposals, 2, generator=g) * 500
    boxes = torch.cat([xy, xy + 20 + torch.rand(cfg.num_frames, cfg.num_proposals, 2, generator=g) * 100], -1)
    items = [(torch.randn(cfg.num_frames, cfg.num_proposals, cfg.visual_dim, generator=g), b % 35, (b + 1) % 35,
              [1, 4 + b % 10, 5, 6, 2]) for b in range(shape.batch)]
    frames = torch.round(torch.linspace(0, shape.frame_count - 1, cfg.num_frames)).long()
    return cfg, model, collate(items), boxes, frames


def _ground(model, cfg, batch, boxes, frames, frame_count):
    out = model.grounder(batch["regions"][:1], batch["subject"][:1], batch["object"][:1])
    return ground_pair(boxes, frames, frame_count, out.alpha_s[0], out.alpha_o[0], out.beta_frame[0],
                       out.beta_clip[0], temporal_threshold=0.0)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU with +1 pixel areas."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1, 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)  # noqa: E731
    return w * h / (area(a)[:, None] + area(b)[None, :] - w * h)


def numpy_dp(alpha: np.ndarray, boxes: np.ndarray, frames: np.ndarray) -> list[int]:
    """Exact max-sum path of α + IoU/gap over all frames, one NumPy max-plus step per link."""
    V, back = alpha[0].copy(), []
    for k in range(1, len(alpha)):
        iou = _iou(boxes[k - 1], boxes[k])
        cand = V[:, None] + iou / (frames[k] - frames[k - 1]) + alpha[k][None, :]
        back.append(cand.argmax(0))
        V = cand.max(0)
    path = [int(V.argmax())]
    for b in reversed(back):
        path.insert(0, int(b[path[0]]))
    return path


@pytest.mark.parametrize("shape", VRGV, ids=lambda s: s.name)
def test_train_step(benchmark, shape):
    cfg, model, batch, *_ = make(shape)
    benchmark.group = "vrgv-train-step"

    def step():
        model.zero_grad()
        loss = model(batch)["loss"]
        loss.backward()
        return loss

    loss = benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("shape", VRGV, ids=lambda s: s.name)
def test_ground_video(benchmark, shape):
    cfg, model, batch, boxes, frames = make(shape)
    model.eval()
    benchmark.group = "vrgv-ground-video"
    with torch.no_grad():
        g = benchmark.pedantic(_ground, args=(model, cfg, batch, boxes, frames, shape.frame_count), rounds=3,
                               warmup_rounds=1)
    assert g.duration == (0, shape.frame_count)  # threshold 0: the whole video is one segment


@pytest.mark.parametrize("provider", ["pyvrel", "numpy-dp"])
@pytest.mark.parametrize("shape", VRGV, ids=lambda s: s.name)
def test_link_video(benchmark, shape, provider):
    """Linking alone (subject and object over all 120 sampled frames)."""
    cfg, model, batch, boxes, frames = make(shape)
    alpha = torch.rand(2, cfg.num_frames, cfg.num_proposals, generator=torch.Generator().manual_seed(1)).softmax(-1)
    benchmark.group = f"vrgv-link-{shape.name}"
    seg = np.arange(cfg.num_frames)
    want = [numpy_dp(alpha[i].double().numpy(), boxes.double().numpy(), frames.numpy()) for i in range(2)]
    if provider == "pyvrel":
        from pyvrel.models.vrgv import link_segments

        paths = benchmark.pedantic(link_segments, args=(boxes, alpha, frames, [seg]), rounds=5, warmup_rounds=1)[0]
        assert paths[0].tolist() == want
    else:
        a, b, f = alpha.double().numpy(), boxes.double().numpy(), frames.numpy()
        got = benchmark.pedantic(lambda: [numpy_dp(a[i], b, f) for i in range(2)], rounds=5, warmup_rounds=1)
        assert got == want
