"""Reading untrusted files from the inbox without blocking, exhausting or echoing them.

Everything a submitter drops is hostile until shown otherwise: a ``job.yaml`` may be a FIFO
(an ``open`` blocks until a writer appears), a symlink to ``/dev/zero`` (a read never ends), 50 MB
of text, or a YAML alias bomb whose expanded ``repr`` is gigabytes. So every inbox read goes
through here: the path must resolve inside the job folder, it is opened ``O_NONBLOCK |
O_NOFOLLOW`` (a FIFO or device opens at once and is then refused by ``fstat``), reads are capped,
YAML anchors and aliases are refused before anything is built, and values quoted back in error
messages are clipped.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError

JOB_YAML_MAX_BYTES = 16 * 1024  # a job.yaml is a handful of lines; anything bigger is not one
YAML_MAX_DEPTH = 16  # nested collections; job.yaml needs 3 (files: - {name: ...})
CLIP_CHARS = 80
_CHUNK = 1 << 20


class UnsafeFileError(InputError):
    """An inbox entry that is not a plain regular file inside its job folder."""


class TooLargeError(InputError):
    """A file over the size a safe read allows."""


class YamlShapeError(InputError):
    """YAML that uses anchors, aliases or deep nesting (refused before it is built)."""


def clip(value: object, limit: int = CLIP_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters: messages never echo unbounded input.

    Containers are summarised before ``repr`` so a huge (or self-sharing) value is never
    rendered in full.
    """
    if isinstance(value, dict | list | tuple | set) and len(value) > 8:
        return f"<a {type(value).__name__} of {len(value)} items>"
    if isinstance(value, int) and value.bit_length() > 200:  # repr of a huge int is slow or fails
        return f"<a number of about {int(value.bit_length() * 0.30103)} digits>"
    try:
        text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    except RecursionError:
        return f"<a deeply nested {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shorten(text: str, limit: int = CLIP_CHARS) -> str:
    """``text`` cut to ``limit`` characters, for quoting a name inside a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _inside(path: Path, folder: Path) -> Path:
    """The real path of ``path``; ``UnsafeFileError`` if it (or a link in it) leaves ``folder``."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(folder)):
        raise UnsafeFileError(
            f"'{path.name}' is a link to something outside the job folder",
            fix="copy the file itself into the job folder",
            file=path,
        )
    return real


@contextmanager
def open_regular(path: Path, folder: Path) -> Iterator[int]:
    """A read-only fd for ``path``, which must be a regular file resolving inside ``folder``.

    ``O_NONBLOCK`` makes a FIFO open return at once (no writer needed) and ``O_NOFOLLOW``
    refuses a link swapped in after the check; ``fstat`` on the open fd then rules out FIFOs,
    sockets, devices and folders without ever reading them.
    """
    real = _inside(path, folder)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError as err:
        raise UnsafeFileError(
            f"'{path.name}' cannot be opened ({err.strerror})",
            fix="make it a plain file readable by facedrop",
            file=path,
        ) from err
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(
                f"'{path.name}' is {_kind(mode)}, not a regular file",
                fix="put a plain file in the job folder instead",
                file=path,
            )
        os.set_blocking(fd, True)  # a regular file: plain blocking reads from here on
        yield fd
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a special file"


def read_bounded(path: Path, folder: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file inside ``folder``; ``TooLargeError`` past ``max_bytes``."""
    with open_regular(path, folder) as fd:
        data = b""
        while len(data) <= max_bytes:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - len(data)))
            if not chunk:
                return data
            data += chunk
    raise TooLargeError(
        f"'{path.name}' is larger than {max_bytes} bytes",
        fix=f"keep {path.name} under {max_bytes // 1024} KiB",
        file=path,
    )


def sha256_regular(path: Path, folder: Path) -> str:
    """Hex sha256 of a regular file inside ``folder`` (never of a FIFO or device)."""
    digest = hashlib.sha256()
    with open_regular(path, folder) as fd:
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def size_regular(path: Path, folder: Path) -> int:
    """Size in bytes of a regular file inside ``folder``."""
    with open_regular(path, folder) as fd:
        return os.fstat(fd).st_size


def load_yaml(text: str, path: Path) -> Any:
    """Safe-load ``text``, refusing anchors, aliases and deep nesting before anything is built.

    Aliases are the only way a few KiB of YAML grow into gigabytes (the "billion laughs"), and
    a job.yaml has no use for them; walking the event stream first refuses them while it is
    still flat text.
    """
    try:
        _check_shape(text, path)
        return _construct(text, path)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(
            f"{path.name} is not valid YAML{where}",
            fix="fix the syntax (key: value, one per line), or start from 'facedrop example'",
            file=path,
        ) from err


def _check_shape(text: str, path: Path) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise YamlShapeError(
                f"{path.name} uses a YAML anchor or alias (& or *), which is not accepted",
                fix="write each value out in full",
                file=path,
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > YAML_MAX_DEPTH:
                raise YamlShapeError(
                    f"{path.name} is nested more than {YAML_MAX_DEPTH} levels deep",
                    fix="use plain 'key: value' lines",
                    file=path,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _construct(text: str, path: Path) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise
    except Exception as err:  # noqa: BLE001 - PyYAML's constructors raise any builtin error
        # e.g. a 5000-digit number, month 13 in a date, "!!timestamp abc" (an AttributeError)
        raise InputError(
            f"{path.name} holds a value that cannot be read ({shorten(str(err), 80)})",
            fix="write plain values: file names, numbers of a few digits, true or false",
            file=path,
        ) from err


def read_yaml_file(path: Path, folder: Path, max_bytes: int = JOB_YAML_MAX_BYTES) -> Any:
    """Read (bounded, regular files only) and safe-load a YAML file inside ``folder``."""
    raw = read_bounded(path, folder, max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path.name} is not UTF-8 text (byte {err.start} is not valid)",
            fix="save it as plain UTF-8 text",
            file=path,
        ) from err
    return load_yaml(text, path)
