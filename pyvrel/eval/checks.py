"""Checks that a prediction file and a ground truth belong together (:func:`input_warnings`):
``pyvrel eval`` prints them, reports them in ``--json`` and, with ``--strict``, fails on them.
Scoring a file against the wrong split or world otherwise just prints zeros."""

from __future__ import annotations


from pyvrel.data.table import RelationTable

__all__ = ["NORMALIZED_VERSION", "input_warnings", "normalized"]

#: Prediction files of this version or later (VidVRD-II's) hold coordinates divided by the frame size.
NORMALIZED_VERSION = "VERSION 2.1"


def normalized(version: str | None) -> bool:
    """Whether a prediction file of ``version`` declares coordinates in ``[0, 1]``."""
    return isinstance(version, str) and version >= NORMALIZED_VERSION


def _some(videos: list[str], n: int = 3) -> str:
    return ", ".join(repr(v) for v in videos[:n]) + (", ..." if len(videos) > n else "")


def input_warnings(groundtruth: RelationTable, prediction: RelationTable) -> list[str]:
    """What looks wrong about scoring ``prediction`` against ``groundtruth``, one sentence each:
    predicted videos the ground truth lacks; fewer than half of the ground-truth videos with
    relations having a prediction; coordinates outside the range the file's version declares
    (``[0, 1]`` from :data:`NORMALIZED_VERSION` on; pixels before it, where every coordinate in
    ``[0, 1]`` suggests a normalised file with the wrong version)."""
    out = []
    known = set(groundtruth.videos)
    unknown = [v for v in prediction.videos if v not in known]
    if unknown:
        out.append(f"{len(unknown)} of the {len(prediction.videos)} predicted videos are not in the ground truth "
                   f"({_some(unknown)}); their predictions are ignored. Is the ground truth the right split or world?")
    scored = [v for v, n in zip(groundtruth.videos, groundtruth.counts().tolist()) if n > 0]
    predicted = {v for v, n in zip(prediction.videos, prediction.counts().tolist()) if n > 0}
    missing = [v for v in scored if v not in predicted]
    if scored and 2 * (len(scored) - len(missing)) < len(scored):
        out.append(f"only {len(scored) - len(missing)} of the {len(scored)} ground-truth videos with relations have "
                   f"predictions ({_some(missing)} have none); each of the others scores 0")
    boxes = prediction.boxes
    head = boxes[:256]  # pixel coordinates show in the first boxes: then the passes over all of them are not needed
    if len(boxes) and (normalized(prediction.version) or not ((head < 0) | (head > 1)).any()):
        lo, hi = float(boxes.min()), float(boxes.max())  # two passes; the boxes outside are counted only if any
        if normalized(prediction.version) and not 0 <= lo <= hi <= 1:
            outside = int(((boxes < 0) | (boxes > 1)).any(axis=1).sum())
            out.append(f"the prediction file's version {prediction.version!r} declares coordinates in [0, 1] "
                       f"(normalised by the frame size), but {outside} of its {len(boxes)} boxes lie outside")
        elif not normalized(prediction.version) and 0 <= lo <= hi <= 1 and hi > 0:
            out.append(f"the prediction file's version {prediction.version!r} declares pixel coordinates, but every "
                       f"coordinate lies in [0, 1]; normalised boxes need \"version\": \"{NORMALIZED_VERSION}\"")
    return out
