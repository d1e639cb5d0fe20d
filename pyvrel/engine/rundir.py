"""Output folders of the commands (``pyvrel train --out``, ``pyvrel synth OUT_DIR``) and a run's
``metrics.jsonl``.

The rule: a command writes into a folder that does not exist yet or is empty. A non-empty folder is
refused (:class:`OutputFolderError`) unless the command continues the run kept there (``pyvrel train
--resume`` with a checkpoint inside it) or ``--overwrite`` says to replace it: its content is then
deleted, once the arguments are checked and just before the first file is written. A path that is
a file is refused. Nothing is written before the arguments are checked.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["OutputFolderError", "check_out_dir", "check_out_file", "check_run_dir", "clear_dir", "read_metrics",
           "resume_checkpoint"]

log = logging.getLogger("pyvrel.engine")


class OutputFolderError(Exception):
    """An output path the command may not write to (a file, or a non-empty folder without ``--overwrite``)."""


def check_out_dir(out: str | os.PathLike, option: str, *, continues: bool = False, overwrite: bool = False) -> bool:
    """Check that a command may write into the folder ``out`` (given as ``option``); writes nothing.

    ``continues``: the command continues the run kept in ``out``. Returns whether ``out`` must be
    cleared (:func:`clear_dir`) before the first write: it is not empty, ``overwrite`` is set and
    the run does not continue there.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{option} {out}: exists and is not a folder")
    _check_parents(out, option)
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not held or continues:
        return False
    if overwrite:
        _check_clearable(out, option)
        return True
    shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
    raise OutputFolderError(f"{option} {out}: the folder is not empty (it holds {shown}); give --overwrite to "
                            "delete its content first, or another folder")


def resume_checkpoint(out: str | os.PathLike, resume: str | os.PathLike | None) -> Path | None:
    """The checkpoint a run in ``out`` resumes from: ``resume``, or for ``"auto"``
    ``out/checkpoints/last.pt`` when it exists (else None: a fresh run)."""
    if resume is None:
        return None
    if resume == "auto":
        last = Path(out) / "checkpoints" / "last.pt"
        return last if last.is_file() else None
    return Path(resume)


def check_run_dir(out: str | os.PathLike, resume: str | os.PathLike | None, overwrite: bool = False) -> bool:
    """:func:`check_out_dir` for a training run's ``--out``: it continues there when its
    :func:`resume_checkpoint` lies inside ``out``. Returns whether ``out`` must be cleared."""
    ckpt = resume_checkpoint(out, resume)
    continues = ckpt is not None and ckpt.resolve().is_relative_to(Path(out).resolve())
    return check_out_dir(out, "--out", continues=continues, overwrite=overwrite)


def _check_clearable(out: Path, option: str) -> None:
    where = out.resolve()
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents or where == Path.home().resolve():
        raise OutputFolderError(f"{option} {out}: --overwrite will not delete the current folder, one above it "
                                "or the home folder; give a folder of its own")


def clear_dir(out: str | os.PathLike) -> None:
    """Delete everything inside the folder ``out`` (the folder itself stays)."""
    for p in Path(out).iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def check_out_file(path: str | os.PathLike, option: str) -> None:
    """Check that the file ``path`` (given as ``option``) can be written: not a folder, nor below a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputFolderError(f"{option} {path}: is a folder; give a file name")
    _check_parents(path, option)


def _check_parents(path: Path, option: str) -> None:
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputFolderError(f"{option} {path}: {parent} is a file, not a folder")


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file (one JSON object with an integer ``"step"`` per line).

    A last line cut short (what an interrupted append or a full disk leaves: no newline after it
    and not valid JSON) is dropped with a warning; any other bad line raises ``ValueError`` naming
    the file and the line.
    """
    path = Path(path)
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            if n == len(lines):  # no newline after it: an append that did not finish
                log.warning("%s: line %d is cut short (an interrupted write): dropped", path, n)
                continue
            raise ValueError(f"{path}: line {n}: not valid JSON ({e})") from None
        if not isinstance(record, dict) or type(record.get("step")) is not int:
            raise ValueError(f"{path}: line {n}: expected a JSON object with an integer 'step', got {line[:80]!r}")
        records.append(record)
    return records
