"""pyvrel.engine: schedule, parameter groups, EMA, configs, the trainer, exact resume, torchrun."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import engine_toy
from pyvrel.engine import (EMA, ConfigError, TrainConfig, Trainer, WarmupCosine, build_optimizer, checkpoint_weights,
                           config_from_dict, load_checkpoint, param_groups, warmup_cosine_factor)

def toy_trainer(out_dir, model_config=None, **train):
    config = engine_toy.ToyConfig(**(model_config or {}))
    torch.manual_seed(0)
    model = engine_toy.ToyRegression(config)
    settings = {"lr": 0.02, "epochs": 2, "batch_size": 8, "progress": False, "log_every": 1, **train}
    return Trainer(model, engine_toy.regression_data(config.samples, config.in_dim), TrainConfig(**settings),
                   evaluate=engine_toy.evaluate, out_dir=out_dir)


def records(out_dir, kind):
    lines = (Path(out_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


# ---------------------------------------------------------------- schedule
def test_warmup_cosine_hand_computed():
    # warm-up of 4 steps, cosine over the next 8: (step+1)/4, then (1 + cos(pi * (step-4)/8)) / 2
    expected = [0.25, 0.5, 0.75, 1.0, 1.0, (1 + math.cos(math.pi / 8)) / 2, (1 + math.cos(math.pi / 4)) / 2,
                (1 + math.cos(3 * math.pi / 8)) / 2, 0.5]
    got = [warmup_cosine_factor(s, 4, 12) for s in range(9)]
    assert got == pytest.approx(expected, abs=1e-15)
    assert warmup_cosine_factor(8, 4, 12, min_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-15)
    assert warmup_cosine_factor(12, 4, 12, 0.1) == pytest.approx(0.1) == warmup_cosine_factor(50, 4, 12, 0.1)
    assert warmup_cosine_factor(0, 0, 10) == 1.0 and warmup_cosine_factor(5, 0, 10) == pytest.approx(0.5)
    assert warmup_cosine_factor(3, 4, 4) == 1.0 and warmup_cosine_factor(4, 4, 4) == 0.0


def test_scheduler_scales_every_group_and_resumes():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}])
    sched = WarmupCosine(opt, warmup_steps=2, total_steps=6)
    sched.set_step(0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05])
    sched.set_step(4)
    again = WarmupCosine(opt, 0, 1)
    again.load_state_dict(sched.state_dict())
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05])  # cos(pi/2) midpoint
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupCosine(opt, 5, 3)


def test_trainer_learning_rates_follow_the_schedule(tmp_path):
    # 48 samples / batch 8 = 6 steps per epoch; warm-up 0.5 epoch = 3 steps; cosine over 2 epochs = 12 steps
    toy_trainer(tmp_path, warmup_epochs=0.5, min_lr_ratio=0.1).fit()
    lrs = [r["lr"] for r in records(tmp_path, "train")]
    assert len(lrs) == 12
    assert lrs == pytest.approx([0.02 * warmup_cosine_factor(s, 3, 12, 0.1) for s in range(12)], abs=1e-15)


# ---------------------------------------------------------------- parameter groups, optimizer, EMA
class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.conv = nn.Conv1d(8, 8, 3)
        self.norm = nn.LayerNorm(8)
        self.bn = nn.BatchNorm1d(8)
        self.attn = nn.MultiheadAttention(8, 2)
        self.scale = nn.Parameter(torch.ones(8))
        self.rel_pe = nn.Parameter(torch.zeros(1, 5, 8))
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(8, 3)

    def no_weight_decay(self):
        return {"rel_pe"}


def test_param_groups_rules():
    model = Mixed()
    groups = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    got = {g["name"]: (g["weight_decay"], sorted(names[id(p)] for p in g["params"])) for g in groups}
    assert got["decay"] == (0.05, ["attn.in_proj_weight", "attn.out_proj.weight", "conv.weight", "head.weight"])
    assert got["no_decay"] == (0.0, sorted(["embed.weight", "conv.bias", "norm.weight", "norm.bias", "bn.weight",
                                            "bn.bias", "attn.in_proj_bias", "attn.out_proj.bias", "scale",
                                            "rel_pe", "head.bias"]))
    model.no_weight_decay = lambda: {"nope"}
    with pytest.raises(ValueError, match="nope"):
        param_groups(model, 0.05)


def test_modules_declare_their_no_decay_parameters():
    """pyvrel.nn's (1, C, 1) norm weights and scales get no weight decay although they have 3
    dimensions; any nested module may declare its own parameters (names relative to it)."""
    from pyvrel.nn import AffineDropPath, ChannelLayerNorm, MaskedConv1D

    class Table(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.zeros(4, 4))
            self.proj = nn.Linear(4, 4)

        def no_weight_decay(self):
            return {"table"}

    model = nn.Sequential(MaskedConv1D(4, 4, 3, padding=1), ChannelLayerNorm(4), AffineDropPath(4),
                          nn.ModuleDict({"inner": Table()}))
    groups = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    got = {g["name"]: sorted(names[id(p)] for p in g["params"]) for g in groups}
    assert got["decay"] == ["0.conv.weight", "3.inner.proj.weight"]
    assert got["no_decay"] == sorted(["0.conv.bias", "1.weight", "1.bias", "2.scale", "3.inner.table",
                                      "3.inner.proj.bias"])
    model[3]["inner"].no_weight_decay = lambda: {"tabel"}
    with pytest.raises(ValueError, match=r"Table '3.inner'.no_weight_decay\(\) names parameters it does not have: "
                                         r"\['tabel'\]"):
        param_groups(model, 0.05)


def test_vrdone_norm_weights_and_scales_get_no_weight_decay():
    from pyvrel.models.vrdone.config import VrdONEConfig
    from pyvrel.models.vrdone.task import VrdONETrainModel
    from pyvrel.nn import AffineDropPath, ChannelLayerNorm

    model = VrdONETrainModel(VrdONEConfig.synthetic(embd_dim=16, fpn_dim=8, dec_dim=8, dec_hidden=16))
    decay = {id(p) for p in param_groups(model, 0.05)[0]["params"]}
    shaped = [p for m in model.modules() if isinstance(m, (ChannelLayerNorm, AffineDropPath)) for p in m.parameters()]
    assert shaped and all(p.ndim == 3 for p in shaped) and not any(id(p) in decay for p in shaped)
    assert not any(id(p) in decay for n, p in model.named_parameters() if "query_embed" in n)
    assert any(p.ndim == 3 for p in model.parameters() if id(p) in decay)  # conv kernels still decay


def test_build_optimizer_kinds():
    model = Mixed()
    adamw = build_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.2, betas=(0.8, 0.9)))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["betas"] == (0.8, 0.9)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.2, 0.0]
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.5, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.5
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(nn.Linear(2, 2).requires_grad_(False), TrainConfig())


def test_ema_update_is_the_weighted_mean():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9)
    w0 = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked.fill_(7)
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, 0.9 * w0 + 0.1 * (w0 + 1.0), atol=1e-7)
    assert ema.module[1].num_batches_tracked.item() == 7 and not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError, match="decay"):
        EMA(model, 1.0)


# ---------------------------------------------------------------- configs
def test_config_from_dict_checks_keys_and_types():
    cfg = config_from_dict(TrainConfig, {"lr": 1, "betas": [0.5, 0.6], "clip_grad_norm": None, "precision": "fp32"})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.betas == (0.5, 0.6)
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown key \(valid: .*lr,"):
        config_from_dict(TrainConfig, {"lrr": 1}, prefix="train.")
    with pytest.raises(ConfigError, match=r"epochs: expected int, got 1\.5"):
        config_from_dict(TrainConfig, {"epochs": 1.5})
    with pytest.raises(ConfigError, match=r"precision: expected one of 'auto', 'fp32'"):
        config_from_dict(TrainConfig, {"precision": "fp8"})
    with pytest.raises(ConfigError, match=r"betas: expected 2 values, got 3"):
        config_from_dict(TrainConfig, {"betas": [0.1, 0.2, 0.3]})
    with pytest.raises(ConfigError, match=r"train\.lr: must be > 0"):
        config_from_dict(TrainConfig, {"lr": 0}, prefix="train.")
    with pytest.raises(ConfigError, match=r"ema_decay: must be in \[0, 1\)"):
        TrainConfig(ema_decay=1.5)
    with pytest.raises(ConfigError, match=r"nesterov: expected bool, got 'yes'"):
        config_from_dict(TrainConfig, {"nesterov": "yes"})


# ---------------------------------------------------------------- the trainer
def test_trainer_lowers_the_loss_and_writes_its_outputs(tmp_path):
    summary = toy_trainer(tmp_path, epochs=6, ema_decay=0.9, clip_grad_norm=1.0, warmup_epochs=1).fit()
    train = records(tmp_path, "train")
    first, last = train[0]["loss"], sum(r["loss"] for r in train[-6:]) / 6
    assert last < 0.5 * first, (first, last)
    evals = records(tmp_path, "eval")
    assert [r["epoch"] for r in evals] == list(range(1, 7)) and all(r["ema"] for r in evals)
    assert evals[-1]["mse"] < evals[0]["mse"]
    assert summary["step"] == 36 and summary["epoch"] == 6 and summary["eval"] == {"mse": evals[-1]["mse"]}
    assert all(r["grad_norm"] > 0 and r["mse"] == r["loss"] for r in train)
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == [f"epoch_{e:04d}.pt" for e in range(1, 7)] + ["last.pt"]
    ckpt = load_checkpoint(summary["checkpoint"])
    assert ckpt["step"] == 36 and ckpt["ema"]["decay"] == 0.9 and ckpt["config"]["epochs"] == 6
    assert checkpoint_weights(ckpt) is ckpt["ema"]["module"] and checkpoint_weights(ckpt, ema=False) is ckpt["model"]
    assert not torch.equal(ckpt["ema"]["module"]["net.0.weight"], ckpt["model"]["net.0.weight"])
    with pytest.raises(ValueError, match="not a pyvrel checkpoint"):
        torch.save({"a": 1}, tmp_path / "foreign.pt")
        load_checkpoint(tmp_path / "foreign.pt")


def test_best_checkpoint_and_eval_every(tmp_path):
    """best_metric keeps best.pt of the best evaluation (last.pt stays the latest), survives a resume;
    eval_every=0 evaluates never, not even after the last epoch."""
    toy_trainer(tmp_path / "off", epochs=2, eval_every=0).fit()
    assert records(tmp_path / "off", "eval") == []
    run = tmp_path / "best"
    toy_trainer(run, epochs=3, lr=0.3, best_metric="mse", best_mode="min").fit()  # lr high: mse goes up and down
    evals = records(run, "eval")
    best = min(evals, key=lambda r: r["mse"])
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    assert ckpt["step"] == best["step"] and ckpt["best"] == best["mse"]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 18
    again = toy_trainer(run, epochs=4, lr=0.3, best_metric="mse", best_mode="min")
    again.fit(resume=run / "checkpoints" / "last.pt")
    # the cosine schedule of the first run has ended (lr 0): epoch 4 ties epoch 3, which is not better
    assert [r["mse"] for r in records(run, "eval")][2:] == [best["mse"]] * 2
    assert load_checkpoint(run / "checkpoints" / "best.pt")["step"] == 18  # the stored best was restored
    with pytest.raises(ConfigError, match="best_metric: 'mAP' is not an evaluation metric \\(have mse\\)"):
        toy_trainer(None, epochs=1, best_metric="mAP").fit()


def state_of(path):
    ckpt = load_checkpoint(path)
    return ckpt["model"], ckpt["ema"]["module"], ckpt["optimizer"]["state"], ckpt["step"]


def assert_identical(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_identical(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def test_resume_after_a_crash_is_bit_exact(tmp_path):
    # dropout draws from the global generator, so the saved random states matter; the crash comes mid-epoch
    train = {"epochs": 3, "ema_decay": 0.8, "clip_grad_norm": 0.5, "warmup_epochs": 1, "log_every": 2}
    toy_trainer(tmp_path / "straight", {"dropout": 0.3}, **train).fit()
    crashing = toy_trainer(tmp_path / "resumed", {"dropout": 0.3, "fail_at_step": 9},
                           checkpoint_every_steps=7, **train)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.fit()
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["step"] == 7
    resumed = toy_trainer(tmp_path / "resumed", {"dropout": 0.3}, **train)
    resumed.fit(resume=tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert_identical(state_of(tmp_path / "straight" / "checkpoints" / "last.pt"),
                     state_of(tmp_path / "resumed" / "checkpoints" / "last.pt"))
    # the resumed run's metrics are the straight run's, without duplicates, except the record of step 8:
    # its logging window (steps 7-8) started before the checkpoint, so it averages step 8 alone
    def strip(run):
        return {r["step"]: {k: v for k, v in r.items() if k not in ("time", "samples_per_s")}
                for r in records(tmp_path / run, "train")}
    straight, resumed = strip("straight"), strip("resumed")
    assert list(resumed) == list(straight) == list(range(2, 19, 2))
    assert all(resumed[s] == straight[s] for s in resumed if s != 8)


def test_trainer_errors(tmp_path):
    nan = toy_trainer(None, {"nan_at_step": 3})
    with pytest.raises(FloatingPointError, match="non-finite gradient norm at step 2"):
        nan.fit()
    assert all(torch.isfinite(p).all() for p in nan.model.parameters())  # CPU: stopped before the update
    with pytest.raises(ValueError, match="precision='bf16' needs a CUDA device"):
        toy_trainer(None, precision="bf16").fit()
    with pytest.raises(ConfigError, match="batch_size: 64 is larger than the dataset"):
        toy_trainer(None, batch_size=64).fit()
    trainer = toy_trainer(None)
    trainer.model.forward = lambda batch: batch[0].sum()
    with pytest.raises(TypeError, match="must return a mapping with a 'loss' entry, got Tensor"):
        trainer.fit()
    trainer = toy_trainer(None)
    trainer.model.forward = lambda batch: {"loss": batch[0].sum(), "per_item": batch[1]}
    with pytest.raises(TypeError, match=r"must be scalar tensors; not scalar: \['per_item'\]"):
        trainer.fit()
    toy_trainer(tmp_path, epochs=1).fit()
    other = toy_trainer(tmp_path, batch_size=16)
    with pytest.raises(ValueError, match="steps per epoch"):
        other.fit(resume=tmp_path / "checkpoints" / "last.pt")


# ---------------------------------------------------------------- torchrun
def test_torchrun_two_gloo_processes_match_one_process(tmp_path):
    """The same `pyvrel train` command, 2 processes x 4 samples vs 1 process x 8: the same weights."""
    from pyvrel.cli import main

    args = ["train", "--model", "engine_toy:build_task", "--data", "synthetic", "--set", "train.epochs=2",
            "--set", "train.ema_decay=0.5", "--set", "train.clip_grad_norm=0.3", "--set", "train.warmup_epochs=1"]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    run = engine_toy.torchrun_pyvrel(args + ["--out", str(tmp_path / "two")], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt") for d in ("one", "two"))
    assert two["world_size"] == 2 and len(two["rng"]) == 2 and two["step"] == one["step"] == 12
    for key in ("model",):
        for name, value in one[key].items():
            torch.testing.assert_close(two[key][name], value, rtol=0, atol=1e-12)
    for name, value in one["ema"]["module"].items():
        torch.testing.assert_close(two["ema"]["module"][name], value, rtol=0, atol=1e-12)
    # rank 0 alone logged: one record per step, losses averaged over both processes equal the 1-process ones
    loss1 = [r["loss"] for r in records(tmp_path / "one", "train")]
    loss2 = [r["loss"] for r in records(tmp_path / "two", "train")]
    assert loss2 == pytest.approx(loss1, abs=1e-12) and len(loss2) == 12


# ---------------------------------------------------------------- small parts
def test_progress_bar_without_tqdm_writes_tenths(monkeypatch):
    import io

    from pyvrel.engine.progress import ProgressBar

    monkeypatch.setitem(sys.modules, "tqdm", None)  # behave as if tqdm were not installed
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    stream = io.StringIO()
    bar = ProgressBar(20, "epoch 1/1", stream=stream)
    for _ in range(20):
        bar.update(1, "loss 1.0")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1] == "epoch 1/1 [########################] 20/20 loss 1.0"
    assert lines[0].startswith("epoch 1/1 [##....") and " 2/20 " in lines[0]
    quiet = io.StringIO()
    ProgressBar(5, "x", enabled=False, stream=quiet).update(5)
    assert quiet.getvalue() == ""


def test_move_to_device_walks_containers():
    from collections import namedtuple

    from pyvrel.engine import move_to_device

    Pair = namedtuple("Pair", "a b")

    class Boxes:
        def to(self, device):
            self.device = device
            return self

    batch = {"x": torch.ones(2), "items": [torch.zeros(1), (torch.ones(1), "label")], "pair": Pair(torch.ones(1), 3),
             "boxes": Boxes()}
    moved = move_to_device(batch, torch.device("meta"))
    assert moved["x"].device.type == "meta" and moved["items"][1][0].device.type == "meta"
    assert moved["items"][1][1] == "label" and isinstance(moved["items"][1], tuple)
    assert isinstance(moved["pair"], Pair) and moved["pair"].a.device.type == "meta" and moved["pair"].b == 3
    assert moved["boxes"].device == torch.device("meta")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none present)")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_trains_and_resumes(tmp_path, precision):
    train = {"epochs": 4, "precision": precision, "device": "cuda", "ema_decay": 0.9, "clip_grad_norm": 1.0}
    model = engine_toy.ToyRegression(engine_toy.ToyConfig()).float()  # autocast casts float32 work
    data = engine_toy.regression_data(48, 4)
    data.tensors = tuple(t.float() for t in data.tensors)
    summary = Trainer(model, data, TrainConfig(lr=0.02, batch_size=8, progress=False, log_every=1, **train),
                      out_dir=tmp_path).fit()
    losses = [r["loss"] for r in records(tmp_path, "train")]
    assert sum(losses[-6:]) < 0.5 * sum(losses[:6])
    ckpt = load_checkpoint(summary["checkpoint"])
    assert (ckpt["scaler"] is not None) == (precision == "fp16") and "cuda" in ckpt["rng"][0]
    again = Trainer(model, data, TrainConfig(lr=0.02, batch_size=8, progress=False, **{**train, "epochs": 5}),
                    out_dir=tmp_path)
    assert again.fit(resume=summary["checkpoint"])["step"] == 30


def test_loader_workers_give_the_same_training():
    """Worker processes load the same batches in the same order as the main process."""
    weights = []
    for workers in (0, 2):
        trainer = toy_trainer(None, epochs=1, num_workers=workers)
        trainer.fit()
        weights.append(trainer.model.state_dict())
    assert_identical(*weights)
