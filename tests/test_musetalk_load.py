"""Loading MuseTalk from official-format files: the bundle's contract, and errors that name the
file and the fix for missing, foreign, mis-keyed and mismatched files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import InputError, ModelLoadError, WeightsError
from pipeline.models.bisenet import BiSeNet
from pipeline.musetalk.bundle import MuseTalk
from pipeline.musetalk.configs import MuseTalkConfigs
from pipeline.musetalk.files import MuseTalkFiles
from pipeline.musetalk.load import load_bisenet
from pipeline.prerequisites import JobNeeds, needed_weights
from pipeline.weights.manifest import MANIFEST, select
from tests.helpers.musetalk_checkpoints import write_weights_dir
from tests.helpers.settings import pipeline_settings


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MuseTalkConfigs]:
    root = tmp_path_factory.mktemp("musetalk_weights")
    return root, write_weights_dir(root)


@pytest.fixture(scope="module")
def mt(weights: tuple[Path, MuseTalkConfigs]) -> MuseTalk:
    root, configs = weights
    return MuseTalk.load(root, torch.device("cpu"), torch.float32, configs=configs)


def copy_of(weights: tuple[Path, MuseTalkConfigs], tmp_path: Path) -> Path:
    shutil.copytree(weights[0], tmp_path / "w")
    return tmp_path / "w"


def test_the_manifest_paths_are_the_loader_paths() -> None:
    group = {e.relpath for e in select(["musetalk"])}
    files = vars(MuseTalkFiles.under(Path("/w"))).values()
    assert group == {str(p.relative_to("/w")) for p in files}
    assert all(e.group == "musetalk" for e in MANIFEST if e.relpath.startswith("musetalk/"))
    assert not any(e.group == "musetalk" for e in select([]))  # a plain fetch leaves it out
    voice = {e.relpath for e in select(["voice"])}  # the other group fetched only when named
    assert voice and not voice & group
    assert len(select([])) == len(MANIFEST) - len(group) - len(voice)


def test_musetalk_files_are_needed_only_when_it_is_the_engine(tmp_path: Path) -> None:
    musetalk = pipeline_settings(tmp_path, lipsync_model="musetalk")
    wav2lip = pipeline_settings(tmp_path)
    assert {e.group for e in needed_weights(musetalk, JobNeeds())} >= {"musetalk"}
    assert "musetalk" not in {e.group for e in needed_weights(wav2lip, JobNeeds())}
    assert "musetalk" not in {e.group for e in needed_weights(musetalk, JobNeeds(lipsync=False))}


def test_load_builds_eval_networks_offline(mt: MuseTalk) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert mt.scaling_factor == pytest.approx(0.18215)
    for net in (mt.unet_net, mt.vae, mt.whisper, mt.parser):
        assert not net.training
        assert all(not p.requires_grad and p.device.type == "cpu" for p in net.parameters())
    assert next(mt.parser.parameters()).dtype == torch.float32


def test_the_engine_contract_shapes_and_types(mt: MuseTalk) -> None:
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    latents = mt.reference_latents(face)
    assert latents.shape == (1, 8, 32, 32) and latents.dtype == torch.float32
    windows = torch.randn(1, 50, 384, generator=torch.Generator().manual_seed(0))
    out = mt.infer(latents, windows)
    assert out.shape == (1, 256, 256, 3) and out.dtype == np.uint8
    pred = mt.unet(latents, windows)
    assert (pred - mt.unet(latents, windows + 1)).abs().max() > 0  # the audio reaches the face
    with pytest.raises(ValueError, match="audio windows"):
        mt.unet(latents, torch.zeros(2, 50, 384))
    with pytest.raises(ValueError, match="uint8 RGB faces"):
        mt.reference_latents(face[:, :128])
    with pytest.raises(InputError, match="empty"):
        mt.audio_features(np.zeros(0, dtype=np.float32), 25, 3)


def test_parse_gives_a_mask_of_the_region_size(mt: MuseTalk) -> None:
    region = np.random.default_rng(1).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    mask = mt.parse(region)
    assert mask.shape == (120, 100) and mask.dtype == np.uint8


def test_missing_unet_names_the_file_and_the_fetch(weights: tuple[Path, MuseTalkConfigs],
                                                   tmp_path: Path) -> None:
    root = copy_of(weights, tmp_path)
    (root / "musetalk/musetalkV15/unet.pth").unlink()
    with pytest.raises(WeightsError) as err:
        MuseTalk.load(root, torch.device("cpu"), torch.float32, configs=weights[1])
    assert "unet.pth" in str(err.value.file)
    assert "facedrop weights fetch musetalk" in err.value.fix


def test_a_web_page_saved_as_the_vae_is_named(weights: tuple[Path, MuseTalkConfigs],
                                              tmp_path: Path) -> None:
    root = copy_of(weights, tmp_path)
    (root / "musetalk/sd-vae/diffusion_pytorch_model.bin").write_text("<!DOCTYPE html><html>")
    with pytest.raises(WeightsError, match="web page"):
        MuseTalk.load(root, torch.device("cpu"), torch.float32, configs=weights[1])


def test_a_different_model_config_is_refused_by_field(weights: tuple[Path, MuseTalkConfigs],
                                                      tmp_path: Path) -> None:
    root = copy_of(weights, tmp_path)
    path = root / "musetalk/musetalkV15/musetalk.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "cross_attention_dim": 768}))
    with pytest.raises(ModelLoadError) as err:
        MuseTalk.load(root, torch.device("cpu"), torch.float32, configs=weights[1])
    assert "cross_attention_dim is 768" in err.value.problem and err.value.file == str(path)
    path.write_text("{not json")
    with pytest.raises(WeightsError, match="not readable JSON"):
        MuseTalk.load(root, torch.device("cpu"), torch.float32, configs=weights[1])


def test_the_shipped_unet_does_not_load_reduced_weights(
        weights: tuple[Path, MuseTalkConfigs], tmp_path: Path) -> None:
    root = copy_of(weights, tmp_path)
    for name in ("musetalk/musetalkV15/musetalk.json", "musetalk/sd-vae/config.json"):
        (root / name).unlink()  # no cross-check: the strict load itself must object
    with pytest.raises(ModelLoadError) as err:
        MuseTalk.load(root, torch.device("cpu"), torch.float32)  # shipped full-size configs
    assert "wrong shape" in err.value.problem and err.value.file is not None


def test_bisenet_keys_are_checked_strictly(tmp_path: Path) -> None:
    sd = BiSeNet().state_dict()
    del sd["ffm.conv2.weight"]
    sd["sp.conv1.conv.weight"] = torch.zeros(64, 3, 7, 7)
    torch.save(sd, tmp_path / "79999_iter.pth")
    with pytest.raises(ModelLoadError) as err:
        load_bisenet(tmp_path / "79999_iter.pth", torch.device("cpu"), torch.float32)
    assert "ffm.conv2.weight" in err.value.problem and "sp.conv1.conv.weight" in err.value.problem
    assert err.value.file == str(tmp_path / "79999_iter.pth")
