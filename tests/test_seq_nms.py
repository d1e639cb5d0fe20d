"""seq_nms: every backend against the plain-Python reference, exactly (scores, ids, tracklets)."""

import pytest
import torch

import pyvrel.ops as ops
from conftest import device_of, needs_gpu

SEQ_BACKENDS = [pytest.param("cpp", id="cpp"), pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu, needs_gpu])]


def moving_detections(T, N, objects, per_object, generator, dtype=torch.float32, integer=False):
    """Objects moving linearly, each seen as `per_object` jittered boxes per frame, plus clutter;
    uniform random scores. Boxes are shuffled within each frame."""
    g = generator
    start = torch.rand(objects, 2, generator=g, dtype=torch.float64) * 60
    vel = torch.randn(objects, 2, generator=g, dtype=torch.float64) * 2
    size = torch.rand(objects, 2, generator=g, dtype=torch.float64) * 20 + 8
    t = torch.arange(T, dtype=torch.float64)[:, None, None]
    k = min(objects * per_object, N)
    centers = (start[None] + vel[None] * t)[:, :, None].expand(T, objects, per_object, 2).reshape(T, -1, 2)[:, :k]
    wh = size[None, :, None].expand(T, objects, per_object, 2).reshape(T, -1, 2)[:, :k]
    centers = centers + torch.randn(T, k, 2, generator=g, dtype=torch.float64) * 1.5
    wh = wh * (1 + torch.randn(T, k, 2, generator=g, dtype=torch.float64) * 0.1)
    clutter = N - k
    centers = torch.cat([centers, torch.rand(T, clutter, 2, generator=g, dtype=torch.float64) * 70], 1)
    wh = torch.cat([wh, torch.rand(T, clutter, 2, generator=g, dtype=torch.float64) * 20 + 4], 1)
    boxes = torch.cat([centers - wh / 2, centers + wh / 2], -1)
    if integer:
        boxes = boxes.round()
    perm = torch.argsort(torch.rand(T, N, generator=g), dim=1)
    boxes = torch.gather(boxes, 1, perm[..., None].expand(T, N, 4))
    return boxes.to(dtype), torch.rand(T, N, generator=g, dtype=torch.float64).to(dtype)


def assert_same(out, expected):
    assert out.scores.dtype == expected.scores.dtype
    assert torch.equal(out.scores.cpu(), expected.scores)
    assert torch.equal(out.sequence_id.cpu(), expected.sequence_id)
    assert torch.equal(out.box_index.cpu(), expected.box_index)
    assert torch.equal(out.tracklet_score.cpu(), expected.tracklet_score)
    assert torch.equal(out.video.cpu(), expected.video)
    for a, b in zip(out.tracklets, expected.tracklets):
        assert torch.equal(a.cpu(), b)


def run_both(backend, *args, **kwargs):
    dev = device_of(backend)
    moved = [a.to(dev) if isinstance(a, torch.Tensor) else a for a in args]
    kw = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    out = ops.seq_nms(*moved, backend=backend, **kw)
    expected = ops.seq_nms(*args, backend="reference", **kwargs)
    assert_same(out, expected)
    return expected


@pytest.mark.parametrize("backend", SEQ_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rescore", ["avg", "max", "none"])
def test_seq_nms_matches_reference(backend, dtype, rescore, gen):
    boxes, scores = moving_detections(17, 23, 4, 4, gen, dtype)
    expected = run_both(backend, boxes, scores, rescore=rescore)
    assert expected.box_index.shape[0] >= 2  # several sequences were selected
    # Every selected box lies on the tracklet that claims it.
    for k in range(expected.box_index.shape[0]):
        s, n = int(expected.tracklets.start[k]), int(expected.tracklets.length[k])
        assert n >= 2
        idx = expected.box_index[k, :n]
        assert torch.equal(expected.tracklets.boxes[k, :n], boxes[torch.arange(s, s + n), idx])


@pytest.mark.parametrize("backend", SEQ_BACKENDS)
def test_seq_nms_vidvrd2_variant_reuses_boxes(backend, gen):
    boxes, scores = moving_detections(15, 20, 3, 5, gen)
    expected = run_both(backend, boxes, scores, variant="vidvrd2", suppress_threshold=0.7)
    # suppressed boxes keep their links: a later tracklet may run through an already-used box
    ids = expected.box_index
    assert expected.scores.min() >= 0 and bool((expected.scores == 0).any())
    total = expected.tracklet_score
    assert bool((total[1:] <= total[:-1] + 1e-12).all()) or ids.shape[0] <= 1  # scores only decrease


@pytest.mark.parametrize("backend", SEQ_BACKENDS)
@pytest.mark.parametrize(
    "options",
    [dict(strict=True), dict(max_sequences=2), dict(min_score=3.0), dict(pixel_offset=1),
     dict(link_threshold=0.3, suppress_threshold=0.6), dict(link_threshold=0.0), dict(suppress_threshold=1.0)],
    ids=["strict", "max_sequences", "min_score", "pixel_offset", "thresholds", "link_all", "supp_one"],
)
def test_seq_nms_options_match_reference(backend, options, gen):
    boxes, scores = moving_detections(12, 15, 3, 4, gen, integer=True)
    expected = run_both(backend, boxes, scores, **options)
    if "max_sequences" in options:
        assert expected.box_index.shape[0] <= 2


@pytest.mark.parametrize("backend", SEQ_BACKENDS)
def test_seq_nms_batch_masks_labels(backend, gen):
    B, T, N = 4, 11, 13
    parts = [moving_detections(T, N, 3, 3, gen) for _ in range(B)]
    boxes = torch.stack([p[0] for p in parts])
    scores = torch.stack([p[1] for p in parts])
    counts = torch.randint(0, N + 1, (B, T), generator=gen)
    counts[0, 3] = 0  # an empty frame
    counts[1, :] = 1  # one box per frame
    num_frames = torch.tensor([T, 1, 6, 0])
    labels = torch.randint(-1, 3, (B, T, N), generator=gen)
    run_both(backend, boxes, scores, counts, num_frames=num_frames)
    run_both(backend, boxes, scores, counts, num_frames=num_frames, labels=labels)
    valid = torch.rand(B, T, N, generator=gen) < 0.7
    expected = run_both(backend, boxes, scores, valid=valid, labels=labels % 2)
    # invalid boxes are never selected and keep their scores
    assert bool((expected.sequence_id[~valid] == -1).all())
    assert torch.equal(expected.scores[~valid], scores[~valid])
    # a batch gives what each video gives alone
    for b in range(B):
        alone = ops.seq_nms(boxes[b], scores[b], valid=valid[b], labels=labels[b] % 2, backend="cpp")
        assert torch.equal(alone.scores, expected.scores[b])
        assert torch.equal(alone.box_index, expected.box_index[expected.video == b][:, : alone.box_index.shape[1]])


@pytest.mark.parametrize("backend", SEQ_BACKENDS)
def test_seq_nms_ties_and_thresholds(backend):
    # Frame 0 has two identical boxes with equal scores: the path starts at the lower index.
    # The boxes straddle the link threshold 0.5: IoU(box, half) is exactly 0.5 and links (not
    # with strict=True); IoU(box, below) = 0.49 does not link.
    box, half, below = [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 4.9]
    far = [50.0, 50.0, 60.0, 60.0]
    boxes = torch.tensor([[box, box, far], [half, below, far], [half, far, far]])
    scores = torch.tensor([[0.5, 0.5, 0.9], [0.5, 0.9, 0.1], [0.5, 0.1, 0.1]])
    expected = run_both(backend, boxes, scores)
    assert expected.box_index[0].tolist() == [0, 0, 0] and int(expected.tracklets.start[0]) == 0
    assert expected.tracklet_score[0].item() == 1.5
    assert expected.scores[0, 0].item() == pytest.approx(0.5) and expected.sequence_id[0, 1].item() == -1
    strict = run_both(backend, boxes, scores, strict=True)
    assert strict.box_index[0].tolist() == [1, 0, -1] and int(strict.tracklets.start[0]) == 1


@pytest.mark.parametrize("backend", SEQ_BACKENDS)
@pytest.mark.parametrize("T,N", [(1, 5), (6, 1), (0, 3), (4, 0), (1, 1)])
def test_seq_nms_degenerate_shapes(backend, T, N, gen):
    boxes, scores = moving_detections(T, N, 1, 1, gen) if T and N else (torch.zeros(T, N, 4), torch.zeros(T, N))
    expected = run_both(backend, boxes, scores)
    if T <= 1:
        assert expected.box_index.shape[0] == 0  # no path longer than one box
    assert expected.scores.shape == (T, N)


def test_seq_nms_half_precision_and_unbatched_shapes(gen):
    boxes, scores = moving_detections(8, 9, 2, 3, gen)
    out = ops.seq_nms(boxes.half(), scores.half())
    assert out.scores.dtype == torch.float16 and out.sequence_id.shape == (8, 9)
    ref = ops.seq_nms(boxes.half().float(), scores.half().float(), backend="reference")
    assert torch.equal(out.sequence_id, ref.sequence_id)


def test_seq_nms_op_compiles_and_opchecks(gen):
    boxes, scores = moving_detections(6, 7, 2, 2, gen)
    args = (boxes[None], scores[None], torch.ones(1, 6, 7, dtype=torch.uint8), None, 0.5, 0.3, False, 0, 0, 0, 0.0,
            0.0, 42, "cpp")
    torch.library.opcheck(torch.ops.pyvrel.seq_nms.default, args)
    compiled = torch.compile(lambda b, s: torch.ops.pyvrel.seq_nms(b, s, *args[2:])[0], fullgraph=True)
    assert torch.equal(compiled(boxes[None], scores[None])[0], ops.seq_nms(boxes, scores, backend="reference").scores)


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(boxes=torch.zeros(3, 4)), ValueError, "boxes must have shape"),
        (dict(scores=torch.zeros(2, 4)), ValueError, "scores must have shape"),
        (dict(scores=torch.zeros(2, 3, dtype=torch.float64)), TypeError, "scores has dtype"),
        (dict(counts=torch.tensor([4, 1])), ValueError, "counts must be in"),
        (dict(counts=torch.tensor([1.0, 1.0])), TypeError, "counts must be an integer tensor"),
        (dict(counts=torch.tensor([1, 1]), valid=torch.ones(2, 3, dtype=torch.bool)), ValueError, "not both"),
        (dict(valid=torch.ones(2, 3)), TypeError, "valid must have dtype"),
        (dict(labels=torch.zeros(2, 2, dtype=torch.int64)), ValueError, "labels must have shape"),
        (dict(num_frames=torch.tensor([1])), ValueError, "num_frames must have shape"),
        (dict(link_threshold=1.5), ValueError, "link_threshold must be in"),
        (dict(rescore="mean"), ValueError, "rescore must be one of"),
        (dict(variant="vidvrd2", rescore="avg"), ValueError, "does not rescore"),
        (dict(variant="fgfa"), ValueError, "variant must be"),
        (dict(max_sequences=0), ValueError, "max_sequences must be a positive int"),
        (dict(pixel_offset=2), ValueError, "pixel_offset must be 0"),
        (dict(scores=torch.tensor([[0.1, float("nan"), 0.2], [0.1, 0.2, 0.3]])), ValueError, "scores contains NaN"),
        (dict(backend="triton"), ValueError, "has no 'triton' backend"),
    ],
)
def test_seq_nms_bad_inputs(kwargs, err, match):
    args = dict(boxes=torch.zeros(2, 3, 4), scores=torch.zeros(2, 3))
    args.update(kwargs)
    with pytest.raises(err, match=match):
        ops.seq_nms(args.pop("boxes"), args.pop("scores"), **args)


def test_seq_nms_op_reports_node_room_needed(gen):
    # "vidvrd2" sequences may share boxes, so their node list can outgrow a first guess; the op
    # writes only what fits and reports the room needed (the public op then runs again).
    boxes, scores = moving_detections(10, 12, 3, 4, gen)
    full = ops.seq_nms(boxes, scores, variant="vidvrd2", suppress_threshold=0.7, backend="cpp")
    total = int(full.tracklets.length.sum())
    assert total >= 4
    out = torch.ops.pyvrel.seq_nms(boxes[None], scores[None], torch.ones(1, 10, 12, dtype=torch.uint8), None, 0.5,
                                   0.7, False, 2, 1, 0, 0.0, 0.0, 3, "cpp")
    count, lengths, nodes, needed = out[2], out[4], out[6], out[7]
    assert int(needed[0]) == total == int(lengths[0, : int(count[0])].sum())
    assert nodes.shape == (1, 3)


@pytest.mark.parametrize("backend", SEQ_BACKENDS)
def test_seq_nms_random_configurations(backend, gen):
    # Many small problems, each with a random mix of options, masks, labels, dtypes and tied scores.
    for _ in range(20):
        T, N = (int(x) for x in torch.randint(1, 9, (2,), generator=gen))
        dtype = (torch.float32, torch.float64)[int(torch.randint(0, 2, (), generator=gen))]
        boxes, scores = moving_detections(T, N, 2, 3, gen, dtype, integer=bool(torch.rand((), generator=gen) < 0.5))
        if bool(torch.rand((), generator=gen) < 0.4):
            scores = (scores * 4).round() / 4  # ties
        pick = lambda options: options[int(torch.randint(0, len(options), (), generator=gen))]  # noqa: E731
        variant = pick(["seqnms", "vidvrd2"])
        options = dict(link_threshold=pick([0.0, 0.3, 0.5, 1.0]), suppress_threshold=pick([0.0, 0.3, 0.7, 1.0]),
                       strict=pick([False, True]), pixel_offset=pick([0, 1]), variant=variant,
                       valid=torch.rand(T, N, generator=gen) < 0.8,
                       labels=pick([None, torch.randint(-1, 2, (T, N), generator=gen)]))
        if variant == "seqnms":
            options["rescore"] = pick(["avg", "max", "none"])
        run_both(backend, boxes, scores, **options)
