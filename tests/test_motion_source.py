"""The motion-source seam: one rule picks a job's source and says why."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.errors import InputError, WeightsError
from pipeline.liveportrait.drivers import DriverLibrary, DrivingSource
from pipeline.motion.source import MotionSource, resolve_motion
from tests.helpers.clips import make_clip
from tests.helpers.voice_motion import EnvelopeVoice

ABSENT = "no voice weights in /w (facedrop weights fetch voice)"


@pytest.fixture
def library(tmp_path: Path, astronaut_path: Path) -> DriverLibrary:
    (tmp_path / "d").mkdir()
    make_clip(tmp_path / "d" / "calm.mp4", astronaut_path, 2, Fraction(25), size=64)
    return DriverLibrary(tmp_path / "d")


def test_a_photo_and_a_voice_get_voice_when_its_weights_are_present(library: DriverLibrary
                                                                    ) -> None:
    choice = resolve_motion(None, None, configured=None, voice=EnvelopeVoice(), library=library,
                            default_clip="calm")
    assert choice.source is MotionSource.VOICE and choice.clip is None
    assert "voice weights are present" in choice.reason


def test_without_voice_weights_the_default_clip_then_still(library: DriverLibrary) -> None:
    voice = EnvelopeVoice(absent=ABSENT)
    clip = resolve_motion(None, None, configured=None, voice=voice, library=library,
                          default_clip="calm")
    assert clip.source is MotionSource.CLIP and clip.clip is not None
    assert clip.clip.source is DrivingSource.DEFAULT and ABSENT in clip.reason
    still = resolve_motion(None, None, configured=None, voice=voice, library=library,
                           default_clip="")
    assert still.source is MotionSource.STILL and "no default clip" in still.reason
    gone = resolve_motion(None, None, configured=None, voice=None, library=library,
                          default_clip="missing-clip")
    assert gone.source is MotionSource.STILL  # a default that is not there: still, not a failure


def test_a_named_clip_wins_over_voice(library: DriverLibrary, tmp_path: Path) -> None:
    choice = resolve_motion(None, "calm", configured=MotionSource.STILL, voice=EnvelopeVoice(),
                            library=library, default_clip="", job_dir=tmp_path)
    assert choice.source is MotionSource.CLIP and choice.clip is not None
    assert choice.clip.name == "calm" and choice.reason == "job.yaml names the clip"
    assert choice.summary() == "clip 'calm' (job.yaml names the clip)"


def test_job_yaml_and_config_choose_explicitly(library: DriverLibrary) -> None:
    voice = EnvelopeVoice()
    asked = resolve_motion(MotionSource.STILL, None, configured=MotionSource.CLIP, voice=voice,
                           library=library, default_clip="calm")
    assert asked.source is MotionSource.STILL and asked.reason == "job.yaml says motion: still"
    config = resolve_motion(None, None, configured=MotionSource.STILL, voice=voice,
                            library=library, default_clip="calm")
    assert config.reason == "the config sets motion.source: still"
    clip = resolve_motion(MotionSource.CLIP, None, configured=None, voice=voice, library=library,
                          default_clip="calm")
    assert clip.clip is not None and clip.clip.name == "calm"


def test_asked_for_what_is_not_there(library: DriverLibrary) -> None:
    with pytest.raises(WeightsError) as err:  # missing weights: the job waits, it never fails
        resolve_motion(MotionSource.VOICE, None, configured=None,
                       voice=EnvelopeVoice(absent=ABSENT), library=library, default_clip="")
    assert ABSENT in err.value.problem and "weights fetch voice" in err.value.fix
    with pytest.raises(InputError, match="no default clip is set"):
        resolve_motion(MotionSource.CLIP, None, configured=None, voice=None, library=library,
                       default_clip="")
