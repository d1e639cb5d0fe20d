"""Pictures and tables of results, written directly (no plotting library): one video's relations
over time (:func:`timeline_svg`), one video's tracklets against its ground-truth tracks
(:func:`tracks_svg`), one grounded query over time (:func:`grounding_svg`), a training curve
(:func:`curve_svg`), per-predicate recall of several models (:func:`recall_svg`), and relation
detection / tagging / grounding scores as an aligned terminal table (:func:`metrics_table`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

from pyvrel.data.boxes import box_ious
from pyvrel.data.relations import Relation, Triplet

__all__ = ["DETECTION_COLUMNS", "GROUNDING_COLUMNS", "MEAN_RECALL_COLUMNS", "curve_svg", "grounding_svg",
           "metrics_table", "nice_ticks", "recall_svg", "timeline_svg", "tracks_svg"]

GT_COLOR, HIT_COLOR, MISS_COLOR = "#2ca02c", "#1f77b4", "#d62728"
_GRID = 'stroke="#d9d9d9" stroke-width="1"'


def nice_ticks(lo: float, hi: float, target: int = 8, outward: bool = False) -> list[float]:
    """About ``target`` round tick values (steps of 1, 2 or 5 times a power of ten) inside ``[lo, hi]``
    (``outward``: from the last tick at or below ``lo`` to the first at or above ``hi``)."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) if outward else math.ceil(lo / step - 1e-9)
    last = math.ceil(hi / step - 1e-9) if outward else math.floor(hi / step + 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _text_width(text: str, size: float = 11) -> float:
    """Approximate width in pixels of ``text`` in a sans-serif font of ``size`` px (0.58 em per character)."""
    return 0.58 * size * len(text)


def _label(value: float) -> str:
    return f"{value:.6g}"


def _svg_open(width: float, height: float) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="11">',
            f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>']


def _lanes(relations: Sequence[Relation]) -> list[list[Relation]]:
    """Relations packed into rows whose spans do not overlap (each into the first row it fits, by start frame)."""
    lanes: list[list[Relation]] = []
    for r in sorted(relations, key=lambda r: tuple(r.duration)):
        lane = next((lane for lane in lanes if lane[-1].duration[1] <= r.duration[0]), None)
        if lane is None:
            lanes.append(lane := [])
        lane.append(r)
    return lanes


def timeline_svg(video_id: str, frames: int, groundtruth: Sequence[Relation], detections: Sequence[Relation],
                 max_detections: int = 20, viou_threshold: float = 0.5) -> str:
    """One video's relations over its ``frames`` frames: for each triplet a ground-truth row (green)
    and a row of the top ``max_detections`` detections by score, blue where the detection matches a
    ground-truth relation as the official evaluation matches them (greedy, vIoU >=
    ``viou_threshold``), red where it does not; opacity grows with the score. Overlapping spans of
    one triplet go to extra rows. Frame axis with ticks
    and gridlines, row labels in two aligned columns, a legend; each bar has a tooltip."""
    from pyvrel.eval import match_video

    top: list[tuple[Relation, bool]] = []
    if detections:
        m = match_video(groundtruth, detections, viou_threshold=viou_threshold)
        top = [(detections[i], bool(hit)) for i, hit in zip(m.order[:max_detections].tolist(), m.tp.tolist())]
    gt_rows: dict[Triplet, list[Relation]] = {}
    for r in groundtruth:
        gt_rows.setdefault(tuple(r.triplet), []).append(r)
    det_rows: dict[Triplet, list[tuple[Relation, bool]]] = {}
    for r, hit in top:
        det_rows.setdefault(tuple(r.triplet), []).append((r, hit))
    rows: list[tuple[str, Triplet, list[tuple[Relation, str, float]]]] = []
    for t in list(gt_rows) + [t for t in det_rows if t not in gt_rows]:
        if t in gt_rows:
            rows += [("GT" if k == 0 else "", t, [(r, GT_COLOR, 0.85) for r in lane])
                     for k, lane in enumerate(_lanes(gt_rows[t]))]
        if t in det_rows:
            hit = {id(r): h for r, h in det_rows[t]}
            rows += [("det" if k == 0 else "", t,
                      [(r, HIT_COLOR if hit[id(r)] else MISS_COLOR, 0.35 + 0.65 * min(max(r.score, 0.0), 1.0))
                       for r in lane])
                     for k, lane in enumerate(_lanes([r for r, _ in det_rows[t]]))]

    kind_x, name_x, row_h, top_y = 10, 42, 20, 64
    label_w = name_x + max((_text_width(" ".join(t)) for _, t, _ in rows), default=60) + 16
    plot_w = 600
    width = label_w + plot_w + 30
    height = top_y + row_h * len(rows) + 52
    x = lambda f: label_w + f * plot_w / max(frames, 1)  # noqa: E731
    bottom = top_y + row_h * len(rows)
    n_hit = sum(hit for _, hit in top)
    out = _svg_open(width, height)
    out.append(f'<text x="10" y="20" font-size="14">{escape(video_id)}: ground truth and the top {len(top)} '
               f'detections ({n_hit} hits, {len(top) - n_hit} misses)</text>')
    legend = [(GT_COLOR, "ground truth"), (HIT_COLOR, f"detection matching a ground truth (vIoU >= {viou_threshold:g})"),
              (MISS_COLOR, "detection matching none")]
    lx = 10.0
    for color, text in legend:
        out.append(f'<rect x="{lx:.1f}" y="32" width="14" height="10" fill="{color}" fill-opacity="0.85"/>'
                   f'<text x="{lx + 19:.1f}" y="41">{escape(text)}</text>')
        lx += 19 + _text_width(text) + 18
    out.append(f'<text x="{lx:.1f}" y="41" fill="#555">darker = higher score</text>')
    group = -1  # a light band behind every other triplet's rows
    for i, (kind, t, _) in enumerate(rows):
        if i == 0 or t != rows[i - 1][1]:
            group += 1
            if group % 2 == 0:
                n = next((j for j in range(i, len(rows)) if rows[j][1] != t), len(rows)) - i
                out.append(f'<rect x="0" y="{top_y + i * row_h}" width="{width:.0f}" height="{n * row_h}" '
                           f'fill="#f4f4f4"/>')
    for f in nice_ticks(0, frames, 10):  # gridlines and ticks of the frame axis
        out.append(f'<line x1="{x(f):.1f}" y1="{top_y}" x2="{x(f):.1f}" y2="{bottom}" {_GRID}/>')
        out.append(f'<line x1="{x(f):.1f}" y1="{bottom}" x2="{x(f):.1f}" y2="{bottom + 5}" stroke="black"/>'
                   f'<text x="{x(f):.1f}" y="{bottom + 17}" text-anchor="middle">{_label(f)}</text>')
    out.append(f'<line x1="{label_w:.1f}" y1="{bottom}" x2="{x(frames):.1f}" y2="{bottom}" stroke="black"/>')
    out.append(f'<text x="{label_w + plot_w / 2:.1f}" y="{bottom + 36}" text-anchor="middle">frame (of {frames})</text>')
    for i, (kind, t, bars) in enumerate(rows):
        y = top_y + i * row_h
        if kind:  # the first row of a triplet's ground truth or detections
            out.append(f'<text x="{kind_x}" y="{y + 14}" font-weight="{"bold" if kind == "GT" else "normal"}">'
                       f'{kind}</text><text x="{name_x}" y="{y + 14}">{escape(" ".join(t))}</text>')
        for r, color, opacity in bars:
            b, e = r.duration
            what = "ground truth" if color == GT_COLOR else f"score {r.score:.3f}, {'hit' if color == HIT_COLOR else 'miss'}"
            out.append(f'<rect x="{x(b):.1f}" y="{y + 3}" width="{max(x(e) - x(b), 1.0):.1f}" height="{row_h - 6}" '
                       f'fill="{color}" fill-opacity="{opacity:.2f}"><title>{escape(" ".join(t))}: frames '
                       f'[{b}, {e}), {what}</title></rect>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def tracks_svg(video_id: str, frames: int, width: float,
               groundtruth: Sequence[tuple[str, int, Sequence[Sequence[float]]]],
               tracklets: Sequence[tuple[str, int, Sequence[Sequence[float]], bool]]) -> str:
    """One video's tracks as the horizontal centre of their boxes over time: ground-truth tracks
    ``(category, first frame, boxes (L, 4))`` as thick green lines, tracklets ``(category, first
    frame, boxes, hit)`` as thin lines, blue when ``hit`` (it matches a ground-truth track), red
    otherwise; each line is labelled with its category at its start and has a tooltip. ``width``:
    the frame width in pixels (the vertical axis)."""
    plot_w, plot_h, left, top_y = 640, 320, 60, 64
    out = _svg_open(left + plot_w + 30, top_y + plot_h + 52)
    hits = sum(t[3] for t in tracklets)
    out.append(f'<text x="10" y="20" font-size="14">{escape(video_id)}: {len(groundtruth)} ground-truth tracks, '
               f'{len(tracklets)} tracklets ({hits} matching one)</text>')
    lx = 10.0
    for color, text in ((GT_COLOR, "ground-truth track"), (HIT_COLOR, "tracklet matching a track"),
                        (MISS_COLOR, "tracklet matching none")):
        out.append(f'<rect x="{lx:.1f}" y="32" width="14" height="10" fill="{color}"/>'
                   f'<text x="{lx + 19:.1f}" y="41">{escape(text)}</text>')
        lx += 19 + _text_width(text) + 18
    x = lambda f: left + f * plot_w / max(frames, 1)  # noqa: E731
    y = lambda c: top_y + plot_h - c * plot_h / max(width, 1)  # noqa: E731
    bottom = top_y + plot_h
    for f in nice_ticks(0, frames, 10):
        out.append(f'<line x1="{x(f):.1f}" y1="{top_y}" x2="{x(f):.1f}" y2="{bottom}" {_GRID}/>'
                   f'<text x="{x(f):.1f}" y="{bottom + 17}" text-anchor="middle">{_label(f)}</text>')
    for c in nice_ticks(0, width, 6):
        out.append(f'<line x1="{left}" y1="{y(c):.1f}" x2="{x(frames):.1f}" y2="{y(c):.1f}" {_GRID}/>'
                   f'<text x="{left - 6}" y="{y(c) + 4:.1f}" text-anchor="end">{_label(c)}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{bottom + 36}" text-anchor="middle">frame (of {frames}); '
               f'vertical: box centre x (pixels)</text>')
    lines = [(c, s0, b, GT_COLOR, 4.0) for c, s0, b in groundtruth]
    lines += [(c, s0, b, HIT_COLOR if hit else MISS_COLOR, 1.5) for c, s0, b, hit in tracklets]
    for category, start, boxes, color, stroke in lines:
        points = " ".join(f"{x(start + k):.1f},{y((b[0] + b[2]) / 2):.1f}" for k, b in enumerate(boxes))
        kind = "ground truth" if color == GT_COLOR else "tracklet"
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="{stroke}" '
                   f'stroke-opacity="0.8"><title>{kind} {escape(category)}: frames [{start}, {start + len(boxes)})'
                   f'</title></polyline>')
        if len(boxes):
            out.append(f'<text x="{x(start) + 2:.1f}" y="{y((boxes[0][0] + boxes[0][2]) / 2) - 4:.1f}" '
                       f'fill="{color}">{escape(category)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _frame_ious(pred: Relation, truth: Relation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames both cover and the per-frame IoU (+1 pixel areas) of the subject and of the object boxes."""
    lo, hi = max(pred.duration[0], truth.duration[0]), min(pred.duration[1], truth.duration[1])
    frames = np.arange(lo, max(lo, hi))
    p, t = frames - pred.duration[0], frames - truth.duration[0]
    return frames, box_ious(pred.sub_traj[p], truth.sub_traj[t], 1), box_ious(pred.obj_traj[p], truth.obj_traj[t], 1)


def grounding_svg(video_id: str, frames: int, truth: Sequence[Relation], grounded: Relation,
                  sampled: Sequence[int], attention: Sequence[float], threshold: float) -> str:
    """One grounded query over a video's ``frames`` frames: the spans of its ground-truth instances
    (``truth``, green) and of the grounding (blue); the per-frame IoU of the grounded subject and
    object boxes with those of the ground-truth instance they overlap most; the temporal attention
    ``attention`` on the ``sampled`` frames with the grounding's ``threshold`` (dashed)."""
    left, plot_w, width = 110, 600, 740
    x = lambda f: left + f * plot_w / max(frames, 1)  # noqa: E731
    query = " ".join(grounded.triplet)
    rows = [("ground truth", r.duration, GT_COLOR) for r in truth] + [("grounded", grounded.duration, HIT_COLOR)]
    out = _svg_open(width, 34 + 18 * len(rows) + 290)
    out.append(f'<text x="10" y="20" font-size="14">{escape(video_id)}: query "{escape(query)}"</text>')
    y = 34
    for i, (name, (b, e), color) in enumerate(rows):
        if i == 0 or name != rows[i - 1][0]:
            out.append(f'<text x="10" y="{y + 13}">{name}</text>')
        out.append(f'<rect x="{x(b):.1f}" y="{y + 3}" width="{max(x(e) - x(b), 1.0):.1f}" height="12" fill="{color}" '
                   f'fill-opacity="0.85"><title>frames [{b}, {e})</title></rect>')
        y += 18
    best = max(truth, key=lambda r: len(_frame_ious(grounded, r)[0]), default=None)
    panels = [("IoU with GT", 0.0, 1.0), ("attention", 0.0, max([threshold, *attention]) * 1.1)]
    for k, (title, lo, hi) in enumerate(panels):
        top = y + 14 + k * 130
        sy = lambda v: top + 100 - (v - lo) * 100 / (hi - lo)  # noqa: E731
        out.append(f'<text x="10" y="{top + 54}">{title}</text>')
        for t in nice_ticks(lo, hi, 4):
            out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + plot_w}" y2="{sy(t):.1f}" {_GRID}/>'
                       f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
        if k == 0 and best is not None:
            f, ious_s, ious_o = _frame_ious(grounded, best)
            for ious, color, name in ((ious_s, "#1f77b4", "subject"), (ious_o, "#ff7f0e", "object")):
                pts = " ".join(f"{x(a):.1f},{sy(v):.1f}" for a, v in zip(f.tolist(), ious.tolist()))
                out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5">'
                           f'<title>{name}</title></polyline>')
            out.append(f'<text x="{left + plot_w - 150}" y="{top - 2}" fill="#1f77b4">subject</text>'
                       f'<text x="{left + plot_w - 90}" y="{top - 2}" fill="#ff7f0e">object</text>')
        if k == 1:
            pts = " ".join(f"{x(a):.1f},{sy(v):.1f}" for a, v in zip(sampled, attention))
            out.append(f'<polyline points="{pts}" fill="none" stroke="#9467bd" stroke-width="1.5"/>'
                       f'<line x1="{left}" y1="{sy(threshold):.1f}" x2="{left + plot_w}" y2="{sy(threshold):.1f}" '
                       f'stroke="#555" stroke-dasharray="4 3"><title>threshold {threshold:g}</title></line>')
        out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="100" fill="none" stroke="black"/>')
    bottom = y + 14 + 230
    for f in nice_ticks(0, frames, 10):
        out.append(f'<text x="{x(f):.1f}" y="{bottom + 14}" text-anchor="middle">{_label(f)}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{bottom + 32}" text-anchor="middle">frame (of {frames})</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def curve_svg(records: Sequence[Mapping[str, Any]], key: str = "loss") -> str:
    """The training curve: ``key`` of the ``"train"`` records of ``metrics.jsonl`` against the
    step, with axis titles, ticks and gridlines."""
    pts = [(r["step"], r[key]) for r in records if r.get("type") == "train" and key in r]
    width, height = 640, 380
    left, right, top, bottom = 72, 20, 40, 56
    pw, ph = width - left - right, height - top - bottom
    out = _svg_open(width, height)
    out.append(f'<text x="{left}" y="22" font-size="14">training {escape(key)} per step</text>')
    if pts:
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
        if y1 <= y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        y_ticks = nice_ticks(y0, y1, 6, outward=True)
        y0, y1 = min(y0, y_ticks[0]), max(y1, y_ticks[-1])
        x_ticks = [t for t in nice_ticks(x0, x1, 8) if t == int(t)] or [x0]
        sx = lambda v: left + (v - x0) * pw / max(x1 - x0, 1)  # noqa: E731
        sy = lambda v: top + ph - (v - y0) * ph / (y1 - y0)  # noqa: E731
        for t in y_ticks:
            out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" {_GRID}/>'
                       f'<line x1="{left - 5}" y1="{sy(t):.1f}" x2="{left}" y2="{sy(t):.1f}" stroke="black"/>'
                       f'<text x="{left - 8}" y="{sy(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
        for t in x_ticks:
            out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}" {_GRID}/>'
                       f'<line x1="{sx(t):.1f}" y1="{top + ph}" x2="{sx(t):.1f}" y2="{top + ph + 5}" stroke="black"/>'
                       f'<text x="{sx(t):.1f}" y="{top + ph + 18}" text-anchor="middle">{int(t)}</text>')
        line = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in pts)
        out.append(f'<polyline points="{line}" fill="none" stroke="#d62728" stroke-width="1.5"/>')
    else:
        out.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">no "{escape(key)}" records</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle">training step</text>')
    out.append(f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'training {escape(key)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


_SERIES_COLORS = ("#7f7f7f", "#d62728", "#1f77b4", "#2ca02c")


def recall_svg(recalls: Mapping[str, Mapping[str, float]], predicates: Sequence[str], title: str,
               counts: Mapping[str, int] | None = None) -> str:
    """Grouped bars of per-predicate recall: ``recalls`` maps a model name to ``{predicate: recall
    in [0, 1]}`` (a missing predicate counts 0); ``predicates`` gives the x order (head to tail);
    ``counts`` (training labels per predicate) are written under the names when given."""
    n, k = len(predicates), max(len(recalls), 1)
    left, right, top, bottom = 56, 20, 56, 150
    slot = max(3 * k, 14)
    pw, ph = n * slot, 300
    width, height = left + pw + right, top + ph + bottom
    out = _svg_open(max(width, 360), height)
    out.append(f'<text x="{left}" y="22" font-size="14">{escape(title)}</text>')
    for i, name in enumerate(recalls):
        x = left + 150 * i
        color = _SERIES_COLORS[i % len(_SERIES_COLORS)]
        out.append(f'<rect x="{x}" y="32" width="12" height="12" fill="{color}"/>'
                   f'<text x="{x + 16}" y="42">{escape(name)}</text>')
    sy = lambda v: top + ph - v * ph  # noqa: E731
    for t in nice_ticks(0.0, 1.0, 5):
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" {_GRID}/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    bar = (slot - 4) / k
    for j, pred in enumerate(predicates):
        x0 = left + j * slot + 2
        for i, values in enumerate(recalls.values()):
            v = float(values.get(pred, 0.0))
            color = _SERIES_COLORS[i % len(_SERIES_COLORS)]
            out.append(f'<rect x="{x0 + i * bar:.1f}" y="{sy(v):.1f}" width="{bar:.1f}" height="{ph * v:.1f}" '
                       f'fill="{color}"/>')
        label = pred + (f" ({counts[pred]})" if counts is not None and pred in counts else "")
        cx = x0 + (slot - 4) / 2
        out.append(f'<text transform="translate({cx + 3:.1f} {top + ph + 6}) rotate(-90)" text-anchor="end" '
                   f'font-size="9">{escape(label)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    out.append(f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" text-anchor="middle">recall</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">predicates, head to tail '
               f'(training labels)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


#: The columns of :func:`metrics_table`: (group, metric) of relation detection / tagging and of grounding.
DETECTION_COLUMNS = (("RelDet", "mAP"), ("RelDet", "R@50"), ("RelDet", "R@100"), ("RelTag", "P@1"), ("RelTag", "P@5"),
                     ("RelTag", "P@10"))
GROUNDING_COLUMNS = (("Grounding", "AccS"), ("Grounding", "AccO"), ("Grounding", "AccR"))


#: The RelDet columns of a long-tail study (DLL's Table 1): mean recall, recall, Mean, mAP.
MEAN_RECALL_COLUMNS = (("RelDet", "mR@50"), ("RelDet", "mR@100"), ("RelDet", "R@50"), ("RelDet", "R@100"),
                       ("RelDet", "Mean"), ("RelDet", "mAP"), ("RelTag", "P@5"), ("RelTag", "P@10"))


def metrics_table(results: Mapping[str, Mapping[str, Any]], notes: Mapping[str, str] | None = None,
                  columns: Sequence[tuple[str, str]] = DETECTION_COLUMNS) -> str:
    """``results`` (model name -> ``{group: {metric: fraction}}``, e.g. :func:`pyvrel.eval.evaluate_relations`
    output) as an aligned plain-text table of percentages, one row per model and one column per
    ``(group, metric)`` of ``columns`` under its group's title, then one line per entry of ``notes``
    (model name -> what that row is)."""
    name_w = max([len("model")] + [len(n) for n in results])
    col_w = 8
    groups = list(dict.fromkeys(g for g, _ in columns))
    head1 = " " * name_w + "".join(
        "  " + f"{g + ' (%)':^{sum(1 for c, _ in columns if c == g) * (col_w + 2) - 2}}" for g in groups)
    head2 = f"{'model':<{name_w}}" + "".join(f"  {k:>{col_w}}" for _, k in columns)
    lines = [head1.rstrip(), head2, "-" * len(head2)]
    for name, r in results.items():
        lines.append(f"{name:<{name_w}}" + "".join(f"  {100 * r[group][k]:>{col_w}.2f}" for group, k in columns))
    for name, note in (notes or {}).items():
        lines.append(f"{name}: {note}")
    return "\n".join(lines)
