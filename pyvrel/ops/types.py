"""Data types shared by the ops."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Tubes(NamedTuple):
    """A batch of box tubes (trajectories), padded along time.

    boxes (Tensor[N, T, 4]): ``(x1, y1, x2, y2)`` per frame; ``boxes[n, i]`` is the box at video
        frame ``start[n] + i`` for ``i < length[n]``. Frames past ``length[n]`` are never read.
    start (Tensor[N] int64): first frame of each tube on the video timeline.
    length (Tensor[N] int64): number of frames of each tube, ``0 <= length <= T``.

    A plain ``(boxes, start, length)`` tuple is accepted wherever ``Tubes`` is.
    """

    boxes: torch.Tensor
    start: torch.Tensor
    length: torch.Tensor

    @property
    def end(self) -> torch.Tensor:
        """Exclusive end frame ``start + length`` (N,)."""
        return self.start + self.length

    def to(self, *args, **kwargs) -> "Tubes":
        """``Tensor.to`` on the boxes; start and length follow the device only."""
        boxes = self.boxes.to(*args, **kwargs)
        return Tubes(boxes, self.start.to(boxes.device), self.length.to(boxes.device))
