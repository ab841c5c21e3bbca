"""Typed errors with a user-facing message.

Every failure a user can cause or fix is a ``FacedropError``: it says what went wrong, which file
it concerns and how to fix it. The CLI prints these with rich; the daemon writes them to
``error.txt``. Anything else that escapes is a bug and is reported as one.
"""

from __future__ import annotations

from pathlib import Path


class FacedropError(Exception):
    """Base of every error facedrop reports to a user.

    ``problem`` is one sentence on what went wrong, ``fix`` what to do about it, ``file`` the file
    (or key) it concerns, if any. ``exit_code`` is what the CLI exits with.
    """

    exit_code = 1
    title = "Error"

    def __init__(self, problem: str, *, fix: str = "", file: str | Path | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.file = str(file) if file is not None else None

    def user_message(self) -> str:
        """The text for ``error.txt`` and the CLI: problem, file and fix on their own lines."""
        lines = [f"{self.title}: {self.problem}"]
        if self.file:
            lines.append(f"File: {self.file}")
        if self.fix:
            lines.append(f"Fix: {self.fix}")
        return "\n".join(lines) + "\n"


class ConfigError(FacedropError):
    """The daemon's configuration file is invalid."""

    exit_code = 2
    title = "Configuration error"


class InputError(FacedropError):
    """A job's inputs are wrong: retrying will not help, the submitter must change them."""

    exit_code = 3
    title = "Problem with the job"


class NoFaceError(InputError):
    """No usable face in the photo (none found, too small, cut off by the edge)."""

    title = "No usable face"


class MediaError(FacedropError):
    """Media could not be read or written (decode, encode, verification)."""

    exit_code = 4
    title = "Media error"


class WeightsError(FacedropError):
    """Model weights are missing, corrupt or of the wrong kind."""

    exit_code = 5
    title = "Model weights problem"


class ModelLoadError(WeightsError):
    """A checkpoint does not match the network (missing, unexpected or mis-shaped keys)."""

    title = "Could not load model"


class Cancelled(FacedropError):
    """The job was cancelled (shutdown); it stays retryable."""

    exit_code = 130
    title = "Cancelled"
