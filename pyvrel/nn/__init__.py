"""pyvrel neural-network layers built on pyvrel.ops: local attention blocks of ActionFormer/VrdONE
(:mod:`pyvrel.nn.local_attention`) and HVR-Net's proposal relations (:mod:`pyvrel.nn.relation`)."""

from pyvrel.nn import local_attention as _local_attention, relation as _relation
from pyvrel.nn.local_attention import *  # noqa: F403 (the public layers, listed once in each module's __all__)
from pyvrel.nn.relation import *  # noqa: F403

__all__ = [*_local_attention.__all__, *_relation.__all__]
