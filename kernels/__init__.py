"""Triton kernels of pyvrel (shipped as ``pyvrel.kernels``)."""
