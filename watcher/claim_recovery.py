"""Crash recovery of the intake's claims, at start-up, before the worker may take anything.

It resumes whatever a kill interrupted: it finishes half-done cross-filesystem claims (their
markers in the inbox), redoes an unpack that did not finish (unless the slot's job is already
recorded, so an unpacked job never runs twice), ends recorded jobs whose slot holds
``.failed``, and enqueues claimed folders a kill left unrecorded. The slot's layout and the
steps it shares with the claim are ``watcher.slots``; the queue and outbox are made to agree
afterwards by ``watcher.reconcile``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from watcher.filetree import remove_empty, remove_tree, subdirs
from watcher.jobqueue import JobQueue
from watcher.outbox import is_litter
from watcher.slots import (
    FAILED_MARK,
    RESUME_SUFFIX,
    ZIP_HOLD,
    Slots,
    claimed_name,
    is_claim_marker,
)

log = logging.getLogger("facedrop.intake")  # one logger for the claim, start to end


def recover_claims(inbox: Path, work_dir: Path, queue: JobQueue, slots: Slots) -> None:
    """Finish every claim a kill interrupted; safe to run again after another kill."""
    for marker in sorted(_markers(inbox)):
        slot_name, name = claimed_name(marker)
        slot = work_dir / slot_name
        slot.mkdir(parents=True, exist_ok=True)
        hold = slot / ZIP_HOLD
        dest = hold / name if hold.is_dir() else slot / name
        for path in dest.parent.iterdir():
            if is_litter(path.name):
                remove_tree(path)
        slots.copy_claimed(marker, dest)
    known = {job.payload for job in queue.list(limit=None)}
    for slot in sorted(subdirs(work_dir)):
        _recover_slot(slot, known, slots)


def _recover_slot(slot: Path, known: set[str], slots: Slots) -> None:
    recorded = any(p.partition("/")[0] == slot.name for p in known)
    for path in slot.iterdir():  # every claim marker is handled: a staged copy is orphaned
        if path.name.startswith(".") and path.name.endswith(RESUME_SUFFIX):
            remove_tree(path)
    folders = [f for f in sorted(subdirs(slot)) if not f.name.startswith(".")]
    hold = slot / ZIP_HOLD
    if hold.is_dir():
        held = sorted(p for p in hold.iterdir() if not is_litter(p.name))
        if recorded or not held:
            remove_tree(hold)  # its job is recorded (or it never arrived): not needed
        elif (slot / FAILED_MARK).exists():
            slots.fail_zip(slot, held[0], None)
            return
        elif not folders:
            log.warning("unpacking %s again: a stop interrupted it", held[0].name)
            slots.unzip(slot, None)
            return
        # else: the unpack completed; the folder is recorded below, then the zip goes
    for folder in folders:
        if f"{slot.name}/{folder.name}" not in known:
            log.warning("adopting %s: it was claimed, but not recorded", folder.name)
            slots.record(folder)
    remove_tree(hold)
    if (slot / FAILED_MARK).exists() and not folders and not recorded:
        (slot / FAILED_MARK).unlink()  # marked, but the entry never moved: still in the inbox
    slots.end_failed(slot)
    remove_empty(slot)


def _markers(inbox: Path) -> list[Path]:
    try:
        return [p for p in inbox.iterdir() if is_claim_marker(p.name)]
    except OSError:
        return []
