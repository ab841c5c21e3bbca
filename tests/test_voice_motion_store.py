"""The voice-motion cache: a rerun samples nothing, each part of the key misses on its own, a
replaced weights file misses, a tampered entry is dropped and sampled again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.liveportrait.generated import motion_sha256
from pipeline.voice.motion_store import VoiceMotionStore
from pipeline.voice.provider import JoyVasaMotion
from tests.helpers.joyvasa_checkpoints import write_weights_dir
from tests.helpers.torch_threads import one_thread  # noqa: F401 (an autouse fixture)

FPS = 25.0


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("joyvasa-store")
    write_weights_dir(root)
    return root


def speech(seconds: float = 0.4) -> np.ndarray:
    return (np.random.default_rng(3).standard_normal(int(seconds * 16000)) * 0.1
            ).astype(np.float32)


def test_a_rerun_samples_nothing_and_every_key_part_misses(weights: Path, tmp_path: Path,
                                                            samplings: list[int]) -> None:
    store = VoiceMotionStore(tmp_path)
    voice = JoyVasaMotion(weights, torch.device("cpu"), store=store)
    audio = speech()
    first = voice.generate(audio, FPS, 8, seed=1, steps=2)
    assert len(samplings) == 1
    again = voice.generate(audio, FPS, 8, seed=1, steps=2)
    assert len(samplings) == 1  # from the store
    assert motion_sha256(again) == motion_sha256(first)
    # a fresh provider (a restarted daemon) finds it too
    assert motion_sha256(JoyVasaMotion(weights, torch.device("cpu"), store=store)
                         .generate(audio, FPS, 8, seed=1, steps=2)) == motion_sha256(first)
    assert len(samplings) == 1
    louder = audio * 1.5
    for args, kwargs in (((louder, FPS, 8), {"seed": 1, "steps": 2}),
                         ((audio, 12.5, 4), {"seed": 1, "steps": 2}),
                         ((audio, FPS, 7), {"seed": 1, "steps": 2}),
                         ((audio, FPS, 8), {"seed": 2, "steps": 2}),
                         ((audio, FPS, 8), {"seed": 1, "steps": 3}),
                         ((audio, FPS, 8), {"seed": 1, "steps": None})):
        before = len(samplings)
        voice.generate(*args, **kwargs)
        assert len(samplings) == before + 1, (args[1:], kwargs)
    assert len(list(store.root.glob("*.pkl"))) == 7
    assert not list(store.root.glob(".*"))  # no temp files left behind


def test_a_replaced_generator_misses(weights: Path, tmp_path: Path, samplings: list[int],
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    store = VoiceMotionStore(tmp_path)
    audio = speech()
    JoyVasaMotion(weights, torch.device("cpu"), store=store).generate(audio, FPS, 8, seed=1,
                                                                       steps=2)
    other = tmp_path_factory.mktemp("joyvasa-other")
    write_weights_dir(other)
    gen = other / "joyvasa" / "motion_generator" / "motion_generator_hubert_chinese.pt"
    os.utime(gen, ns=(1, 1))  # another file (its modification time differs)
    JoyVasaMotion(other, torch.device("cpu"), store=store).generate(audio, FPS, 8, seed=1,
                                                                     steps=2)
    assert len(samplings) == 2


def test_a_tampered_entry_is_dropped_and_sampled_again(weights: Path, tmp_path: Path,
                                                       samplings: list[int]) -> None:
    store = VoiceMotionStore(tmp_path)
    voice = JoyVasaMotion(weights, torch.device("cpu"), store=store)
    audio = speech()
    first = voice.generate(audio, FPS, 8, seed=1, steps=2)
    (entry,) = store.root.glob("*.pkl")
    entry.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle that would run a command
    again = voice.generate(audio, FPS, 8, seed=1, steps=2)
    assert len(samplings) == 2
    assert motion_sha256(again) == motion_sha256(first)
    assert entry.read_bytes() != b"cos\nsystem\n(S'echo pwned'\ntR."  # rewritten by the rerun
