"""The filesystem watcher: a trigger only, never the source of truth.

watchdog events just wake the daemon's loop, which then rescans the inbox. Dropped or coalesced
events (FSEvents drops them under load) therefore only delay a job. The watch is re-armed when
the inbox is deleted, recreated or replaced by another folder (its inode changes) or when the
observer thread has died.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger("facedrop.watch")


class _Wake(FileSystemEventHandler):
    """Every event, whatever its kind, only wakes the loop."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._wake()


class InboxWatcher:
    """Keeps one watchdog observer on the inbox (recursive), re-armed when needed."""

    def __init__(self, inbox: Path, wake: Callable[[], None]) -> None:
        self.inbox = inbox
        self._wake = wake
        self._observer: BaseObserver | None = None
        self._inode: tuple[int, int] | None = None

    def ensure(self) -> None:
        """Arm the watch if it is missing, dead or watching a folder that is no longer the inbox."""
        try:
            st = os.stat(self.inbox)
        except OSError:
            self.stop()
            return
        inode = (st.st_dev, st.st_ino)
        if self._observer is not None and self._observer.is_alive() and inode == self._inode:
            return
        self.stop()
        observer = Observer()
        # realpath: FSEvents reports resolved paths (e.g. ~/Dropbox is a symlink).
        observer.schedule(_Wake(self._wake), os.path.realpath(self.inbox), recursive=True)
        try:
            observer.start()
        except OSError as err:  # e.g. inotify watch limit: the periodic rescan still works
            log.warning("cannot watch %s (%s); relying on the periodic rescan", self.inbox, err)
            return
        self._observer, self._inode = observer, inode

    def stop(self) -> None:
        """Stop and join the observer thread, if any."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        self._observer, self._inode = None, None
