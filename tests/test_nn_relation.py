"""HVR-Net's proposal relations (pyvrel.nn.relation): the block against its formula, shapes and masks of
padded proposals, video descriptors and hard video mining, hard proposal triplets and the triplet loss
on hand-made affinities."""

import math

import pytest
import torch

from pyvrel.nn import (ProposalRelation, RelationStage, hard_proposal_triplets, mine_hard_videos,
                       proposal_attention_loss, proposal_triplet_loss, video_descriptor)


def test_relation_block_is_its_formula(gen):
    block = ProposalRelation(6, embed_dim=4).double()
    q, k = torch.randn(2, 3, 6, generator=gen, dtype=torch.float64), torch.randn(2, 5, 6, generator=gen,
                                                                                  dtype=torch.float64)
    out, affinity = block(q, k)
    logits = (q @ block.q_proj.weight.T + block.q_proj.bias) @ (k @ block.k_proj.weight.T + block.k_proj.bias
                                                                ).transpose(1, 2) / math.sqrt(4)
    expected = torch.softmax(logits, -1) @ k @ block.out_proj.weight.T + block.out_proj.bias  # no value projection
    torch.testing.assert_close(affinity, logits)
    torch.testing.assert_close(out, expected)
    assert out.shape == (2, 3, 6) and affinity.shape == (2, 3, 5)
    assert block.q_proj.weight.std() < 0.05  # N(0, 0.01) initialisation
    # cosine: the affinities without their scale (the norms of the projected queries and keys)
    qn = (q @ block.q_proj.weight.T + block.q_proj.bias).norm(dim=-1)
    kn = (k @ block.k_proj.weight.T + block.k_proj.bias).norm(dim=-1)
    torch.testing.assert_close(block.cosine(q, k), logits * math.sqrt(4) / (qn[:, :, None] * kn[:, None, :]))


def test_padded_proposals_are_masked(gen):
    stage = RelationStage(8, 6)
    x = torch.randn(2, 5, 8, generator=gen, requires_grad=True)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    out, affinity = stage(x, mask)
    assert out.shape == (2, 5, 6) and affinity.shape == (2, 5, 5)
    assert (out[0, 3:] == 0).all() and torch.isneginf(affinity[0, :, 3:]).all()
    # padded values do not reach the valid rows
    x2 = x.detach().clone()
    x2[0, 3:] = 1e3
    torch.testing.assert_close(stage(x2, mask)[0][0, :3], out[0, :3])
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[0, 3:] == 0).all()


def test_a_query_without_keys_gives_zero_not_nan(gen):
    block = ProposalRelation(4)
    q = torch.randn(1, 2, 4, generator=gen, requires_grad=True)
    out, _ = block(q, key_mask=torch.zeros(1, 2, dtype=torch.bool), query_mask=torch.tensor([[True, False]]))
    assert torch.isfinite(out).all() and (out[0, 1] == 0).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    with pytest.raises(ValueError, match=r"key_mask must be a bool tensor of shape \(1, 2\)"):
        block(q, key_mask=torch.ones(1, 3, dtype=torch.bool))


def test_video_descriptor_is_mean_over_proposals_then_max_over_frames():
    f = torch.tensor([[[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]], [[0.0, 5.0], [0.0, 1.0], [0.0, 0.0]]]])  # (1, 2, 3, 2)
    mask = torch.tensor([[[True, True, False], [True, True, False]]])
    torch.testing.assert_close(video_descriptor(f, mask), torch.tensor([[2.0, 3.0]]))


def test_hard_video_mining_on_hand_made_descriptors():
    target = torch.tensor([1.0, 0.0])
    positives = torch.tensor([[2.0, 0.0], [0.2, 1.0], [1.0, 1.0]])  # the second is least like the target
    negatives = torch.tensor([[-1.0, 0.0], [0.0, 2.0], [1.5, 0.0]])
    # similarities to the target favour negative 2, to the hard positive (0.2, 1) negative 1; the sum decides
    pos, neg = mine_hard_videos(target, positives, negatives)
    assert pos == 1
    s = 1 / math.sqrt(2)
    to_t = torch.softmax(negatives @ target * s, 0)
    to_p = torch.softmax(negatives @ positives[1] * s, 0)
    assert neg == int((to_t + to_p).argmax()) == 1  # 0.23 + 0.66 against 0.66 + 0.20 for negative 2


def test_hard_triplets_and_the_loss_by_hand():
    a = torch.tensor([[0.0, 5.0, 2.0, 1.0, 4.0],
                      [3.0, 0.0, 7.0, 1.0, 2.0],
                      [1.0, 2.0, 0.0, 6.0, 3.0],
                      [9.0, 9.0, 9.0, 0.0, 9.0],
                      [1.0, 1.0, 1.0, 1.0, 0.0]], requires_grad=True)
    labels = torch.tensor([1, 1, 1, 2, 0])  # 3: the only '2' has no positive; 4: background, no anchor
    anchor, positive, negative = hard_proposal_triplets(a, labels)
    assert anchor.tolist() == [0, 1, 2]
    assert positive.tolist() == [2, 0, 0]  # lowest same-label affinity (itself excluded)
    assert negative.tolist() == [4, 4, 3]  # highest other-label affinity, background included
    loss = proposal_triplet_loss(a, labels, margin=2.0)
    hand = (max(0, 4 - 2 + 2) + max(0, 2 - 3 + 2) + max(0, 6 - 1 + 2)) / 3
    assert loss.item() == pytest.approx(hand)
    loss.backward()
    assert a.grad[0, 4] == pytest.approx(1 / 3) and a.grad[0, 2] == pytest.approx(-1 / 3)
    # a masked proposal takes no part: without 4, anchor 0's negative is 3
    mask = torch.tensor([True, True, True, True, False])
    assert hard_proposal_triplets(a, labels, mask)[2].tolist() == [3, 3, 3]
    assert proposal_triplet_loss(a, torch.zeros(5, dtype=torch.long)).item() == 0.0  # no anchor at all


def test_semihard_triplets_by_hand():
    """Semi-hard: the most similar negative still below the hardest positive; none below: no triplet."""
    a = torch.tensor([[0.0, 5.0, 2.0, 1.0, 4.0],
                      [3.0, 0.0, 7.0, 1.0, 2.0],
                      [1.0, 2.0, 0.0, 6.0, 3.0],
                      [9.0, 9.0, 9.0, 0.0, 9.0],
                      [1.0, 1.0, 1.0, 1.0, 0.0]])
    labels = torch.tensor([1, 1, 1, 2, 0])
    anchor, positive, negative = hard_proposal_triplets(a, labels, mining="semihard")
    # 0: positive at 2, negatives 1 (3) and 4 (4): 3; 1: positive at 3, negatives 1 and 2: 4 (the higher);
    # 2: positive at 1, negatives at 6 and 3, none below: skipped
    assert anchor.tolist() == [0, 1] and positive.tolist() == [2, 0] and negative.tolist() == [3, 4]
    hand = (max(0, 1 - 2 + 2) + max(0, 2 - 3 + 2)) / 2
    assert proposal_triplet_loss(a, labels, margin=2.0, mining="semihard").item() == pytest.approx(hand)
    with pytest.raises(ValueError, match="mining: expected 'hardest' or 'semihard', got 'soft'"):
        hard_proposal_triplets(a, labels, mining="soft")


def test_attention_weighted_triplet_loss_by_hand():
    """-log of the softmax share of the same label's proposals in other videos, against a hand computation."""
    a = torch.tensor([[0.0, 2.0, 1.0, 3.0, -1.0],
                      [1.0, 0.0, 2.0, 0.0, 5.0],
                      [0.0, 0.0, 0.0, 0.0, 0.0],
                      [0.0, 0.0, 0.0, 0.0, 0.0],
                      [4.0, 9.0, 1.0, 2.0, 0.0]], requires_grad=True)
    labels = torch.tensor([1, 1, 2, 0, 1])  # 2: no '2' in another video; 3: background, no anchor
    groups = torch.tensor([0, 1, 1, 0, 1])  # 1 and 4 share a video: neither positive nor negative of each other
    e = math.exp
    hand = [-math.log((e(2) + e(-1)) / (e(2) + e(-1) + e(1) + e(3))),  # anchor 0: positives 1, 4; negatives 2, 3
            -math.log(e(1) / (e(1) + e(2) + e(0))),  # anchor 1: positive 0 (4 left out)
            -math.log(e(4) / (e(4) + e(1) + e(2)))]  # anchor 4: positive 0 (1 left out)
    loss = proposal_attention_loss(a, labels, groups)
    assert loss.item() == pytest.approx(sum(hand) / 3)
    loss.backward()  # each negative pushed down by its attention share, the positives up
    assert a.grad[0, 3].item() == pytest.approx(e(3) / (e(2) + e(-1) + e(1) + e(3)) / 3)
    assert a.grad[0, 1].item() == pytest.approx((e(2) / (e(2) + e(-1) + e(1) + e(3)) - e(2) / (e(2) + e(-1))) / 3)
    assert a.grad[1, 4].item() == 0.0 and a.grad[2].abs().sum().item() == 0.0
    # constant affinities (a collapsed stage): log(1 + negatives / positives), not a minimum
    assert proposal_attention_loss(torch.zeros(5, 5), labels, groups).item() == pytest.approx(
        (math.log(1 + 2 / 2) + 2 * math.log(1 + 2 / 1)) / 3)
    # a masked proposal takes no part: without 0, anchors 1 and 4 have no positive
    assert proposal_attention_loss(a, labels, groups, torch.tensor([False, True, True, True, True])).item() == 0.0
    with pytest.raises(ValueError, match=r"groups: expected the shape of labels \(5,\), got \(4,\)"):
        proposal_attention_loss(a, labels, groups[:4])
