"""The ``storage`` config section: validated as a whole, credentials refused, opened by
``open_storage(config)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.errors import ConfigError
from watcher.config import Config, default_config_path, load_layers
from watcher.storage import StorageBackend, open_storage
from watcher.storage.folder import FolderStorage


def _load(tmp_path: Path, storage: dict[str, Any]) -> Config:
    user = tmp_path / "conf" / "config.yaml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(yaml.safe_dump({"storage": storage}))
    return load_layers([default_config_path(), user], home=tmp_path / "home")


def test_defaults_use_no_shared_storage(tmp_path: Path) -> None:
    config = load_layers([default_config_path()], home=tmp_path / "home")
    assert config.storage.backend is StorageBackend.FOLDER
    assert config.storage.path is None and config.storage.bucket == ""


def test_s3_settings_are_read(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        {"backend": "s3", "url": "http://nas.local:9000", "bucket": "studio.renders",
         "region": "eu-central-1"},
    )
    assert config.storage.backend is StorageBackend.S3
    assert (config.storage.url, config.storage.bucket, config.storage.region) == (
        "http://nas.local:9000", "studio.renders", "eu-central-1"
    )


def test_folder_path_is_relative_to_its_config_file(tmp_path: Path) -> None:
    config = _load(tmp_path, {"path": "../share"})
    assert config.storage.path == tmp_path / "share"
    (tmp_path / "share").mkdir()
    storage = open_storage(config)
    assert isinstance(storage, FolderStorage) and storage.root == tmp_path / "share"


@pytest.mark.parametrize(
    ("storage", "problem", "fix"),
    [
        ({"backend": "ftp"}, "'storage.backend' must be one of folder, s3", ""),
        ({"backend": "s3"}, "'storage.bucket' is empty", "set storage.bucket"),
        ({"backend": "s3", "bucket": "Studio_Renders"}, "not a valid bucket name", "3-63"),
        ({"url": "nas.local:9000", "bucket": "b-1"}, "must be an http:// or https://", "MinIO"),
        ({"path": 3}, "'storage.path' must be a string", ""),
        ({"aws_secret_access_key": "x"}, "never reads S3 credentials", "AWS_ACCESS_KEY_ID"),
        ({"access_key": "x"}, "never reads S3 credentials", "~/.aws/credentials"),
        ({"colour": "blue"}, "unknown key 'storage.colour'", "backend, path, url"),
    ],
)
def test_bad_storage_settings_are_clear_errors(
    tmp_path: Path, storage: dict[str, Any], problem: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, storage)
    message = caught.value.user_message()
    assert problem in message and fix in message
    assert str(tmp_path / "conf" / "config.yaml") in message  # names the file that set it
