"""vRGV soft tubes (``tube_training="soft_viterbi"``): marginals of the linking as pooling weights."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pyvrel.models.vrgv import VRGVConfig, VRGVTrainModel
from pyvrel.models.vrgv.soft_tubes import _Marginals, soft_tubes
from pyvrel.models.vrgv.task import collate

TINY = VRGVConfig(num_frames=6, num_clips=2, num_proposals=4, feature_dim=3, word_dim=4, embed_dim=8, hidden_dim=8,
                  dropout=0.0, tube_training="soft_viterbi", pairwise_weight=2.0)


def _boxes(*lead: int, T: int = 5, M: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(*lead, T, M, 2, generator=g)
    return torch.cat([xy, xy + 0.2 + torch.rand(*lead, T, M, 2, generator=g)], -1)


def test_soft_tubes_are_the_attention_without_links_and_distributions_with_them():
    alpha = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1)).softmax(-1)
    boxes = _boxes(3)
    torch.testing.assert_close(soft_tubes(alpha, boxes, 0.0), alpha)
    tubes = soft_tubes(alpha, boxes, 2.0)
    torch.testing.assert_close(tubes.sum(-1), torch.ones(3, 5))
    assert (tubes - alpha).abs().max() > 1e-2  # the links move weight
    leaf = alpha.clone().requires_grad_()
    (soft_tubes(leaf, boxes, 2.0) * torch.arange(4.0)).sum().backward()  # a loss on the tubes reaches α
    assert leaf.grad.abs().max() > 1e-3


def test_soft_tube_marginals_have_the_gradient_of_a_differentiable_forward_backward():
    unary = torch.randn(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    boxes = _boxes(2, T=4, M=3).double()
    assert torch.autograd.gradcheck(lambda u: _Marginals.apply(u, boxes, 1.5), (unary,))


def test_the_reconstruction_loss_trains_the_attention_through_the_soft_path():
    torch.manual_seed(0)
    T, M = TINY.num_frames, TINY.num_proposals
    items = [(torch.cat([torch.randn(T, M, 3), _boxes(T=T, M=M, seed=b), torch.rand(T, M, 1)], -1), b % 3, 2,
              [1, 4, 5, 2]) for b in range(2)]
    batch = collate(items)
    losses, grads = {}, {}
    for kind, weight in (("attention", None), ("soft_viterbi", None), ("soft_viterbi", 0.0)):
        torch.manual_seed(0)
        model = VRGVTrainModel(replace(TINY, tube_training=kind, tube_weight=weight), 6, torch.randn(3, TINY.word_dim))
        loss = model(batch)["loss"]
        loss.backward()
        losses[kind, weight] = loss.detach()
        grads[kind, weight] = torch.cat([p.grad.flatten() for p in model.grounder.sau.parameters()])
    assert grads["soft_viterbi", None].abs().max() > 0
    assert not torch.allclose(grads["soft_viterbi", None], grads["attention", None])
    torch.testing.assert_close(losses["soft_viterbi", 0.0], losses["attention", None])  # λ = 0: the paper
    torch.testing.assert_close(grads["soft_viterbi", 0.0], grads["attention", None], atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="tube_training"):
        VRGVConfig(tube_training="hard")
    with pytest.raises(ValueError, match="tube_weight"):
        VRGVConfig(tube_weight=-1.0)
