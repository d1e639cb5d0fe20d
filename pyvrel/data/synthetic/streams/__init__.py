"""Extra streams of the synthetic world: arrays a video's feature file gets on request, each in a
module of its own, so that adding one changes no other stream and no world written without it.

A stream is a class following :class:`Stream`, listed in :data:`STREAMS`:

* ``option``: the :class:`~pyvrel.data.synthetic.SynthConfig` field that switches it on (falsy by
  default; ``world.json`` records it only when set, so older worlds stay byte-identical);
* ``tag``: its generators' own seed tag: ``default_rng([seed, 1 << 30, tag])`` for world-level
  constants (built once in ``__init__(world)``) and ``default_rng([seed, index, tag])`` for video
  ``index``, so every other array is that of the same world without it;
* ``arrays(rng, annotation, categories, arrays)``: the new arrays of one video from its
  annotation, its entities' categories (by tid) and the detector-like arrays already made.

Streams run in :data:`STREAMS` order after the detector outputs, only when ``features`` is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from pyvrel.data.synthetic.streams.clip import ClipStream
from pyvrel.data.synthetic.streams.grounding import GroundingStream
from pyvrel.data.synthetic.streams.openvocab import OpenVocabStream
from pyvrel.data.synthetic.streams.hvrnet import HVRNetStream

if TYPE_CHECKING:
    from pyvrel.data.annotations import VideoAnnotation
    from pyvrel.data.synthetic.world import World

__all__ = ["STREAMS", "ClipStream", "GroundingStream", "HVRNetStream", "OpenVocabStream", "Stream"]


class Stream(Protocol):
    """One extra stream of the synthetic world (module docstring)."""

    option: ClassVar[str]
    tag: ClassVar[int]

    def __init__(self, world: World) -> None: ...

    def arrays(self, rng: np.random.Generator, annotation: VideoAnnotation, categories: list[str],
               arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


#: Every extra stream, in the order they run (a new stream: one module here and one entry).
STREAMS: tuple[type[Stream], ...] = (ClipStream, GroundingStream, OpenVocabStream, HVRNetStream)
