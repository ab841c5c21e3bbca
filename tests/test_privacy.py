"""Privacy probe: real file permissions as an unprivileged user; TCC's EPERM with a fake."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.macos.privacy import Access, Probe, is_protected, probe_folder

NOBODY = 65534


def _probe_unprivileged(path: Path, write: bool) -> dict[str, str]:
    """Run the probe as an unprivileged user: root ignores file permissions.

    As root, fork and drop to ``nobody`` in the child (the code is already imported there);
    as any other user, probe in-process.
    """
    if os.geteuid() != 0:
        p = probe_folder(path, write=write)
        return {"access": p.access.value, "detail": p.detail, "fix": p.fix}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            p = probe_folder(path, write=write)
            data = {"access": p.access.value, "detail": p.detail, "fix": p.fix}
            os.write(write_end, json.dumps(data).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        raw = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(raw)


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A folder any user can traverse (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="facedrop-privacy-", dir="/tmp"))
    root.chmod(0o777)
    try:
        yield root
    finally:
        for p in root.iterdir():
            p.chmod(0o700)
        shutil.rmtree(root)


def test_unreadable_folder_is_denied_with_a_permission_fix(open_root: Path) -> None:
    locked = open_root / "locked"
    locked.mkdir()
    locked.chmod(0o000)
    result = _probe_unprivileged(locked, write=False)
    assert result["access"] == "denied"
    assert "Permission denied" in result["detail"]
    assert f"chmod u+rwx '{locked}'" in result["fix"]


def test_missing_folder_is_missing_not_denied(open_root: Path) -> None:
    result = _probe_unprivileged(open_root / "absent", write=False)
    assert result["access"] == "missing"
    assert "mkdir -p" in result["fix"]


def test_read_only_folder_fails_the_write_probe(open_root: Path) -> None:
    ro = open_root / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    assert _probe_unprivileged(ro, write=False)["access"] == "ok"
    result = _probe_unprivileged(ro, write=True)
    assert result["access"] == "denied" and "cannot write to it" in result["detail"]
    ok = open_root / "open"
    ok.mkdir()
    ok.chmod(0o777)
    assert _probe_unprivileged(ok, write=True)["access"] == "ok"
    assert list(ok.iterdir()) == []  # the probe file was removed


def test_tcc_denial_names_the_binary_and_the_setting(tmp_path: Path) -> None:
    def tcc_listdir(path: Path) -> object:
        raise PermissionError(errno.EPERM, "Operation not permitted", str(path))

    binary = Path("/opt/homebrew/Cellar/python@3.11/3.11.9/Frameworks/Python.framework/"
                  "Versions/3.11/bin/python3.11")
    folder = Path("/Users/ann/Documents/facedrop/inbox")
    p = probe_folder(folder, listdir=tcc_listdir, system="darwin", binary=binary)
    assert p.access is Access.DENIED and not p.ok
    assert "Operation not permitted" in p.detail and "TCC" in p.detail
    assert str(binary) in p.fix and "Files and Folders" in p.fix
    assert "Privacy & Security" in p.fix
    cloud = probe_folder(Path("/Users/ann/Library/CloudStorage/Dropbox/facedrop/inbox"),
                         listdir=tcc_listdir, system="darwin", binary=binary)
    assert "Full Disk Access" in cloud.fix and str(binary) in cloud.fix
    # the same EPERM on Linux is not blamed on macOS privacy
    linux = probe_folder(folder, listdir=tcc_listdir, system="linux", binary=binary)
    assert "TCC" not in linux.detail and "chmod" in linux.fix


def test_file_is_not_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    assert probe_folder(f) == Probe(f, Access.NOT_A_FOLDER, "is a file, not a folder",
                                    "point the config at a folder")


def test_protected_locations(tmp_path: Path) -> None:
    assert is_protected(tmp_path / "Documents" / "inbox", home=tmp_path)
    assert is_protected(tmp_path / "Library/CloudStorage/Dropbox/x", home=tmp_path)
    assert not is_protected(tmp_path / "Library/Application Support/facedrop", home=tmp_path)
