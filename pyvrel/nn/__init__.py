"""pyvrel neural-network layers built on pyvrel.ops (local attention blocks of ActionFormer/VrdONE)."""

from pyvrel.nn.local_attention import *  # noqa: F403 (the public layers, listed once in its __all__)
from pyvrel.nn.local_attention import __all__  # noqa: F401
