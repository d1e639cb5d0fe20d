"""Lazy, guarded access to the compiled extensions and to Triton.

``cpu()`` and ``cuda()`` return the ``pyvrel._C`` / ``pyvrel._cuda`` modules or raise an
:class:`ExtensionUnavailableError` that says how to get them; nothing here is imported when
``pyvrel`` itself is imported. This module is also the one place that detects Triton's
interpreter mode (``TRITON_INTERPRET=1``). It imports torch only where a function needs it (``pyvrel._C``
does not link torch), so ``pyvrel eval`` runs without loading torch.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

class ExtensionUnavailableError(RuntimeError):
    """A compiled pyvrel extension (or Triton) is needed but not available."""


@functools.lru_cache(maxsize=None)
def _load(name: str) -> tuple[ModuleType | None, str]:
    try:
        return importlib.import_module(f"pyvrel.{name}"), ""
    except ImportError as exc:  # not built, or built against another Python
        return None, str(exc)


def cpu() -> ModuleType:
    """The CPU extension ``pyvrel._C``."""
    mod, why = _load("_C")
    if mod is None:
        raise ExtensionUnavailableError(
            "pyvrel's C++ extension pyvrel._C could not be imported "
            f"({why}). Reinstall with `pip install .` from the source tree, or pass "
            "backend='reference' (or 'triton') to run without it."
        )
    return mod


def cuda() -> ModuleType:
    """The CUDA extension ``pyvrel._cuda``."""
    mod, why = _load("_cuda")
    if mod is None:
        raise ExtensionUnavailableError(
            "pyvrel's CUDA extension pyvrel._cuda is not available "
            f"({why}). Rebuild on a machine with nvcc: `PYVREL_CUDA=ON pip install .`, "
            "or pass backend='triton' or 'reference'."
        )
    return mod


def has_cpu_ext() -> bool:
    return _load("_C")[0] is not None


def has_cuda_ext() -> bool:
    return _load("_cuda")[0] is not None


def triton_interpret() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=None)
def has_triton() -> bool:
    """True when the ``triton`` package imports."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_can_run(device: torch.device) -> tuple[bool, str]:
    """Whether Triton kernels can run on tensors of ``device``, and if not, why."""
    if not has_triton():
        return False, "the triton package is not installed (pip install 'pyvrel[triton]')"
    if device.type == "cuda":
        return True, ""
    if device.type == "cpu" and triton_interpret():
        return True, ""
    return False, f"Triton runs on CUDA tensors, or on CPU tensors only with TRITON_INTERPRET=1 (got {device.type})"


def num_threads() -> int:
    """OpenMP team size used by the CPU kernels: torch's intra-op thread count; where torch is not
    loaded (the evaluation path), ``OMP_NUM_THREADS`` or else the CPUs this process may use."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, torch.get_num_threads())
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit():
        return max(1, int(env))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build_info() -> dict[str, Any]:
    """What this installation of pyvrel was built with and can run.

    Returns a dict with ``version``, ``cpu`` (compiler, OpenMP; or the import error),
    ``cuda`` (CUDA version and architectures; or why absent), ``nvcc_on_path``,
    ``triton`` (version or None), ``triton_interpret``, ``torch`` and ``torch_cuda_available``.
    """
    from importlib.metadata import PackageNotFoundError, version

    import torch

    info: dict[str, Any] = {}
    try:
        info["version"] = version("pyvrel")
    except PackageNotFoundError:
        info["version"] = "0.0.0+unknown"
    mod, why = _load("_C")
    info["cpu"] = mod.build_info() if mod is not None else {"available": False, "error": why}
    if mod is not None:
        info["cpu"]["available"] = True
    mod, why = _load("_cuda")
    info["cuda"] = mod.build_info() if mod is not None else {"available": False, "error": why}
    if mod is not None:
        info["cuda"]["available"] = True
    import shutil  # here: not on the evaluation path's imports

    info["nvcc_on_path"] = shutil.which("nvcc") is not None
    if has_triton():
        import triton

        info["triton"] = triton.__version__
    else:
        info["triton"] = None
    info["triton_interpret"] = triton_interpret()
    info["torch"] = torch.__version__
    info["torch_cuda_available"] = torch.cuda.is_available()
    return info


def launch(backend: str, name: str, *args: Any, threads: bool = True) -> Any:
    """Call kernel ``name`` of the C++ (``backend="cpp"``) or CUDA extension.

    ``args`` are the kernel's arguments: tensors (passed as the address of their first element;
    all on one device, CPU for ``"cpp"``, CUDA for ``"cuda"``), ``None`` for an absent optional
    buffer (address 0), and sizes, flags and codes. The CPU call gets the OpenMP team size
    appended (unless ``threads=False``: a serial kernel), the CUDA call the current stream of the
    tensors' device. A kernel that cannot allocate its work buffers raises ``MemoryError`` naming
    it.
    """
    import torch

    if backend not in ("cpp", "cuda"):
        raise ValueError(f"launch: backend must be 'cpp' or 'cuda', got {backend!r}")
    on_cuda = backend == "cuda"
    first = None  # the first tensor: the others must be on its device
    values = []
    for a in args:
        if isinstance(a, torch.Tensor):  # is_cuda, is_cpu and get_device are cheap; .device builds an object
            if not (a.is_cuda if on_cuda else a.is_cpu):
                want = "cuda" if on_cuda else "cpu"
                raise RuntimeError(f"{name}: the {backend!r} kernel takes {want} tensors, got one on {a.device}")
            if first is None:
                first = a
            elif on_cuda and a.get_device() != first.get_device():
                raise RuntimeError(f"{name}: tensors on {first.device} and {a.device}; all must be on one device")
            values.append(a.data_ptr())
        else:
            values.append(0 if a is None else a)
    if first is None:
        raise RuntimeError(f"{name}: launched without tensor arguments")
    try:
        if not on_cuda:
            return getattr(cpu(), name)(*values, *((num_threads(),) if threads else ()))
        index = first.get_device()
        stream = torch.cuda.current_stream(index).cuda_stream
        if index == torch.cuda.current_device():
            return getattr(cuda(), name)(*values, stream)
        with torch.cuda.device(index):
            return getattr(cuda(), name)(*values, stream)
    except MemoryError as e:  # std::bad_alloc of a kernel's scratch: say which kernel
        raise MemoryError(f"{name}: out of host memory for the kernel's work buffers ({e})") from e
