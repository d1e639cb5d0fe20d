"""Shared test configuration.

Triton kernels run on the CPU through Triton's interpreter: with no GPU present, this sets
TRITON_INTERPRET=1 before any kernel module is imported (tests marked ``triton`` need it).
``--quick`` deselects tests marked ``slow``.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from pyvrel import _ext  # noqa: E402  (after TRITON_INTERPRET is set)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true", help="skip tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--quick"):
        skip = pytest.mark.skip(reason="--quick: slow test skipped")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


def _triton_reason() -> str:
    ok, why = _ext.triton_can_run(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return "" if ok else why


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none present)")
needs_triton = pytest.mark.skipif(bool(_triton_reason()), reason=f"Triton cannot run here: {_triton_reason()}")

# Backends to compare with the reference, on the device each runs on.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNEL_BACKENDS = [
    pytest.param("cpp", id="cpp"),
    pytest.param("triton", id="triton", marks=[pytest.mark.triton, needs_triton]),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu, needs_gpu]),
]


def host_syncs(fn) -> list[str]:
    """The host syncs ``fn()`` makes on CUDA (torch's sync debug mode warns once per sync)."""
    import warnings

    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return [str(w.message).split("\n")[0] for w in seen if "synchroniz" in str(w.message)]


def device_of(backend: str) -> str:
    return "cpu" if backend == "cpp" else DEVICE


def random_boxes(*shape: int, dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None,
                 scale: float = 100.0) -> torch.Tensor:
    """Valid boxes (x1 <= x2, y1 <= y2) of shape (*shape, 4)."""
    xy = torch.rand(*shape, 2, generator=generator, dtype=torch.float64) * scale
    wh = torch.rand(*shape, 2, generator=generator, dtype=torch.float64) * scale * 0.5 + 0.5
    return torch.cat([xy, xy + wh], dim=-1).to(dtype)


def random_tubes(n: int, t: int, *, video: int = 40, dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None):
    """n tubes padded to t frames, lengths in [0, t], starts in [0, video)."""
    from pyvrel.ops import Tubes

    start = torch.randint(0, video, (n,), generator=generator)
    length = torch.randint(0, t + 1, (n,), generator=generator)
    base = random_boxes(n, 1, dtype=torch.float64, generator=generator, scale=50.0)
    drift = torch.cumsum(torch.randn(n, t, 4, generator=generator, dtype=torch.float64), dim=1)
    boxes = base + drift
    boxes[..., 2:] = torch.maximum(boxes[..., 2:], boxes[..., :2] + 0.5)
    return Tubes(boxes.to(dtype), start, length)


@pytest.fixture
def gen() -> torch.Generator:
    """A freshly seeded generator; the seed is printed (shown by pytest when a test fails)."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"random seed: {seed}")
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory):
    """A tiny dataset folder in the real layout (``pyvrel synth``'s writer): 6 videos of the demo
    world, 60-100 frames (5 train, 1 test; 15 VrdONE training pairs). Read-only: copy to change it."""
    from pyvrel.data.synthetic import SynthConfig, write_world
    from pyvrel.data.dataset import DEMO_WORLD

    out = tmp_path_factory.mktemp("world")
    write_world(out, SynthConfig(**{**DEMO_WORLD, "num_videos": 6, "frames": (60, 100), "entities": (2, 4)}))
    return out
