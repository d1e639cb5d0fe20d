import shutil
import subprocess
import sys

import pytest
import torch

import pyvrel
from pyvrel import _codes, _ext


def test_cpu_extension_is_built():
    info = pyvrel.build_info()
    assert info["cpu"]["available"], info["cpu"]
    assert info["cpu"]["version"] == pyvrel.__version__
    assert info["cpu"]["openmp"] != "none"


def test_cuda_extension_is_built_whenever_nvcc_exists():
    info = pyvrel.build_info()
    if shutil.which("nvcc"):
        assert info["cuda"]["available"], f"nvcc is on PATH but pyvrel._cuda was not built: {info['cuda']}"
        assert info["cuda"]["architectures"]
    else:
        assert not info["cuda"]["available"]


def test_import_does_not_load_extensions():
    code = "import sys, pyvrel, pyvrel.ops; print('pyvrel._C' in sys.modules, 'pyvrel._cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_interpreter_detection(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _ext.triton_interpret()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not _ext.triton_interpret()


def test_launch_checks_the_tensors_device():
    a = torch.zeros(1, 1, 4)
    with pytest.raises(RuntimeError, match="box_iou_forward: the 'cuda' kernel takes cuda tensors, got one on cpu"):
        _ext.launch("cuda", "box_iou_forward", a, a, a, 1, 1, 1, 0, 0.0)
    meta = torch.zeros(1, 1, 4, device="meta")
    with pytest.raises(RuntimeError, match="box_iou_forward: the 'cpp' kernel takes cpu tensors, got one on meta"):
        _ext.launch("cpp", "box_iou_forward", a, meta, a, 1, 1, 1, 0, 0.0)


def test_codes_agree_with_the_extensions():
    assert _codes.TABLES["DType"] == {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}
    assert _ext.cpu().codes() == _codes.TABLES
    if _ext.has_cuda_ext():
        assert _ext.cuda().codes() == _codes.TABLES
