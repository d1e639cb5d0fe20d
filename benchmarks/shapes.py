"""Named benchmark shapes shared by ``bench_*.py`` (the lead merges main's sections with these)."""

from __future__ import annotations

from dataclasses import dataclass

# ---- local attention (benchmarks/bench_local_attention.py) ----------------------------------


@dataclass(frozen=True)
class LocalAttentionShape:
    """One windowed-attention problem: q = k = v of (batch, heads, length, head_dim) float32,
    kernel size ``window``, valid lengths ``lengths`` (None: all full)."""

    name: str
    batch: int
    heads: int
    length: int
    head_dim: int
    window: int
    lengths: tuple[int, ...] | None = None


_VARLEN = (512, 480, 400, 300, 256, 200, 128, 64)  # issue 3 / specs/local_attention.md §3
LOCAL_ATTENTION = [
    LocalAttentionShape("vidor_d32", 8, 8, 512, 32, 9, _VARLEN),
    LocalAttentionShape("vidor_d64", 8, 8, 512, 64, 9, _VARLEN),
    LocalAttentionShape("vidvrd_l96", 16, 4, 96, 64, 7),
    LocalAttentionShape("pyramid_l256", 8, 8, 256, 64, 9, tuple(n // 2 for n in _VARLEN)),
    LocalAttentionShape("pyramid_l128", 8, 8, 128, 64, 9, tuple(n // 4 for n in _VARLEN)),
    LocalAttentionShape("pyramid_l64", 8, 8, 64, 64, 9, tuple(n // 8 for n in _VARLEN)),
]
