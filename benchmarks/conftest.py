"""Benchmark configuration (tests/conftest.py is not loaded here).

* Sets ``TRITON_INTERPRET=1`` when no CUDA device is present, before ``pyvrel.kernels`` can be
  imported (the Triton providers still skip: the interpreter is far too slow to benchmark).
* Collects ``bench_*.py`` files (pyproject's ``testpaths``/default patterns only cover tests).
* ``--quick`` skips the shapes marked ``slow``; the header names the pyvrel being benchmarked.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    try:
        parser.addoption("--quick", action="store_true", help="skip benchmarks/tests marked slow")
    except ValueError:  # already added by tests/conftest.py (both folders in one run)
        pass


def pytest_report_header(config: pytest.Config) -> str:
    import pyvrel

    return (f"pyvrel {pyvrel.__version__} from {os.path.dirname(pyvrel.__file__)}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads, CUDA available: {torch.cuda.is_available()}")


def pytest_collect_file(file_path, parent):
    if file_path.name.startswith("bench_") and file_path.suffix == ".py" and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--quick"):
        skip = pytest.mark.skip(reason="--quick: slow shape skipped")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)
