"""The daemon's configuration: YAML layers merged, every key validated, one frozen value out.

Layers, later wins: ``watcher/data/default.yaml`` (the single source of defaults, shipped as
package data), the per-user config file, the file named by the
``FACEDROP_CONFIG`` environment variable, then ``--config``. An unknown key or a value of the
wrong type is a ``ConfigError`` that names the key and the file that set it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

import yaml

from pipeline.atomic import write_text_atomic
from pipeline.device import is_device_name
from pipeline.errors import ConfigError
from pipeline.motion.kinds import AMOUNT_KEYS, AMOUNT_RANGE, AUTO, OFFICIAL_STEPS, MotionSource
from pipeline.settings import (
    AUTO_BATCH,
    LIPSYNC_MODELS,
    QUALITY_LIMITS,
    LoopMode,
    PipelineSettings,
    ProcessKind,
)
from watcher.storage.settings import StorageBackend, StorageSettings

ENV_CONFIG = "FACEDROP_CONFIG"
PATH_KEYS = ("inbox", "outbox", "state", "cache", "weights", "drivers", "logs")

# section -> key -> accepted python types (bool is never accepted for int/float).
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "paths": {k: (str,) for k in PATH_KEYS},
    "daemon": {
        "settle_seconds": (int, float),
        "settle_checks": (int,),
        "incomplete_grace_seconds": (int, float),
        "rescan_seconds": (int, float),
        "max_attempts": (int,),
        "retry_backoff_seconds": (int, float),
        "shutdown_timeout": (int, float),
        "notify": (bool,),
    },
    "pipeline": {
        "device": (str,),
        "dtype": (str,),
        "compile": (str, bool),  # YAML reads a bare on/off as true/false: _on_off
        "max_size": (int,),
        "batch_size": (int, str),  # a positive integer or "auto": _validate_batch_size
        "loop_mode": (str,),
        "default_driver": (str,),
        "lipsync_model": (str,),
        "enhance_strength": (int, float),
        "render_cache_mb": (int,),
    },
    "job_defaults": {"fps": (int, float), "lipsync": (bool,), "enhance": (bool,)},
    # where a job's motion comes from, and how generated motion is made (job.yaml overrides)
    "motion": {
        "source": (str,),
        "seed": (int,),
        "steps": (int, str),  # "official" or a positive integer: _validate_steps
        "head_motion": (int, float),
        "face_motion": (int, float),
    },
    "limits": {"max_image_pixels": (int,), "max_audio_seconds": (int, float)},
    # the quality report: on/off (job.yaml quality: overrides it), one threshold per measure
    "quality": {"enabled": (bool,), **{k: (int, float) for k in QUALITY_LIMITS}},

    "queue": {
        "backend": (str,),
        "url": (str,),
        "namespace": (str,),
        "heartbeat_timeout_seconds": (int, float),
        "maintenance_chance": (int,),
        "job_time_limit_seconds": (int, float),
    },
    "storage": {k: (str,) for k in ("backend", "path", "url", "bucket", "region")},
    "studio": {"host": (str,), "port": (int,)},  # facedrop serve: where the page listens
}


class QueueBackend(StrEnum):
    """Where jobs run: chosen once, by the daemon's wiring (``Daemon._executor``)."""

    LOCAL = "local"  # in this process, queued in the embedded SQLite queue
    REDIS = "redis"  # on a fleet of ``facedrop worker``s, through Redis (watcher.fleet)


CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("pipeline", "device"): ("auto", "mps", "cuda", "cuda:N", "cpu"),  # for the message
    ("pipeline", "dtype"): ("auto", "fp32", "fp16"),
    ("pipeline", "compile"): ("auto", "on", "off"),
    ("pipeline", "loop_mode"): tuple(m.value for m in LoopMode),
    ("pipeline", "lipsync_model"): LIPSYNC_MODELS,
    ("motion", "source"): (AUTO, *(m.value for m in MotionSource)),
    ("queue", "backend"): tuple(b.value for b in QueueBackend),
    ("storage", "backend"): tuple(b.value for b in StorageBackend),
}
# what each choice means, where the bare list would leave a newcomer guessing
CHOICE_FIXES: dict[tuple[str, str], str] = {
    ("queue", "backend"): "local runs jobs on this machine; redis hands them to a fleet of "
    "'facedrop worker' machines (README: Several machines)",
}


@dataclass(frozen=True, slots=True)
class Paths:
    """Where the daemon keeps things; every path is absolute."""

    inbox: Path
    outbox: Path
    state: Path
    cache: Path
    weights: Path
    drivers: Path
    logs: Path


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """Timing and retry behaviour of the watch loop."""

    settle_seconds: float
    settle_checks: int
    incomplete_grace_seconds: float  # how long an unfinished job may stall before it fails
    rescan_seconds: float
    max_attempts: int
    retry_backoff_seconds: float
    shutdown_timeout: float
    notify: bool


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """Values a job gets when its ``job.yaml`` does not set them."""

    fps: float
    lipsync: bool
    enhance: bool
    quality: bool = True  # quality.enabled


@dataclass(frozen=True, slots=True)
class Limits:
    """Input size limits checked before a job runs."""

    max_image_pixels: int
    max_audio_seconds: float


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Where jobs run (``QueueBackend``) and, for a fleet, how Redis is reached."""

    backend: QueueBackend = QueueBackend.LOCAL
    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "facedrop"  # prefix of every Redis key, so fleets can share one server
    heartbeat_timeout_seconds: float = 30.0  # a silent worker's job is redelivered after this
    maintenance_chance: int = 100_000  # per million broker commands: look for dead workers
    job_time_limit_seconds: float = 6 * 3600.0  # a job running longer than this is stopped


@dataclass(frozen=True, slots=True)
class StudioSettings:
    """``facedrop serve``: loopback by default; any other address is LAN mode (token needed)."""

    host: str = "127.0.0.1"
    port: int = 8765


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    paths: Paths
    daemon: DaemonSettings
    pipeline: PipelineSettings
    job_defaults: JobDefaults
    limits: Limits
    source_files: tuple[Path, ...]
    storage: StorageSettings
    queue: QueueSettings = QueueSettings()
    studio: StudioSettings = StudioSettings()


def user_config_path(*, home: Path | None = None, platform: str | None = None) -> Path:
    """The per-user config file for this OS (it may not exist)."""
    home = home or Path.home()
    if (platform or sys.platform) == "darwin":
        return home / "Library" / "Application Support" / "facedrop" / "config.yaml"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else home / ".config"
    return base / "facedrop" / "config.yaml"


def default_paths(*, home: Path | None = None, platform: str | None = None) -> dict[str, Path]:
    """Per-user default folders: never Desktop, Documents or Downloads (macOS privacy prompts)."""
    home = home or Path.home()
    if (platform or sys.platform) == "darwin":
        base = home / "Library" / "Application Support" / "facedrop"
        paths = {k: base / k for k in PATH_KEYS}
        paths["logs"] = home / "Library" / "Logs" / "facedrop"
        return paths

    def xdg(var: str, fallback: str) -> Path:
        value = os.environ.get(var)
        return (Path(value) if value else home / fallback) / "facedrop"

    data, state = xdg("XDG_DATA_HOME", ".local/share"), xdg("XDG_STATE_HOME", ".local/state")
    return {
        "inbox": data / "inbox",
        "outbox": data / "outbox",
        "state": state,
        "cache": xdg("XDG_CACHE_HOME", ".cache"),
        "weights": data / "weights",
        "drivers": data / "drivers",
        "logs": state / "logs",
    }


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            f"cannot read the config file ({err.strerror})", fix="check the path", file=path
        ) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"the config file is not valid YAML: {err}", file=path) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the config file must be a mapping of sections", file=path)
    return data


def _type_name(types: tuple[type, ...]) -> str:
    if float in types:
        return "a number"
    return {int: "an integer", bool: "true or false", str: "a string"}[types[0]]


def validate_layer(data: Mapping[str, Any], path: Path) -> None:
    """Raise ``ConfigError`` for unknown sections or keys, wrong types and bad choices."""
    for section, values in data.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"unknown section '{section}'", fix=f"use one of {', '.join(SCHEMA)}", file=path
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"'{section}' must be a mapping of keys", file=path)
        for key, value in values.items():
            _validate_key(section, key, value, path)


def _on_off(value: Any) -> Any:
    """``pipeline.compile`` as a word: YAML 1.1 turns a bare ``on``/``off`` into true/false
    (anything else is returned as it is, for the validation to name)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def _validate_key(section: str, key: str, value: Any, path: Path) -> None:
    schema = SCHEMA[section]
    name = f"{section}.{key}"
    if section == "storage" and key not in schema:
        _refuse_storage_key(name, path)
    if key not in schema:
        raise ConfigError(
            f"unknown key '{name}'", fix=f"keys in '{section}': {', '.join(schema)}", file=path
        )
    if (section, key) == ("pipeline", "batch_size"):
        _validate_batch_size(name, value, path)
        return
    if (section, key) == ("motion", "steps"):
        _validate_steps(name, value, path)
        return
    types = schema[key]
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise ConfigError(
            f"'{name}' must be {_type_name(types)}, not {type(value).__name__} ({value!r})",
            file=path,
        )
    if (section, key) == ("pipeline", "compile"):
        value = _on_off(value)
    choices = CHOICES.get((section, key))
    # cuda:N takes any index: pipeline.device owns the device names
    if (section, key) == ("pipeline", "device"):
        known = isinstance(value, str) and is_device_name(value)
    else:
        known = choices is None or value in choices
    if choices and not known:
        raise ConfigError(f"'{name}' must be one of {', '.join(choices)}, not {value!r}",
                          fix=CHOICE_FIXES.get((section, key), ""), file=path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        low = 0 if key in ("enhance_strength", "settle_seconds", "retry_backoff_seconds",
                           "seed", *AMOUNT_KEYS, *QUALITY_LIMITS) else 1e-9
        if value < low or (key == "enhance_strength" and value > 1):
            raise ConfigError(f"'{name}' is out of range ({value!r})", file=path)
        if key in AMOUNT_KEYS and value > AMOUNT_RANGE[1]:
            raise ConfigError(
                f"'{name}' is out of range ({value!r})",
                fix=f"use {AMOUNT_RANGE[0]:g} (no motion) to {AMOUNT_RANGE[1]:g}; 1 is the "
                "motion as generated", file=path)


def _validate_steps(name: str, value: Any, path: Path) -> None:
    """``official`` (JoyVASA's 500-step DDPM) or a positive number of sampler steps."""
    if value == OFFICIAL_STEPS or (isinstance(value, int) and not isinstance(value, bool)
                                   and value >= 1):
        return
    raise ConfigError(
        f"'{name}' must be {OFFICIAL_STEPS} or a positive integer, not {value!r}",
        fix=f"set {name} to {OFFICIAL_STEPS} (the 500-step sampler) or fewer steps, e.g. 50",
        file=path,
    )


def _validate_batch_size(name: str, value: Any, path: Path) -> None:
    """``auto`` (chosen from free memory when a render starts) or a positive integer."""
    if value == AUTO_BATCH or (isinstance(value, int) and not isinstance(value, bool)
                               and value >= 1):
        return
    raise ConfigError(
        f"'{name}' must be {AUTO_BATCH} or a positive integer, not {value!r}",
        fix=f"set {name} to {AUTO_BATCH} (picked from the free memory) or a number such as 2",
        file=path,
    )


def _merge(layers: list[tuple[Path, dict[str, Any]]]) -> dict[str, dict[str, tuple[Any, Path]]]:
    """section -> key -> (value, file that set it)."""
    merged: dict[str, dict[str, tuple[Any, Path]]] = {s: {} for s in SCHEMA}
    for path, data in layers:
        for section, values in data.items():
            for key, value in (values or {}).items():
                merged[section][key] = (value, path)
    return merged


def _resolve_path(value: str, source: Path, default: Path) -> Path:
    if not value:
        return default
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = source.parent / path  # relative to the config file that set it
    return Path(os.path.abspath(path))


def default_config_path() -> Path:
    """``default.yaml`` inside the installed package (wheels install unpacked, so a real path)."""
    return Path(str(package_files("watcher") / "data" / "default.yaml"))


def load_config(
    explicit: Path | None = None, *, home: Path | None = None, platform: str | None = None
) -> Config:
    """Load and validate the configuration (defaults, user file, ``$FACEDROP_CONFIG``, explicit)."""
    files = [default_config_path()]
    user = user_config_path(home=home, platform=platform)
    if user.is_file():
        files.append(user)
    env = os.environ.get(ENV_CONFIG)
    if env:
        files.append(Path(env).expanduser())
    if explicit is not None:
        files.append(Path(explicit).expanduser())
    return load_layers(files, home=home, platform=platform)


def as_worker(config: Config) -> Config:
    """``config`` for a process that loads the networks once and runs many jobs (the daemon,
    ``facedrop worker``): there ``pipeline.compile: auto`` compiles (``pipeline.compiled``)."""
    return replace(config, pipeline=replace(config.pipeline, process=ProcessKind.WORKER))


def load_layers(
    files: Sequence[Path], *, home: Path | None = None, platform: str | None = None
) -> Config:
    """Merge and validate exactly these files, in order; the first is the packaged defaults."""
    if not files[0].is_file():
        raise ConfigError(
            "the default configuration is missing from the installation",
            fix="reinstall facedrop (pip install --force-reinstall facedrop)",
            file=files[0],
        )
    layers = []
    for path in files:
        data = _read_yaml(path)
        validate_layer(data, path)
        layers.append((path, data))
    return _build(_merge(layers), tuple(files), home=home, platform=platform)


def _build(
    merged: dict[str, dict[str, tuple[Any, Path]]],
    files: tuple[Path, ...],
    *,
    home: Path | None,
    platform: str | None,
) -> Config:
    for section, keys in SCHEMA.items():
        for key in keys:
            if key not in merged[section]:
                raise ConfigError(f"'{section}.{key}' has no value", file=files[0])
    value = {s: {k: v for k, (v, _) in kv.items()} for s, kv in merged.items()}
    defaults = default_paths(home=home, platform=platform)
    paths = Paths(
        **{
            k: _resolve_path(v, merged["paths"][k][1], defaults[k])
            for k, v in value["paths"].items()
        }
    )
    d, p, j, lim = value["daemon"], value["pipeline"], value["job_defaults"], value["limits"]
    q, m = value["quality"], value["motion"]
    pipeline = PipelineSettings(
        weights_dir=paths.weights,
        cache_dir=paths.cache,
        drivers_dir=paths.drivers,
        default_driver=p["default_driver"],
        device=p["device"],
        dtype=p["dtype"],
        compile=_on_off(p["compile"]),
        process=ProcessKind.ONE_JOB,
        max_size=p["max_size"],
        batch_size=p["batch_size"],
        loop_mode=LoopMode(p["loop_mode"]),
        lipsync_model=p["lipsync_model"],
        enhance_strength=float(p["enhance_strength"]),
        render_cache_mb=p["render_cache_mb"],
        max_image_pixels=lim["max_image_pixels"],
        max_audio_seconds=float(lim["max_audio_seconds"]),
        quality_limits=tuple((k, float(q[k])) for k in QUALITY_LIMITS),
        motion_source=m["source"],
        motion_seed=m["seed"],
        motion_steps=None if m["steps"] == OFFICIAL_STEPS else m["steps"],
        head_motion=float(m["head_motion"]),
        face_motion=float(m["face_motion"]),
    )
    return Config(
        paths=paths,
        daemon=DaemonSettings(
            settle_seconds=float(d["settle_seconds"]),
            settle_checks=d["settle_checks"],
            incomplete_grace_seconds=float(d["incomplete_grace_seconds"]),
            rescan_seconds=float(d["rescan_seconds"]),
            max_attempts=d["max_attempts"],
            retry_backoff_seconds=float(d["retry_backoff_seconds"]),
            shutdown_timeout=float(d["shutdown_timeout"]),
            notify=d["notify"],
        ),
        pipeline=pipeline,
        job_defaults=JobDefaults(fps=float(j["fps"]), lipsync=j["lipsync"], enhance=j["enhance"],
                                 quality=q["enabled"]),
        limits=Limits(lim["max_image_pixels"], float(lim["max_audio_seconds"])),
        source_files=files,
        queue=_queue_settings(value["queue"]),
        studio=StudioSettings(host=value["studio"]["host"], port=value["studio"]["port"]),
        storage=_storage_settings(merged["storage"]),
    )


def _queue_settings(q: dict[str, Any]) -> QueueSettings:
    return QueueSettings(
        backend=QueueBackend(q["backend"]), url=q["url"], namespace=q["namespace"],
        heartbeat_timeout_seconds=float(q["heartbeat_timeout_seconds"]),
        maintenance_chance=min(1_000_000, q["maintenance_chance"]),
        job_time_limit_seconds=float(q["job_time_limit_seconds"]),
    )


# --- storage: shared payloads and results for several machines ----------------------------
CREDENTIAL_WORDS = ("key", "secret", "token", "password", "credential", "profile")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _refuse_storage_key(name: str, path: Path) -> None:
    """An unknown storage key that looks like a credential gets the reason, not just 'unknown'."""
    if any(word in name.lower() for word in CREDENTIAL_WORDS):
        raise ConfigError(
            f"'{name}': facedrop never reads S3 credentials from its configuration",
            fix="remove it; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in "
            "the environment, or put them in ~/.aws/credentials (aws configure)",
            file=path,
        )


def _storage_settings(merged: dict[str, tuple[Any, Path]]) -> StorageSettings:
    """The ``storage`` section, checked as a whole (a bucket for s3, a URL that is one)."""
    value = {k: v for k, (v, _) in merged.items()}
    backend = StorageBackend(value["backend"])
    url, bucket, region = value["url"].strip(), value["bucket"].strip(), value["region"].strip()
    if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise ConfigError(
            f"'storage.url' must be an http:// or https:// endpoint URL, not {url!r}",
            fix="for example http://nas.local:9000 (MinIO); leave it empty for AWS S3",
            file=merged["url"][1],
        )
    if bucket and not BUCKET_NAME.fullmatch(bucket):
        raise ConfigError(
            f"'storage.bucket' {bucket!r} is not a valid bucket name",
            fix="3-63 lowercase letters, digits, '.' and '-', starting and ending with a "
            "letter or digit",
            file=merged["bucket"][1],
        )
    if backend is StorageBackend.S3 and not bucket:
        raise ConfigError(
            "'storage.backend' is s3 but 'storage.bucket' is empty",
            fix="set storage.bucket to an existing bucket (and storage.url for a store that "
            "is not AWS)",
            file=merged["backend"][1],
        )
    path = _resolve_path(value["path"], merged["path"][1], Path()) if value["path"] else None
    return StorageSettings(backend=backend, path=path, url=url, bucket=bucket, region=region)


def write_user_config(updates: Mapping[str, Mapping[str, Any]], path: Path | None = None) -> Path:
    """Merge ``{section: {key: value}}`` into a user config file, validated, written atomically.

    ``path`` defaults to this OS's per-user config file. Keys already in the file and not in
    ``updates`` are kept. Returns the path written.
    """
    path = path or user_config_path()
    current = _read_yaml(path) if path.is_file() else {}
    validate_layer(current, path)
    validate_layer(updates, path)
    for section, values in updates.items():
        current[section] = {**(current.get(section) or {}), **values}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(current, sort_keys=False))
    return path
