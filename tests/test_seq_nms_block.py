"""The CUDA backend's Seq-NMS algorithm (csrc/include/pyvrel/seq_nms_block.h) on the CPU.

``pyvrel._C.seq_nms_block_forward`` runs the block algorithm of the CUDA kernel with a one-thread
block. Here it stands in for the C++ kernel behind ``backend="cpp"`` and must give exactly the
reference's results (and the C++ kernel's) on the cases of test_seq_nms.py plus word-boundary
sizes and a larger video.
"""

import pytest
import torch

import pyvrel.ops as ops
import test_seq_nms as base
from conftest import needs_gpu
from pyvrel import _ext


@pytest.fixture
def block_kernel(monkeypatch):
    """Route the "cpp" backend's seq_nms_forward to the block algorithm; yields the C++ kernel."""
    ext = _ext.cpu()
    cpp = ext.seq_nms_forward
    monkeypatch.setattr(ext, "seq_nms_forward", ext.seq_nms_block_forward)
    return cpp


def test_block_random_configurations(block_kernel, gen):
    base.test_seq_nms_random_configurations("cpp", gen)  # options, masks, labels, ties, dtypes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_block_matches_reference(block_kernel, dtype, gen):
    for rescore in ("avg", "max", "none"):
        base.test_seq_nms_matches_reference("cpp", dtype, rescore, gen)
    base.test_seq_nms_vidvrd2_variant_reuses_boxes("cpp", gen)


def test_block_options_ties_batches_and_degenerate_shapes(block_kernel, gen):
    for options in (dict(strict=True), dict(max_sequences=2), dict(min_score=3.0), dict(pixel_offset=1),
                    dict(link_threshold=0.0), dict(suppress_threshold=1.0)):
        base.test_seq_nms_options_match_reference("cpp", options, gen)
    base.test_seq_nms_ties_and_thresholds("cpp")
    base.test_seq_nms_batch_masks_labels("cpp", gen)
    for T, N in ((1, 5), (6, 1), (0, 3), (4, 0), (1, 1)):
        base.test_seq_nms_degenerate_shapes("cpp", T, N, gen)


@pytest.mark.parametrize("N", [31, 32, 33, 65])
def test_block_word_boundaries(block_kernel, N, gen):
    # successor bits span ceil(N / 32) words: links into the last bit of a word and the first of the next
    boxes, scores = base.moving_detections(5, N, 4, N // 4, gen)
    base.run_both("cpp", boxes, scores, link_threshold=0.2)


def test_block_equals_cpp_kernel_on_a_larger_video(block_kernel, monkeypatch, gen):
    # Long paths, many sequences and suppressions: the block algorithm's incremental DP (frames
    # below the path stop when a frame did not change) against the C++ kernel's dirty lists.
    boxes, scores = base.moving_detections(40, 70, 6, 8, gen)
    boxes, scores = torch.stack([boxes, boxes.flip(0)]), torch.stack([scores, scores.flip(0)])
    runs = {}
    for variant in ("seqnms", "vidvrd2"):
        runs["block", variant] = ops.seq_nms(boxes, scores, variant=variant, backend="cpp")
    monkeypatch.setattr(_ext.cpu(), "seq_nms_forward", block_kernel)
    for variant in ("seqnms", "vidvrd2"):
        expected = ops.seq_nms(boxes, scores, variant=variant, backend="cpp")
        assert expected.box_index.shape[0] >= 10
        base.assert_same(runs["block", variant], expected)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("variant", ["seqnms", "vidvrd2"])
def test_cuda_kernel_equals_cpp_kernel_on_wide_frames(variant, gen):
    # More boxes per frame than threads per block (512): every strided loop of the block runs
    # twice; tied scores exercise the arg-max reduction's lowest-index rule across warps.
    boxes, scores = base.moving_detections(12, 700, 40, 15, gen)
    scores = (scores * 8).round() / 8
    boxes, scores = torch.stack([boxes, boxes.flip(0)]), torch.stack([scores, scores.flip(0)])
    expected = ops.seq_nms(boxes, scores, variant=variant, backend="cpp")
    out = ops.seq_nms(boxes.cuda(), scores.cuda(), variant=variant, backend="cuda")
    assert expected.box_index.shape[0] >= 10
    base.assert_same(out, expected)
