"""A progress bar: tqdm when it is installed, else a small built-in one (tqdm is never required)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``update(n, postfix)`` advances the bar by ``n`` steps; ``close()`` ends the line.

    With tqdm installed it is a ``tqdm`` bar. Otherwise, on a terminal the line is redrawn at most
    five times a second; when the stream is not a terminal (logs, CI) a line is written each time
    another tenth of the total is done. ``enabled=False`` draws nothing.
    """

    def __init__(self, total: int, desc: str, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.n, self._last_draw, self._last_tenth = 0, 0.0, 0
        self._tqdm = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._tqdm = tqdm(total=total, desc=desc, file=self.stream, dynamic_ncols=True, leave=True)

    def update(self, n: int = 1, postfix: str = "") -> None:
        self.n += n
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(postfix, refresh=False)
            self._tqdm.update(n)
            return
        tty = self.stream.isatty()
        now = time.monotonic()
        if tty and (now - self._last_draw >= 0.2 or self.n >= self.total):
            self._last_draw = now
            self._draw(postfix, end="")
        elif not tty and self.total and self.n * 10 // self.total > self._last_tenth:
            self._last_tenth = self.n * 10 // self.total
            self._draw(postfix, end="\n")

    def _draw(self, postfix: str, end: str) -> None:
        frac = self.n / self.total if self.total else 1.0
        filled = int(24 * frac)
        bar = "#" * filled + "." * (24 - filled)
        prefix = "\r" if end == "" else ""
        self.stream.write(f"{prefix}{self.desc} [{bar}] {self.n}/{self.total} {postfix}{end}")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()
