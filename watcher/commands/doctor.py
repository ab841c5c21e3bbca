"""CLI command: ``facedrop doctor``: one screen that says whether facedrop can run here.

Python, torch and its device, FFmpeg (PyAV's bundled libav and its encoders), every model file,
the default driving clip, the inbox/outbox/state folders (readable and writable; on macOS the
same probe tells a missing privacy grant from a missing folder). Every problem comes with its
fix; the exit status is 1 when anything needed is missing (no default clip is only a warning).
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.device import accelerator_fix
from pipeline.lipsync.registry import engine_entry
from pipeline.motion.kinds import VOICE_GROUP, MotionSource
from pipeline.prerequisites import JobNeeds, driving_gap
from pipeline.settings import PipelineSettings
from pipeline.weights.manifest import MANIFEST, OPTIONAL_GROUPS, WeightFile
from pipeline.weights.verify import FileStatus, State, verify
from watcher.console import make_console, print_json, print_table
from watcher.macos.privacy import Access, Probe, grant_binary, is_protected, probe_folder

OK, WARN, FAIL = "ok", "warn", "fail"
MARK = {OK: "[green]ok[/]", WARN: "[yellow]warn[/]", FAIL: "[bold red]FAIL[/]"}
REQUIRED_ENCODERS = ("libx264", "aac")


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's report."""

    section: str
    name: str
    status: str
    detail: str
    fix: str = ""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``doctor``."""
    parser = sub.add_parser("doctor", help="check Python, torch, FFmpeg, weights and folders")
    parser.add_argument("--no-hash", action="store_true",
                        help="check weight sizes only (skip the sha256 of ~1.3 GB)")
    parser.add_argument("--json", action="store_true",
                        help="print the checks as JSON (the exit status is the same)")
    parser.set_defaults(func=cmd_doctor)


def python_checks(system: str) -> list[Check]:
    """Python version (3.11+), and on macOS the binary that privacy grants must name."""
    ver = sys.version_info
    checks = [Check("Python", "version", OK if ver >= (3, 11) else FAIL,
                    f"{platform.python_version()} at {sys.executable}",
                    "" if ver >= (3, 11) else "install Python 3.11 or newer")]
    if system == "darwin":
        checks.append(Check("Python", "privacy identity", OK, f"grants belong to {grant_binary()}"))
    return checks


def torch_checks(system: str | None = None, machine: str | None = None) -> list[Check]:
    """torch's version and which device ``device: auto`` gets (MPS, then CUDA, then CPU)."""
    try:
        import torch
    except ImportError as err:
        return [Check("torch", "import", FAIL, str(err), "pip install -e . in the facedrop folder")]
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    cuda = torch.cuda.is_available()
    device = "mps" if mps else "cuda" if cuda else "cpu"
    detail = f"{torch.__version__}; auto device: {device}"
    if cuda:
        detail += f" ({torch.cuda.get_device_name(0)})"
    checks = [Check("torch", "version and device", OK, detail)]
    if device == "cpu":
        checks.append(Check("torch", "accelerator", WARN, "no MPS or CUDA: jobs run on the CPU "
                            "(slow)", accelerator_fix(system or sys.platform,
                                                      machine or platform.machine())))
    return checks


def ffmpeg_checks(system: str) -> list[Check]:
    """PyAV's bundled FFmpeg: library versions and the encoders facedrop writes with."""
    try:
        import av
        import av.codec
    except ImportError as err:
        return [Check("FFmpeg", "PyAV", FAIL, str(err), "pip install av")]
    libs = ", ".join(f"{k} {'.'.join(map(str, v))}" for k, v in sorted(av.library_versions.items())
                     if k in ("libavcodec", "libavformat", "libavutil"))
    checks = [Check("FFmpeg", "PyAV", OK, f"av {av.__version__}: {libs}")]
    wanted = REQUIRED_ENCODERS + (("h264_videotoolbox",) if system == "darwin" else ())
    for name in wanted:
        try:
            av.codec.Codec(name, "w")
            checks.append(Check("FFmpeg", f"encoder {name}", OK, "available"))
        except Exception:  # UnknownCodecError; its class moved between PyAV versions
            required = name in REQUIRED_ENCODERS
            checks.append(Check("FFmpeg", f"encoder {name}", FAIL if required else WARN,
                                "not in this PyAV build",
                                "reinstall PyAV from its wheel: pip install --force-reinstall av"
                                if required else "libx264 is used instead (slower)"))
    return checks


def weight_checks(weights_dir: Path, manifest: Sequence[WeightFile], hash_files: bool,
                  required: frozenset[str] = frozenset()) -> list[Check]:
    """Every model file: present and verified (or what is wrong and the command to fix it).

    A missing file of an optional group (one no job needs) is a warning, not a failure, unless
    the configuration needs that group (``required``: MuseTalk when it is the lip-sync engine).
    A file that is there but is not the pinned one (``weights import --trust``, a re-save) is a
    warning too: jobs load it, as ``run`` does.
    """
    def level(s: FileStatus) -> str:
        if s.ok:
            return OK
        optional = (s.entry.group in OPTIONAL_GROUPS and s.entry.group not in required
                    and s.state is State.MISSING)
        return WARN if optional or s.foreign else FAIL

    return [Check("Weights", s.entry.relpath, level(s), _detail(s), _fix(s))
            for s in verify(weights_dir, manifest, hash_files=hash_files)]


def _detail(s: FileStatus) -> str:
    if s.ok:
        return s.detail
    if s.foreign:
        return f"present, not the pinned file ({s.state.value}: {s.detail})"
    return f"{s.state.value}: {s.detail}"


def _fix(s: FileStatus) -> str:
    if s.foreign:
        return (f"none if you chose this file (weights import --trust); else delete it and run "
                f"'facedrop weights fetch {s.entry.name}'")
    return s.fix


def _creatable(path: Path, system: str) -> Probe:
    """Probe the nearest existing ancestor of a missing folder (the daemon creates the rest)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return probe_folder(parent, write=True, system=system)


def folder_checks(folders: dict[str, Path], system: str) -> list[Check]:
    """inbox/outbox/state: readable and writable; privacy and sync-folder pitfalls named."""
    checks = []
    for name, path in folders.items():
        probe = probe_folder(path, write=True, system=system)
        status = OK if probe.ok else FAIL
        fix = probe.fix
        if probe.access is Access.MISSING:
            ancestor = _creatable(path, system)
            if ancestor.ok:
                status, fix = WARN, "none needed: the daemon creates it when it starts"
            else:
                fix = f"{ancestor.path}: {ancestor.detail}. {ancestor.fix}"
        if probe.ok and system == "darwin" and is_protected(path):
            status, fix = WARN, ("this folder is privacy-protected: the LaunchAgent may need a "
                                 f"grant for {grant_binary()}; a folder outside Desktop, "
                                 "Documents and Downloads avoids it")
        checks.append(Check("Folders", name, status, f"{path}: {probe.detail}", fix))
    state = folders.get("state")
    if state is not None and any(p in str(state) for p in ("CloudStorage", "Dropbox", "iCloud",
                                                           "Mobile Documents")):
        checks.append(Check("Folders", "state location", FAIL, f"{state} is in a synced folder: "
                            "SQLite there gets locked or corrupted",
                            "set paths.state to a local folder (the default)"))
    return checks


def render(console: Console, checks: Sequence[Check]) -> int:
    """Draw the report and return the exit status (1 if any check failed)."""
    if console.is_terminal:
        _table(console, checks)
    else:  # piped: a line per check (its section on each), detail and fix below it
        print_table(console, "facedrop doctor", ("section", "check", "status", "detail", "fix"),
                    [(c.section, c.name, MARK[c.status], c.detail, c.fix) for c in checks],
                    prose=("detail", "fix"))
    failed = sum(c.status == FAIL for c in checks)
    if exit_status(checks):
        console.print(f"[bold red]{failed} problem(s)[/]: see the fix column.")
        return 1
    console.print("[green]Everything facedrop needs is in place.[/]")
    return 0


def _table(console: Console, checks: Sequence[Check]) -> None:
    table = Table(title="facedrop doctor", show_lines=False)
    for col in ("", "check", "status", "detail", "fix"):
        table.add_column(col, overflow="fold")
    section = ""
    for c in checks:
        if c.section != section and section:
            table.add_section()
        table.add_row(c.section if c.section != section else "", c.name, MARK[c.status],
                      c.detail, c.fix)
        section = c.section
    console.print(table, highlight=False)


def exit_status(checks: Sequence[Check]) -> int:
    """1 when any check failed, else 0."""
    return 1 if any(c.status == FAIL for c in checks) else 0


def as_json(checks: Sequence[Check]) -> dict[str, object]:
    """The report as one JSON document: overall verdict, then every check."""
    return {"ok": exit_status(checks) == 0,
            "problems": sum(c.status == FAIL for c in checks),
            "checks": [{"section": c.section, "name": c.name, "status": c.status,
                        "detail": c.detail, "fix": c.fix} for c in checks]}


def driver_checks(settings: PipelineSettings | None) -> list[Check]:
    """The default driving clip: a warning only, since a job may bring its own clip."""
    if settings is None:
        return []
    gap = driving_gap(settings, JobNeeds())
    if gap is None:
        return [Check("Driving", "default clip", OK,
                      f"{settings.default_driver} in {settings.drivers_dir}")]
    return [Check("Driving", "default clip", WARN,
                  gap.what.removeprefix("driving clip: ") + " (jobs must bring or name one)",
                  gap.fix)]


def motion_groups(settings: PipelineSettings) -> frozenset[str]:
    """The weight groups the configured motion source needs: ``voice`` only when the config
    says ``motion.source: voice`` (under ``auto`` a job without them falls back to a clip or
    to still motion). A manifest without the group simply has no files to check."""
    return frozenset({VOICE_GROUP}) if settings.motion_source == MotionSource.VOICE else frozenset()


def collect_checks(*, weights_dir: Path, folders: dict[str, Path],
                   manifest: Sequence[WeightFile] = MANIFEST, system: str | None = None,
                   hash_files: bool = True, settings: PipelineSettings | None = None
                   ) -> list[Check]:
    """Every check, in report order (the order a first install fixes them in)."""
    system = system or sys.platform
    required = (frozenset(engine_entry(settings.lipsync_model).weight_groups)
                | motion_groups(settings) if settings is not None else frozenset[str]())
    return (python_checks(system) + torch_checks(system) + ffmpeg_checks(system)
            + weight_checks(weights_dir, manifest, hash_files, required)
            + driver_checks(settings)
            + folder_checks(folders, system))


def run_doctor(console: Console, *, weights_dir: Path, folders: dict[str, Path],
               manifest: Sequence[WeightFile] = MANIFEST, system: str | None = None,
               hash_files: bool = True, settings: PipelineSettings | None = None) -> int:
    """All checks, drawn on ``console``; returns the exit status."""
    return render(console, collect_checks(weights_dir=weights_dir, folders=folders,
                                          manifest=manifest, system=system,
                                          hash_files=hash_files, settings=settings))


def cmd_doctor(args: argparse.Namespace) -> int:
    """``facedrop doctor [--json]``."""
    from watcher.config import load_config

    config = load_config(args.config)
    paths = config.paths
    folders = {"inbox": paths.inbox, "outbox": paths.outbox, "state": paths.state}
    if args.json:
        checks = collect_checks(weights_dir=paths.weights, folders=folders,
                                hash_files=not args.no_hash, settings=config.pipeline)
        print_json(as_json(checks))
        return exit_status(checks)
    return run_doctor(make_console(), weights_dir=paths.weights, folders=folders,
                      hash_files=not args.no_hash, settings=config.pipeline)
