"""Loading syncnet_v2.model: the official format loads strictly; bad files give clear errors."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.errors import ModelLoadError, WeightsError
from pipeline.models.syncnet import SyncNet, convert_syncnet_state_dict
from pipeline.quality.model import load_syncnet, syncnet_path
from pipeline.weights.manifest import select
from tests.helpers.deterministic_weights import fill_state_dict


def _official(drop_tracked: bool = True) -> OrderedDict[str, torch.Tensor]:
    sd = fill_state_dict(SyncNet().state_dict())
    return OrderedDict((k, v) for k, v in sd.items()
                       if not (drop_tracked and k.endswith("num_batches_tracked")))


def test_state_dict_layout_is_the_official_one() -> None:
    sd = SyncNet().state_dict()
    # 12 convs and 4 linears of the official S (weight+bias), 14 norms (5 entries each)
    assert len(sd) == 16 * 2 + 14 * 5
    assert tuple(sd["netcnnaud.18.weight"].shape) == (512, 256, 5, 4)
    assert tuple(sd["netcnnlip.0.weight"].shape) == (96, 3, 5, 7, 7)
    assert tuple(sd["netcnnlip.18.weight"].shape) == (512, 256, 1, 6, 6)
    assert tuple(sd["netfclip.3.weight"].shape) == (1024, 512)


def test_conversion_is_pure_and_idempotent() -> None:
    official = _official()
    once = convert_syncnet_state_dict(official)
    assert set(once) == set(SyncNet().state_dict())
    assert convert_syncnet_state_dict(once).keys() == once.keys()
    assert len(official) == len(_official())  # the input is not modified
    wrapped = {f"__S__.{k}": v for k, v in official.items()}
    assert convert_syncnet_state_dict(wrapped).keys() == once.keys()


def test_loads_official_legacy_file_strictly(tmp_path: Path) -> None:
    path = tmp_path / "syncnet_v2.model"
    official = _official()
    torch.save(official, path, _use_new_zipfile_serialization=False)
    net = load_syncnet(path)
    assert not net.training
    assert torch.equal(net.state_dict()["netfcaud.0.weight"], official["netfcaud.0.weight"])


def test_missing_file_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as err:
        load_syncnet(syncnet_path(tmp_path))
    assert "facedrop weights fetch syncnet" in err.value.fix
    assert "syncnet_v2.model" in str(err.value.file)


def test_missing_unexpected_and_colliding_keys_are_named(tmp_path: Path) -> None:
    sd = _official()
    del sd["netcnnlip.0.weight"]
    sd["netextra.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "a.model")
    with pytest.raises(ModelLoadError) as err:
        load_syncnet(tmp_path / "a.model")
    assert "netcnnlip.0.weight" in err.value.problem and "netextra.weight" in err.value.problem

    sd = _official()
    sd["module.netfcaud.0.bias"] = sd["netfcaud.0.bias"].clone()
    torch.save(sd, tmp_path / "b.model")
    with pytest.raises(WeightsError, match="colliding keys.*netfcaud.0.bias"):
        load_syncnet(tmp_path / "b.model")


def test_a_pickled_module_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "module.model"
    torch.save(nn.Linear(2, 2), path)  # a whole module needs free unpickling
    with pytest.raises(WeightsError, match="cannot be read"):
        load_syncnet(path)


def test_manifest_has_the_official_checkpoint() -> None:
    (entry,) = select(["syncnet"])
    assert entry.relpath == "syncnet/syncnet_v2.model"
    assert entry.url.endswith("/syncnet_v2.model") and entry.url.startswith("https://")
    assert entry.licence.name == "MIT"
