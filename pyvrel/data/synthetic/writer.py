"""Writing a world: a dataset folder (:mod:`pyvrel.data.folder`) that ``pyvrel train/detect --data``
read like real data.

``world.json`` records the config (a stream's option, ``predicate_tail``, ``pair_relations``,
``twins``, ``twins_trace``, ``grounding_clutter`` and ``hvrnet_cue`` only when set), the
vocabularies, the base/novel split of objects (25/10) and predicates (71/61) and the train/test
video split.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pyvrel.data import _json
from pyvrel.data.annotations import write_annotations
from pyvrel.data.features import FeatureStore
from pyvrel.data.synthetic import longtail
from pyvrel.data.synthetic.rules import HEIGHT, WIDTH
from pyvrel.data.synthetic.streams import STREAMS
from pyvrel.data.synthetic.world import SynthConfig, World, generate_video

__all__ = ["write_world"]


def write_world(out_dir: str | os.PathLike, config: SynthConfig | None = None) -> dict[str, Any]:
    """Generate a world and write it under ``out_dir``:
    ``annotations/{train,test}/<vid>.json`` (VidVRD layout), ``features/<vid>.npz`` (if
    ``config.features``) and ``world.json``: a dataset folder (:mod:`pyvrel.data.folder`) that
    ``pyvrel train/detect --data`` read like real data. Returns the ``world.json`` content."""
    config = config or SynthConfig()
    out = Path(out_dir)
    world = World(config)
    store = FeatureStore(out / "features")
    splits: dict[str, list[str]] = {"train": [], "test": []}
    counts: dict[str, int] = {}
    for i in range(config.num_videos):
        v = generate_video(config, i, world)
        write_annotations([v.annotation], out / "annotations" / v.split)
        if v.features is not None:
            store.write(v.annotation.video_id, v.features)
        splits[v.split].append(v.annotation.video_id)
        for r in v.annotation.relations:
            counts[r.predicate] = counts.get(r.predicate, 0) + 1
    options = {stream.option for stream in STREAMS} | {longtail.OPTION, "pair_relations", "twins", "twins_trace",
                                                       "grounding_clutter", "hvrnet_cue"}
    default = asdict(type(config)())
    recorded = {k: v for k, v in asdict(config).items() if k not in options or v != default[k]}  # worlds without them as before
    meta = {"config": recorded, "width": WIDTH, "height": HEIGHT, "objects": list(world.vocab.objects),
            "predicates": list(world.vocab.predicates), "split": world.split, "videos": splits,
            "predicate_counts": dict(sorted(counts.items(), key=lambda kv: -kv[1]))}
    _json.dump(meta, out / "world.json")
    return meta
