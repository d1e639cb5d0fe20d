"""pyvrel neural-network layers built on pyvrel.ops (local attention blocks of ActionFormer/VrdONE)."""

from pyvrel.nn.local_attention import (
    AffineDropPath,
    ChannelLayerNorm,
    LocalMaskedMHCA,
    LocalMultiheadAttention,
    MaskedConv1D,
    TransformerBlock,
    drop_path,
)

__all__ = [
    "AffineDropPath",
    "ChannelLayerNorm",
    "LocalMaskedMHCA",
    "LocalMultiheadAttention",
    "MaskedConv1D",
    "TransformerBlock",
    "drop_path",
]
