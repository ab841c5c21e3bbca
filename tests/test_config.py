"""Config loading: layering, validation errors naming key and file, per-user defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.settings import LoopMode
from watcher.config import default_config_path, load_config, user_config_path, write_user_config


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "FACEDROP_CONFIG",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
    ):
        monkeypatch.delenv(var, raising=False)


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_match_default_yaml(tmp_path):
    config = load_config(home=tmp_path, platform="linux")
    raw = yaml.safe_load(default_config_path().read_text())
    assert config.daemon.settle_checks == raw["daemon"]["settle_checks"]
    assert config.pipeline.max_size == raw["pipeline"]["max_size"]
    assert config.pipeline.loop_mode is LoopMode(raw["pipeline"]["loop_mode"])
    assert config.job_defaults.fps == raw["job_defaults"]["fps"]
    assert config.limits.max_image_pixels == raw["limits"]["max_image_pixels"]
    assert config.source_files == (default_config_path(),)
    assert config.pipeline.weights_dir == config.paths.weights


def test_macos_defaults_avoid_privacy_protected_folders(tmp_path):
    config = load_config(home=tmp_path, platform="darwin")
    support = tmp_path / "Library" / "Application Support" / "facedrop"
    assert config.paths.inbox == support / "inbox"
    assert config.paths.state == support / "state"
    assert config.paths.logs == tmp_path / "Library" / "Logs" / "facedrop"
    for path in vars_of(config.paths):
        assert not {"Desktop", "Documents", "Downloads"} & set(path.parts)


def vars_of(paths) -> list[Path]:
    return [getattr(paths, f) for f in paths.__dataclass_fields__]


def test_linux_defaults_follow_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    config = load_config(home=tmp_path, platform="linux")
    assert config.paths.inbox == tmp_path / ".local" / "share" / "facedrop" / "inbox"
    assert config.paths.state == tmp_path / "st" / "facedrop"
    assert config.paths.cache == tmp_path / ".cache" / "facedrop"


def test_layers_user_then_env_then_explicit(tmp_path, monkeypatch):
    user = _write(
        user_config_path(home=tmp_path, platform="darwin"),
        {"daemon": {"max_attempts": 5, "settle_checks": 4}, "paths": {"inbox": "~/In"}},
    )
    env = _write(tmp_path / "env.yaml", {"daemon": {"max_attempts": 6}})
    explicit = _write(tmp_path / "cfg" / "x.yaml", {"paths": {"outbox": "out"}})
    monkeypatch.setenv("FACEDROP_CONFIG", str(env))
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(explicit, home=tmp_path, platform="darwin")
    assert config.source_files == (default_config_path(), user, env, explicit)
    assert config.daemon.max_attempts == 6  # env beats user
    assert config.daemon.settle_checks == 4  # user beats default
    assert config.paths.inbox == tmp_path / "In"  # ~ expanded
    assert config.paths.outbox == tmp_path / "cfg" / "out"  # relative to the file that set it


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"daemon": {"max_atempts": 3}}, "unknown key 'daemon.max_atempts'"),
        ({"deamon": {}}, "unknown section 'deamon'"),
        ({"daemon": {"max_attempts": "3"}}, "'daemon.max_attempts' must be an integer"),
        ({"daemon": {"max_attempts": True}}, "'daemon.max_attempts' must be an integer"),
        ({"daemon": {"notify": "yes"}}, "'daemon.notify' must be true or false"),
        ({"daemon": {"settle_seconds": -1}}, "out of range"),
        ({"pipeline": {"device": "tpu"}}, "'pipeline.device' must be one of"),
        ({"pipeline": {"enhance_strength": 1.5}}, "out of range"),
        ({"paths": {"inbox": 3}}, "'paths.inbox' must be a string"),
        ({"limits": ["x"]}, "'limits' must be a mapping"),
        ({"pipeline": {"batch_size": 0}}, "'pipeline.batch_size' must be auto or a positive"),
        ({"pipeline": {"batch_size": -2}}, "'pipeline.batch_size' must be auto or a positive"),
        ({"pipeline": {"batch_size": "big"}}, "'pipeline.batch_size' must be auto or a positive"),
        ({"pipeline": {"batch_size": "Auto"}}, "'pipeline.batch_size' must be auto or a positive"),
        ({"pipeline": {"batch_size": 2.5}}, "'pipeline.batch_size' must be auto or a positive"),
        ({"pipeline": {"batch_size": True}}, "'pipeline.batch_size' must be auto or a positive"),
        ({"pipeline": {"batch_size": None}}, "'pipeline.batch_size' must be auto or a positive"),
    ],
)
def test_invalid_config_names_key_and_file(tmp_path, data, message):
    path = _write(tmp_path / "bad.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_config(path, home=tmp_path)
    assert message in info.value.problem
    assert info.value.file == str(path)


@pytest.mark.parametrize("device", ["cuda:0", "cuda:3", "cuda", "cpu", "mps", "auto"])
def test_every_device_pick_device_takes_is_accepted(tmp_path, device):
    path = _write(tmp_path / "dev.yaml", {"pipeline": {"device": device}})
    assert load_config(path, home=tmp_path).pipeline.device == device


@pytest.mark.parametrize("device", ["cuda:", "cuda:x", "gpu", "cuda0"])
def test_malformed_device_names_are_refused(tmp_path, device):
    path = _write(tmp_path / "dev.yaml", {"pipeline": {"device": device}})
    with pytest.raises(ConfigError, match="auto, mps, cuda, cuda:N, cpu"):
        load_config(path, home=tmp_path)


def test_batch_size_is_auto_by_default_or_a_positive_integer(tmp_path):
    assert load_config(home=tmp_path, platform="linux").pipeline.batch_size == "auto"
    for value in ("auto", 1, 12):
        path = _write(tmp_path / f"batch-{value}.yaml", {"pipeline": {"batch_size": value}})
        settings = load_config(path, home=tmp_path).pipeline
        assert settings.batch_size == value
        assert settings.chunk_size == (8 if value == "auto" else value)  # the light stages'


def test_yaml_syntax_error_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("daemon: [\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path, home=tmp_path)
    assert info.value.file == str(path)


def test_config_is_frozen(tmp_path):
    config = load_config(home=tmp_path)
    with pytest.raises(AttributeError):
        config.daemon.max_attempts = 9  # type: ignore[misc]


def test_write_user_config_merges_and_validates(tmp_path):
    path = _write(tmp_path / "u" / "config.yaml", {"daemon": {"max_attempts": 4}})
    write_user_config({"paths": {"inbox": str(tmp_path / "Dropbox" / "in")}}, path)
    data = yaml.safe_load(path.read_text())
    assert data == {"daemon": {"max_attempts": 4}, "paths": {"inbox": str(tmp_path / "Dropbox/in")}}
    with pytest.raises(ConfigError, match="unknown key"):
        write_user_config({"paths": {"inboxx": "x"}}, path)
    assert yaml.safe_load(path.read_text()) == data  # a rejected update leaves the file alone
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp files left
    config = load_config(path, home=tmp_path)
    assert config.paths.inbox == tmp_path / "Dropbox" / "in"
