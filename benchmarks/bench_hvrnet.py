"""HVR-Net on the CPU: one relation stage forward + backward (:class:`pyvrel.nn.RelationStage`,
HVR-Net's shapes), side by side with the same block written on
``torch.nn.functional.scaled_dot_product_attention`` (the anchor), and ``pyvrel track`` on 200
synthetic videos, timed as the user runs it: a fresh ``python -m pyvrel track`` process (imports
included). Shapes: ``benchmarks/shapes.py`` (HVRNET_RELATION, TRACK_VIDEOS).

    pytest benchmarks/bench_hvrnet.py --benchmark-only
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from harness import check, provider_params, record, run
from shapes import HVRNET_RELATION, TRACK_VIDEOS, RelationShape

from pyvrel.nn import RelationStage


def _sdpa_stage(stage: RelationStage, x: torch.Tensor) -> torch.Tensor:
    """The same stage with the attention of ``scaled_dot_product_attention`` (no value projection)."""
    f = stage.fc(x)
    r = stage.relation
    out = F.scaled_dot_product_attention(r.q_proj(f), r.k_proj(f), f)
    return torch.relu(f + r.out_proj(out))


@pytest.mark.parametrize("shape", HVRNET_RELATION, ids=lambda s: s.name)
@pytest.mark.parametrize("provider", provider_params("pyvrel", "sdpa"))
def test_relation_stage_fwd_bwd(benchmark, provider, shape: RelationShape):
    torch.manual_seed(0)
    stage = RelationStage(shape.dim, shape.dim)
    x = torch.randn(shape.groups, shape.proposals, shape.dim, requires_grad=True)
    benchmark.group = f"hvrnet-relation-{shape.name}"
    record(benchmark, provider, shape)
    forward = (lambda: stage(x)[0]) if provider == "pyvrel" else (lambda: _sdpa_stage(stage, x))

    def step():
        stage.zero_grad()
        x.grad = None
        out = forward()
        out.square().mean().backward()
        return out

    out = run(benchmark, step, provider)
    with torch.no_grad():
        check(out, _sdpa_stage(stage, x), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def track_world(tmp_path_factory):
    from pyvrel.data.dataset import DEMO_WORLD
    from pyvrel.data.synthetic import SynthConfig, write_world

    out = tmp_path_factory.mktemp("track_world")
    write_world(out, SynthConfig(**{**DEMO_WORLD, "num_videos": TRACK_VIDEOS, "hvrnet": True}))
    return out


@pytest.mark.parametrize("provider", provider_params("cpp"))
def test_track_command(benchmark, provider, track_world, tmp_path):
    out = tmp_path / "tracked"
    command = [sys.executable, "-m", "pyvrel", "track", str(track_world / "features"), "--data", str(track_world),
               "--out", str(out), "--overwrite"]
    benchmark.group = "hvrnet-track-command"
    record(benchmark, provider, videos=TRACK_VIDEOS)
    result = run(benchmark, lambda: subprocess.run(command, capture_output=True, text=True), provider, min_rounds=1)
    assert result.returncode == 0, result.stderr
    assert f"tracked {TRACK_VIDEOS} videos" in result.stdout
