"""A VrdONE training step without host syncs but the matching's one copy; bf16 autocast end to end."""

import numpy as np
import pytest
import torch

from conftest import host_syncs, needs_gpu
from pyvrel.engine import Trainer, TrainConfig
from pyvrel.engine.trainer import move_to_device
from pyvrel.models.vrdone import Target, VrdONEConfig, hungarian_match
from pyvrel.models.vrdone.inputs import segment_mask
from pyvrel.models.vrdone.loss import match_layers
from pyvrel.models.vrdone.task import VrdONETrainModel, _collate
from test_vrdone import tiny


def _cfg() -> VrdONEConfig:
    return tiny(VrdONEConfig.synthetic(max_seq_len=32, num_classes=5, num_queries=4))


def _items(cfg: VrdONEConfig, n: int) -> list[list[tuple[torch.Tensor, Target]]]:
    """``n`` dataset items of one pair each: random features of 9..32 steps, 0..2 targets."""
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        L = int(torch.randint(9, 33, (), generator=g))
        spans = [(0, L // 2), (L // 3, L)][: i % 3]
        labels = torch.tensor([1 + (i + k) % cfg.num_classes for k in range(len(spans))], dtype=torch.long)
        masks = torch.stack([segment_mask(s, e, 32) for s, e in spans]) if spans else torch.zeros(0, 32)
        items.append([(torch.randn(cfg.in_channels, L, generator=g), Target(labels, masks))])
    return items


def test_match_layers_equals_matching_each_sample():
    # all layers and samples matched from one host copy of the costs = one scipy call per sample
    cfg = _cfg()
    model = VrdONETrainModel(cfg).eval()
    x, mask, targets = _collate(cfg.max_seq_len, cfg.max_div_factor)(_items(cfg, 5))
    out = model.vrdone(x, mask)
    layers = [(o["pred_logits"], o["pred_masks"]) for o in [out] + out["aux_outputs"]]
    weights = (cfg.cost_class, cfg.cost_mask, cfg.cost_dice)
    got = match_layers(layers, mask[:, 0], targets, weights)
    assert len(got) == cfg.dec_layers and all(len(per) == len(targets) for per in got)
    assert any(len(t.labels) == 0 for t in targets) and any(len(t.labels) == 2 for t in targets)
    for (logits, masks), per in zip(layers, got):
        for b, (t, (q, g)) in enumerate(zip(targets, per)):
            want_q, want_g = hungarian_match(logits[b].detach(), masks[b].detach(), mask[b, 0], t, weights)
            assert np.array_equal(q.numpy(), want_q) and np.array_equal(g.numpy(), want_g)
            assert q.dtype == g.dtype == torch.int64


def test_vrdone_trains_under_bf16_autocast_on_cpu():
    # the model, matching and losses run under autocast end to end: finite, decreasing losses
    torch.manual_seed(0)
    cfg = _cfg()
    model = VrdONETrainModel(cfg)
    batch = _collate(cfg.max_seq_len, cfg.max_div_factor)(_items(cfg, 6))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.vrdone(batch[0], batch[1])["pred_logits"].dtype == torch.bfloat16  # autocast is on
    losses = []
    for _ in range(12):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert all(np.isfinite(losses)), losses
    assert sum(losses[-3:]) < 0.95 * sum(losses[:3]), losses


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_vrdone_training_step_syncs_once_on_cuda(precision):
    # one training step waits for the device once: the Hungarian matching's copy of the costs
    cfg = _cfg()
    trainer = Trainer(VrdONETrainModel(cfg), _items(cfg, 8), TrainConfig(
        batch_size=4, device="cuda", precision=precision, progress=False, ema_decay=0.9, clip_grad_norm=1.0),
        collate_fn=_collate(cfg.max_seq_len, cfg.max_div_factor))
    trainer._setup()
    batches = list(trainer._loader(0, 0))
    trainer._train_step(move_to_device(batches[0], trainer.device))  # warm-up (lazy inits)
    counts = [len(host_syncs(lambda: trainer._train_step(move_to_device(batches[1], trainer.device))))
              for _ in range(3)]
    assert counts == [1, 1, 1], counts
