"""VrdONE trains as the official code does (issue 18): weight-decay groups, the paper presets'
schedule, per-epoch augmentation, batch packing, box clamping, de-duplication, VidVRD relation
merging, the entity score threshold and oracle tracklets of objects that leave and come back."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pyvrel.data import FrameBox, ObjectInfo, RelationInstance, VideoAnnotation
from pyvrel.data.tracklets import Tracklet, deduplicate, oracle_tracklets
from pyvrel.engine import Trainer
from pyvrel.engine.config import TrainConfig, config_from_dict
from pyvrel.engine.optim import WarmupCosine, param_groups
from pyvrel.models.vrdone import (
    PairSamples,
    VrdONEConfig,
    build_vrdone,
    entity_tracklets,
    merge_relations,
    pair_tensor,
    predict_video,
)
from pyvrel.models.vrdone.samples import pair_segments
from pyvrel.models.vrdone.task import TRAIN_DEFAULTS, VrdONETrainModel


def _official_decayed(cfg: VrdONEConfig) -> set[str]:
    """The parameters the official optimiser decays (weights of Linear / Conv1d /
    MaskedConv1D only), written from the official module structure in pyvrel's names."""
    local_block = ["attn.query_conv.conv", "attn.key_conv.conv", "attn.value_conv.conv", "attn.query", "attn.key",
                   "attn.value", "attn.proj", "mlp.0", "mlp.3"]  # TransformerBlock: LocalMaskedMHCA + MLP
    mhca = ["q_conv.conv", "k_conv.conv", "v_conv.conv", "query", "key", "value", "proj"]  # MaskedMHCA_QKV
    n_embd, n_stem, n_branch = cfg.arch
    b = "vrdone.backbone."
    names = [f"{b}vis_embd.convs.{i}.conv" for i in range(n_embd)] + [f"{b}box_embd.convs.0.conv"]
    names += [f"{b}visual_bbox_fuse.layers.{i}" for i in range(2)]
    for i in range(n_stem):
        names += [f"{b}stem.{i}.{m}" for m in local_block]
        names += [f"{b}{so}.{i}.{a}.{m}" for so in ("s_attn", "o_attn") for a in ("self_attn", "cross_attn")
                  for m in mhca]
    names += [f"{b}so_fuse.layers.{i}" for i in range(2)] + [f"{b}rel_box_embd.conv"]
    names += [f"{b}so_box_fuse.layers.{i}" for i in range(2)]
    names += [f"{b}branch.{i}.{m}" for i in range(n_branch) for m in local_block]
    names += [f"vrdone.neck.lateral.{i}.conv" for i in range(n_branch + 1)]
    names += [f"vrdone.neck.fuse.{i}.conv" for i in range(n_branch)] + ["vrdone.neck.out.conv"]
    d = "vrdone.decoder."
    names += [f"{d}mem_proj"]
    for i in range(cfg.dec_layers):
        names += [f"{d}layers.{i}.self_attn.{m}" for m in ("query", "key", "value", "proj")]  # MaskedMHA_QKV
        names += [f"{d}layers.{i}.cross_attn.{m}" for m in mhca]
        names += [f"{d}layers.{i}.ffn.layers.{j}" for j in range(2)]
    names += [f"{d}class_embed"] + [f"{d}mask_embed.layers.{j}" for j in range(3)]
    return {n + ".weight" for n in names}


def test_weight_decay_groups_are_the_official_ones():
    cfg = VrdONEConfig.vidor(embd_dim=64, fpn_dim=32, dec_dim=32, dec_hidden=64, visual_dim=16)  # structure of VidOR
    model = VrdONETrainModel(cfg)
    groups = {g["name"]: g for g in param_groups(model, 0.05)}
    ids = {id(p) for p in groups["decay"]["params"]}
    decayed = {n for n, p in model.named_parameters() if id(p) in ids}
    want = _official_decayed(cfg)
    assert len(want) == 176
    assert decayed == want
    assert groups["decay"]["weight_decay"] == 0.05 and groups["no_decay"]["weight_decay"] == 0.0
    assert len(groups["decay"]["params"]) + len(groups["no_decay"]["params"]) == len(list(model.parameters()))


def _lr(train: TrainConfig, steps_per_epoch: int, step: int) -> float:
    """The learning rate of ``step`` as the trainer schedules it."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=train.lr)
    total = round((train.schedule_epochs or train.epochs) * steps_per_epoch)
    sched = WarmupCosine(opt, round(train.warmup_epochs * steps_per_epoch), total, train.min_lr_ratio)
    sched.set_step(step)
    return opt.param_groups[0]["lr"]


@pytest.mark.parametrize("preset,epochs,items,pairs", [("vidor", 12, 3, 16), ("vidvrd", 15, 6, 4)])
def test_paper_presets_carry_the_paper_schedule(preset, epochs, items, pairs):
    train = config_from_dict(TrainConfig, TRAIN_DEFAULTS[preset])
    cfg = {"vidor": VrdONEConfig.vidor, "vidvrd": VrdONEConfig.vidvrd}[preset]()
    assert (train.epochs, train.batch_size * cfg.pairs_per_item) == (epochs, items * pairs)
    assert (train.precision, train.seed, train.deterministic) == ("fp32", 42, True)
    assert (train.weight_decay, train.clip_grad_norm, train.ema_decay) == (0.05, 1.0, 0.999)
    n = 100  # steps per epoch
    assert _lr(train, n, 0) == pytest.approx(2e-4 / 500)  # linear warm-up over 5 epochs
    assert _lr(train, n, 499) == pytest.approx(2e-4)
    last = epochs * n - 1  # the 20-epoch cosine is stopped early: the lr never reaches its floor
    p = (last - 500) / 1500
    assert _lr(train, n, last) == pytest.approx(1e-8 + (2e-4 - 1e-8) * 0.5 * (1 + math.cos(math.pi * p)))
    assert _lr(train, n, 20 * n) == pytest.approx(1e-8)


def test_synthetic_preset_keeps_its_own_schedule():
    train = config_from_dict(TrainConfig, TRAIN_DEFAULTS["synthetic"])
    assert (train.lr, train.warmup_epochs, train.epochs, train.batch_size) == (1e-3, 1, 10, 16)
    assert train.schedule_epochs is None and not train.deterministic
    assert VrdONEConfig.synthetic().pairs_per_item == 0


# ---- training items --------------------------------------------------------------------------------


def _annotation(frames: int = 120, relations: list[RelationInstance] | None = None, gap: tuple[int, int] | None = None
                ) -> VideoAnnotation:
    """Two objects on every frame (object 1 absent on ``gap``), boxes partly outside a 640x480 frame."""
    traj = [[] for _ in range(frames)]
    for f in range(frames):
        traj[f].append(FrameBox(0, (-20.0 + f, 10.0, 700.0, 300.0)))
        if gap is None or not gap[0] <= f < gap[1]:
            traj[f].append(FrameBox(1, (100.0, 100.0 + f, 200.0, 300.0)))
    rels = relations or [RelationInstance(0, 1, "ride", 5, 100)]
    return VideoAnnotation("v", frames, 30.0, 640, 480, [ObjectInfo(0, "person"), ObjectInfo(1, "bike")], traj, rels)


def _feats(frames: int) -> dict[int, np.ndarray]:
    return {t: np.random.default_rng(t).normal(size=(frames, 4)).astype(np.float32) for t in (0, 1)}


def _small(base: VrdONEConfig, **kw) -> VrdONEConfig:
    return replace(base, **{**dict(visual_dim=4, embd_dim=16, fpn_dim=8, dec_dim=8, dec_hidden=16, num_classes=2,
                                   n_head=4, dec_heads=4, window=5, max_seq_len=32, feat_stride=4), **kw})


def test_augmentation_is_redrawn_every_epoch_and_reproducible():
    anno = _annotation()
    cfg = _small(VrdONEConfig.synthetic())
    segs = pair_segments(anno, _feats(120), cfg, {"ride": 1, "chase": 2})
    data = PairSamples([segs] * 4, cfg, seed=7)  # one pair per item: 4 items
    assert len(data) == 4 and data.num_pairs == 4

    def epoch(d: PairSamples, e: int) -> list[torch.Tensor]:
        d.set_epoch(e)
        return [torch.cat([x.flatten(), t.masks.flatten()]) for i in range(len(d)) for x, t in d[i]]

    e0, e1 = epoch(data, 0), epoch(data, 1)
    assert any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(e0, e1))  # new offsets/crops
    again = PairSamples([segs] * 4, cfg, seed=7)  # a resumed run rebuilds the set with the same seed
    assert all(torch.equal(a, b) for a, b in zip(epoch(again, 1), e1))
    assert all(torch.equal(a, b) for a, b in zip(epoch(data, 0), e0))


class _EpochRecorder(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i)])


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": (self.w * x).pow(2).mean()}


def test_trainer_sets_the_epoch_also_after_resume(tmp_path):
    data = _EpochRecorder()
    cfg = dict(epochs=2, batch_size=2, device="cpu", progress=False, log_every=1)
    Trainer(_Toy(), data, TrainConfig(**cfg), out_dir=tmp_path).fit()
    assert data.epochs == [0, 1]
    again = _EpochRecorder()
    Trainer(_Toy(), again, TrainConfig(**{**cfg, "epochs": 3}), out_dir=tmp_path).fit(
        resume=tmp_path / "checkpoints" / "last.pt")
    assert again.epochs == [2]


def test_official_batch_packing_spans_consecutive_videos():
    cfg = _small(VrdONEConfig.vidvrd(), pairs_per_item=3, max_seq_len=96, window=7)
    rels = [RelationInstance(0, 1, "ride", 5, 60), RelationInstance(1, 0, "chase", 10, 50)]
    videos = [pair_segments(_annotation(80, rels), _feats(80), cfg, {"ride": 1, "chase": 2}) for _ in range(4)]
    assert [len(v) for v in videos] == [2] * 4
    data = PairSamples(videos, cfg, seed=0)
    assert [len(item) for item in data.items] == [3, 3, 2]  # 8 keys of consecutive videos in items of 3
    assert data.items[1][0] is videos[1][1] and data.items[1][1] is videos[2][0]
    assert len(data[1]) == 3
    single = PairSamples(videos, replace(cfg, pairs_per_item=0), seed=0)
    assert len(single) == 8 and all(len(item) == 1 for item in single.items)


# ---- boxes, tracklets, relations ----------------------------------------------------------------


def test_boxes_are_clamped_for_both_positions_and_outputs():
    box = np.array([[-20.0, 10.0, 700.0, 300.0]] * 3)
    other = np.array([[100.0, 100.0, 200.0, 300.0]] * 3)
    x = pair_tensor(np.zeros((3, 4)), np.zeros((3, 4)), box, other, 640, 480).numpy()
    theta_a_sub = x[8 + 5: 8 + 5 + 8]  # after s_vis, o_vis (4 each) and θ_r (5)
    assert theta_a_sub[0, 0] == pytest.approx((0 + 639) / 2 / 640)  # cx 0.499, not 0.531 unclamped
    assert theta_a_sub[4, 0] == pytest.approx(639 / 640)  # w
    cfg = _small(VrdONEConfig.synthetic(), num_classes=2, pred_min_frames=1, proposal_min_frames=1)
    tracks = [Tracklet("person", 0.9, 0, np.tile(box[:1], (40, 1)), np.ones((40, 4), np.float32)),
              Tracklet("bike", 0.9, 0, np.tile(other[:1], (40, 1)), np.ones((40, 4), np.float32))]
    model = build_vrdone(cfg)
    for p in model.parameters():  # a random model predicts foreground somewhere
        p.data.add_(0.3 * torch.randn_like(p))
    rels = predict_video(model, cfg, tracks, ["ride", "chase"], 640, 480)
    assert rels
    for r in rels:
        for traj in (r.sub_traj, r.obj_traj):
            traj = np.asarray(traj)
            assert (traj[:, :2] >= 0).all() and (traj[:, 2] <= 639).all() and (traj[:, 3] <= 479).all()
    assert tracks[0].boxes[0, 0] == -20.0  # the caller's tracklets are left as they were


def _track(cat: str, start: int, n: int, box: list[float], score: float = 0.9) -> Tracklet:
    return Tracklet(cat, score, start, np.tile(box, (n, 1)).astype(np.float64), np.ones((n, 4), np.float32))


def test_dedup_ratio_uses_the_dropped_tracklets_area():
    long_small = _track("dog", 0, 100, [50, 50, 59, 59])
    short_large = _track("dog", 10, 10, [0, 0, 100, 100])  # contains long_small's boxes, is contained in time
    assert deduplicate([long_small, short_large]) == [long_small, short_large]  # 100 / 10201 of it is shared
    inside = _track("dog", 10, 10, [50, 50, 59, 59])
    assert deduplicate([long_small, inside]) == [long_small]


def test_vidvrd_relations_merge_when_they_overlap_or_touch():
    rels = [RelationInstance(0, 1, "ride", 0, 10), RelationInstance(0, 1, "ride", 10, 20),  # touching
            RelationInstance(0, 1, "ride", 15, 25),  # overlapping
            RelationInstance(0, 1, "ride", 30, 40),  # apart
            RelationInstance(0, 1, "chase", 5, 12), RelationInstance(1, 0, "ride", 0, 10)]
    merged = merge_relations(rels)
    got = sorted((r.subject_tid, r.object_tid, r.predicate, r.begin_fid, r.end_fid) for r in merged)
    assert got == [(0, 1, "chase", 5, 12), (0, 1, "ride", 0, 25), (0, 1, "ride", 30, 40), (1, 0, "ride", 0, 10)]
    anno = _annotation(60, rels)
    index = {"ride": 1, "chase": 2}
    vidvrd = _small(VrdONEConfig.vidvrd(), max_seq_len=96, window=7, feat_stride=1)
    seg = [s for s in pair_segments(anno, _feats(60), vidvrd, index) if s.relations[0][1] != 0 or len(s.relations) > 1]
    assert sorted(seg[0].relations) == [(1, 0, 25), (1, 30, 40), (2, 5, 12)]
    plain = pair_segments(anno, _feats(60), replace(vidvrd, merge_relations=False), index)
    assert max(len(s.relations) for s in plain) == 5


def test_entity_score_threshold():
    tracks = [_track("dog", 0, 10, [0, 0, 10, 10], 0.3), _track("cat", 0, 10, [50, 50, 60, 60], 0.5)]
    assert VrdONEConfig.vidor().entity_score_threshold == VrdONEConfig.vidvrd().entity_score_threshold == 0.4
    assert [t.category for t in entity_tracklets(tracks, VrdONEConfig.vidor())] == ["cat"]
    assert len(entity_tracklets(tracks, VrdONEConfig.synthetic())) == 2  # threshold 0 keeps every tracklet
    assert len(entity_tracklets(tracks, VrdONEConfig.vidor(entity_score_threshold=0.2))) == 2


def test_oracle_tracklets_split_objects_that_leave_and_come_back():
    anno = _annotation(60, gap=(20, 35))
    feats = _feats(60)
    tracks = oracle_tracklets(anno, feats)
    bike = [t for t in tracks if t.tid == 1]
    assert [(t.start, t.end) for t in bike] == [(0, 20), (35, 60)]
    np.testing.assert_array_equal(bike[1].features, feats[1][35:60])
    assert bike[1].boxes[0, 1] == 100.0 + 35
    person = [t for t in tracks if t.tid == 0]
    assert [(t.start, t.end) for t in person] == [(0, 60)]
