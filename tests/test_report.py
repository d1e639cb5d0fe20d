"""pyvrel.report: the demo's pictures and metrics table."""

from __future__ import annotations

import re

import numpy as np

from pyvrel.data import Relation
from pyvrel.report import HIT_COLOR, MISS_COLOR, curve_svg, metrics_table, nice_ticks, timeline_svg


def test_nice_ticks():
    assert nice_ticks(0, 167, 10) == [0, 20, 40, 60, 80, 100, 120, 140, 160]
    assert nice_ticks(42.3, 49.1, 6, outward=True) == [42, 44, 46, 48, 50]
    assert nice_ticks(3, 3) == [3]


def test_timeline_marks_hits_and_misses_with_axis_and_legend():
    box = np.tile([10.0, 10, 50, 50], (20, 1))
    gt = [Relation(("dog", "chase", "cat"), (10, 30), box, box)]
    dets = [Relation(("dog", "chase", "cat"), (10, 30), box, box, 0.9),    # matches the ground truth
            Relation(("dog", "chase", "cat"), (12, 32), box + 300, box, 0.8),  # overlaps it in time: own row
            Relation(("cat", "bite", "dog"), (0, 20), box, box, 0.5)]       # no such ground truth
    svg = timeline_svg("v", 100, gt, dets)
    assert "3 detections (1 hits, 2 misses)" in svg
    assert svg.count(", hit</title>") == 1 and svg.count(", miss</title>") == 2  # bar tooltips
    assert f'fill="{HIT_COLOR}"' in svg and f'fill="{MISS_COLOR}"' in svg
    assert ">frame (of 100)</text>" in svg and "detection matching none" in svg and "ground truth</text>" in svg
    ticks = re.findall(r'text-anchor="middle">(\d+)</text>', svg)
    assert ticks == [str(t) for t in range(0, 101, 10)]
    # labels in two aligned columns: every kind label at one x, every triplet at another
    assert set(re.findall(r'<text x="(\d+)" y="\d+" font-weight', svg)) == {"10"}
    assert svg.count(">det</text>") == 2 and svg.count(">GT</text>") == 1  # the overlapping detection: a 2nd row, no label


def test_curve_has_axis_titles_and_ticks():
    svg = curve_svg([{"type": "train", "step": s, "loss": 10.0 / s} for s in range(1, 101)])
    assert ">training step</text>" in svg and "rotate(-90)" in svg and ">training loss</text>" in svg
    assert ">100</text>" in svg and "<polyline" in svg


def test_metrics_table_is_aligned_in_percent():
    res = {"RelDet": {"mAP": 0.1234, "R@50": 0.5, "R@100": 1.0}, "RelTag": {"P@1": 0.0, "P@5": 0.25, "P@10": 0.125}}
    table = metrics_table({"VrdONE": res, "frequency prior": res}, {"frequency prior": "a baseline"})
    lines = table.splitlines()
    assert "RelDet (%)" in lines[0] and "RelTag (%)" in lines[0]
    assert len({len(line) for line in lines[1:5]}) == 1  # header, rule and rows line up
    assert lines[3].split() == ["VrdONE", "12.34", "50.00", "100.00", "0.00", "25.00", "12.50"]
    assert lines[-1] == "frequency prior: a baseline"
