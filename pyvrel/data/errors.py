"""The error raised for malformed annotation, prediction and feature files."""

from __future__ import annotations


class FormatError(ValueError):
    """A file does not follow the expected format.

    The message starts with where the problem is: ``file: video <id>: <field>: <what>``. The
    parts are also attributes (``None`` when unknown).
    """

    def __init__(self, message: str, *, file: str | None = None, video: str | None = None,
                 field: str | None = None) -> None:
        self.file, self.video, self.field, self.reason = file, video, field, message
        where = [p for p in (file, f"video {video}" if video is not None else None, field) if p]
        super().__init__(": ".join(where + [message]))
