"""Loading official-format Wav2Lip files, and the messages for the files users end up with."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from pipeline.errors import ConfigError, ModelLoadError, WeightsError
from pipeline.lipsync.wav2lip.load import load_wav2lip, wav2lip_path
from pipeline.models.wav2lip import Wav2Lip
from tests.helpers.w2l_checkpoints import random_wav2lip_state_dict, write_wav2lip_checkpoint

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wav2lip_checkpoint(tmp_path_factory.mktemp("w") / "wav2lip_gan.pth", gan=True,
                                    seed=3)


@pytest.mark.parametrize("module_prefix", [False, True])
def test_official_layout_loads_strictly(
    tmp_path: Path, official_file: Path, module_prefix: bool
) -> None:
    path = official_file
    if module_prefix:  # as a DataParallel-wrapped training run would have saved it
        path = write_wav2lip_checkpoint(tmp_path / "wav2lip_gan.pth", gan=True,
                                        module_prefix=True, seed=3)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"state_dict", "optimizer", "global_step", "global_epoch"}
    assert next(iter(raw["state_dict"])).startswith("module.") == module_prefix
    net = load_wav2lip(path, CPU, torch.float32)
    expected = random_wav2lip_state_dict(3 + 1000)  # gan files draw from seed + 1000
    for key, value in net.state_dict().items():
        assert torch.equal(value, expected[key]), key
    with torch.no_grad():
        out = net(torch.randn(1, 1, 80, 16), torch.rand(1, 6, 96, 96))
    assert out.shape == (1, 3, 96, 96) and float(out.std()) > 0.01


def test_torchscript_file_says_what_to_use_instead(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    with warnings.catch_warnings():  # torch 2.x marks TorchScript creation deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.trace(torch.nn.Conv2d(6, 3, 1), torch.zeros(1, 6, 4, 4))
        torch.jit.save(scripted, str(path))
    with pytest.raises(WeightsError) as err:
        load_wav2lip(path, CPU, torch.float32)
    msg = err.value.user_message()
    assert "TorchScript" in msg
    assert "wav2lip.pth / wav2lip_gan.pth" in msg and "Hugging Face" in msg
    assert "facedrop weights fetch" in msg


def test_truncated_file(tmp_path: Path, official_file: Path) -> None:
    path = tmp_path / "wav2lip_gan.pth"
    with official_file.open("rb") as f:
        path.write_bytes(f.read(8_000_000))
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_wav2lip(path, CPU, torch.float32)


def test_html_page_saved_as_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip.pth"
    path.write_text("<!DOCTYPE html><html><head><title>wav2lip.pth - Hugging Face</title>")
    with pytest.raises(WeightsError, match="web page"):
        load_wav2lip(path, CPU, torch.float32)


def test_missing_file_and_missing_state_dict(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="missing"):
        load_wav2lip(tmp_path / "nope.pth", CPU, torch.float32)
    path = tmp_path / "opt_only.pth"
    torch.save({"optimizer": {"state": {}}, "global_step": 5}, path)
    with pytest.raises(WeightsError, match="no 'state_dict'"):
        load_wav2lip(path, CPU, torch.float32)


def test_wrong_network_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"module.conv.weight": torch.zeros(3, 3, 1, 1)}}, path)
    with pytest.raises(ModelLoadError) as err:
        load_wav2lip(path, CPU, torch.float32)
    assert "conv.weight" in err.value.problem  # unexpected, prefix stripped
    assert "audio_encoder.0.conv_block.0.bias" in err.value.problem  # missing
    assert "and 344 more" in err.value.problem


def test_prefixed_and_plain_copies_of_a_key_are_refused(tmp_path: Path) -> None:
    """DataParallel's ``module.`` prefix is stripped; a file holding both forms is ambiguous."""
    sd = {f"module.{k}": v for k, v in Wav2Lip().state_dict().items()}
    sd["output_block.1.bias"] = torch.zeros(3)
    path = tmp_path / "both.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(ModelLoadError) as err:
        load_wav2lip(path, CPU, torch.float32)
    problem = err.value.problem
    assert "module.output_block.1.bias and output_block.1.bias both become output_block.1.bias" \
        in problem
    assert "missing" not in problem and "unexpected" not in problem


def test_model_choice_paths(tmp_path: Path) -> None:
    assert wav2lip_path(tmp_path, "wav2lip_gan") == tmp_path / "wav2lip" / "wav2lip_gan.pth"
    with pytest.raises(ConfigError) as err:
        wav2lip_path(tmp_path, "wav2lip_hd")
    assert "pipeline.lipsync_model" in err.value.user_message()
