"""``facedrop bench --compare``: the plain and the fast paths, timed in one process.

Both paths run on the same inputs in the same process. Per stage:

- **render (W + G)**: the official networks as loaded (``fused=False``) against the exact
  rewrites (``loader.fuse_nets``: BatchNorm folded, G's SPADE convolutions regrouped);
- **Wav2Lip network** (the network pass alone on both sides) and **lip-sync stage** (network +
  blend) per output frame, on output frames cycling over a few distinct crops as in a
  repeat-avatar job: ``LipSyncer`` with the loaded network against the engine's ``FastWav2Lip``
  (BatchNorm folded, encoder once per distinct face, decoder on the used rows only, in
  channels-last layout on the CPU);
- **repeat-avatar job**: the whole chain on a job whose crops come from the render cache (a 1 s
  warm-up job renders them first), with the Wav2Lip engine's plain pass, then its fast pass.

The two paths alternate (per batch for Wav2Lip, per repeat for the render and the job); the
render keeps the median of its repeats, the job the best of its two, so other work on the
machine weighs on both alike. Each row also gives the largest difference between the two
paths' outputs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.chain.bank import ModelBank
from pipeline.chain.benchmark import looped_speech, sway_clip
from pipeline.chain.runner import Runner, fit_photo
from pipeline.device import synchronize
from pipeline.example import AUDIO, FACE, example_dir
from pipeline.face.landmarks import FaceLandmarker
from pipeline.lipsync.bench_crops import animated_crops
from pipeline.lipsync.engine import EngineContext, apply_mouth
from pipeline.lipsync.registry import engine_entry
from pipeline.lipsync.wav2lip.audio import frame_mels
from pipeline.lipsync.wav2lip.load import load_wav2lip, wav2lip_path
from pipeline.lipsync.wav2lip.stage import LipSyncer, face_input
from pipeline.lipsync.wav2lip.wav2lip_engine import Wav2LipEngine, load_wav2lip_engine
from pipeline.lipsync.wav2lip.wav2lip_fast import first_used_row
from pipeline.liveportrait.nets import LivePortraitNets
from pipeline.media.audio import load_audio
from pipeline.media.image import load_image
from pipeline.settings import PipelineSettings
from pipeline.spec import CancelToken, JobSpec, TimingRecord, no_progress


@dataclass(frozen=True, slots=True)
class Comparison:
    """One stage: the plain and fast paths' time (``unit``), their ratio, the outputs' max
    absolute difference (``diff_unit``)."""

    stage: str
    unit: str
    old: float
    new: float
    max_diff: float
    diff_unit: str

    @property
    def ratio(self) -> float:
        return self.old / self.new if self.new > 0 else float("inf")

    def to_json(self) -> dict[str, object]:
        return {"stage": self.stage, "unit": self.unit, "old": round(self.old, 3),
                "new": round(self.new, 3), "ratio": round(self.ratio, 3),
                "max_diff": self.max_diff, "diff_unit": self.diff_unit}


def compare_render(settings: PipelineSettings, frames: int = 2, repeats: int = 3
                   ) -> list[Comparison]:
    """W + G on ``frames`` driving frames (one batch), official nets against the fused ones,
    ``repeats`` times each, alternating; the median time of each. Where ``pipeline.compile`` asks
    for it in a worker process (``auto`` on the CPU: what the daemon gets), a second row: the
    fused nets with G compiled (its compile, at a first untimed call, named in the row; minutes
    the first time, seconds from inductor's cache after)."""
    import dataclasses

    from pipeline.compiled import maybe_compile, wanted
    from pipeline.liveportrait.loader import load_liveportrait
    from pipeline.settings import ProcessKind

    bank = ModelBank(settings)
    dtype = bank.dtype(bank.device.type in ("cuda", "mps"))
    g = torch.Generator().manual_seed(0)
    f_s = torch.randn(1, 32, 16, 64, 64, generator=g).expand(frames, -1, -1, -1, -1)
    kp_s = (0.5 * torch.randn(1, 21, 3, generator=g)).expand(frames, 21, 3)
    kp_d = kp_s + 0.05 * torch.randn(frames, 21, 3, generator=g)
    f_s, kp_s, kp_d = (t.to(bank.device, dtype) for t in (f_s, kp_s, kp_d))
    paths = [load_liveportrait(settings.weights_dir, bank.device, dtype, fused=fused)
             for fused in (False, True)]

    def render(nets: LivePortraitNets) -> torch.Tensor:
        with torch.no_grad():
            warped = nets.warping(f_s, kp_driving=kp_d, kp_source=kp_s).out
            image = nets.generator(warped).float().cpu()
        synchronize(bank.device)
        return image

    compile_s = 0.0
    if wanted(settings.compile, bank.device, ProcessKind.WORKER):
        fused = load_liveportrait(settings.weights_dir, bank.device, dtype)
        paths.append(dataclasses.replace(fused, generator=maybe_compile(
            fused.generator, settings.compile, bank.device, settings.cache_dir,
            ProcessKind.WORKER)))
        start = time.perf_counter()
        render(paths[-1])  # the compile (or the inductor cache's load)
        compile_s = time.perf_counter() - start
    images: list[torch.Tensor] = [torch.empty(0)] * len(paths)
    times: list[list[float]] = [[] for _ in paths]
    for _ in range(repeats):  # interleaved: other work on the machine weighs on each path alike
        for which, nets in enumerate(paths):
            start = time.perf_counter()
            images[which] = render(nets)
            times[which].append((time.perf_counter() - start) / frames)
    seconds = [statistics.median(t) for t in times]
    rows = [Comparison("render (W + G)", "s per frame", seconds[0], seconds[1],
                       float((images[0] - images[1]).abs().max()), "image in [0, 1]")]
    if len(paths) == 3:
        rows.append(Comparison(f"render (W + G), G compiled (compile {compile_s:.0f} s)",
                               "s per frame", seconds[0], seconds[2],
                               float((images[0] - images[2]).abs().max()), "image in [0, 1]"))
    return rows


def compare_lipsync(settings: PipelineSettings, frames: int = 48, distinct: int = 8
                    ) -> list[Comparison]:
    """Wav2Lip on ``frames`` output frames cycling over ``distinct`` crops of the example photo:
    ``LipSyncer`` with the official network against the engine's fast pass."""
    bank = ModelBank(settings)
    dtype = bank.dtype(engine_entry(settings.lipsync_model).fp16_checked)
    landmarker = FaceLandmarker(settings.weights_dir)
    crops, first = animated_crops(load_image(example_dir() / FACE), landmarker, distinct)
    net = load_wav2lip(wav2lip_path(settings.weights_dir, settings.lipsync_model), bank.device,
                       dtype)
    plain = LipSyncer(net, bank.device, dtype, settings.chunk_size, landmarker=landmarker)
    bases = plain.prepare_sequence(crops, first)
    engine = load_wav2lip_engine(EngineContext(
        settings.weights_dir, settings.cache_dir, bank.device, dtype, settings.chunk_size,
        landmarker, settings.render_cache_mb), settings.lipsync_model)
    if engine.fast is None:
        raise ValueError("--compare measures the Wav2Lip engines' fast pass")
    fast = engine.fast
    order = [i % distinct for i in range(frames)]
    mels = frame_mels(load_audio(example_dir() / AUDIO).samples, 25, frames)
    batch = settings.chunk_size
    net_s, stage_s = [0.0, 0.0], [0.0, 0.0]
    outputs: list[list[np.ndarray]] = [[], []]
    for start in range(0, frames, batch):  # both paths on each batch in turn: equal contention
        idx = order[start:start + batch]
        faces = np.stack([face_input(crops[k], bases[k].box) for k in idx])
        window = mels[start:start + len(idx)]
        t0 = time.perf_counter()
        generated = plain.generate(faces, window)
        synchronize(bank.device)
        t1 = time.perf_counter()
        outputs[0] += [plain.paste(crops[k], g, bases[k]) for k, g in zip(idx, generated,
                                                                          strict=True)]
        t2 = time.perf_counter()
        first_row = min(first_used_row(bases[k].mask) for k in idx)
        generated = fast.generate(faces, window, first_row)  # the network alone, as above
        synchronize(bank.device)
        t3 = time.perf_counter()
        mouths = [engine.mouth(crops[k], g, bases[k]) for k, g in zip(idx, generated,
                                                                      strict=True)]
        outputs[1] += [apply_mouth(crops[k], m) for k, m in zip(idx, mouths, strict=True)]
        t4 = time.perf_counter()
        net_s[0], stage_s[0] = net_s[0] + t1 - t0, stage_s[0] + t2 - t0
        net_s[1], stage_s[1] = net_s[1] + t3 - t2, stage_s[1] + t4 - t2
    diff = max(int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
               for a, b in zip(*outputs, strict=True))
    per = 1000.0 / frames
    return [Comparison("Wav2Lip network", "ms per frame", per * net_s[0],
                       per * net_s[1], diff, "frame levels (0-255)"),
            Comparison("lip-sync stage (network + blend)", "ms per frame", per * stage_s[0],
                       per * stage_s[1], diff, "frame levels (0-255)")]


def compare_job(settings: PipelineSettings, seconds: float = 2.0, repeats: int = 2
                ) -> tuple[Comparison, list[Comparison]]:
    """A repeat-avatar job through the whole chain, with Wav2Lip's plain pass and its fast pass
    alternating ``repeats`` times each (after a 1 s warm-up job that renders the crops into the
    render cache); the best of each."""
    runner = Runner(settings)
    with tempfile.TemporaryDirectory(prefix="facedrop-compare-") as tmp:
        work = Path(tmp)
        photo = example_dir() / FACE
        face = work / photo.name
        face.write_bytes(photo.read_bytes())
        clip = (None if settings.default_driver
                else sway_clip(fit_photo(load_image(photo), 512), work / "sway.mp4").name)
        records: list[TimingRecord] = []
        engine = runner.syncer()
        if not isinstance(engine, Wav2LipEngine):
            raise ValueError("--compare measures the Wav2Lip engines: set lipsync_model to one")
        fast, folded = engine.fast, engine.syncer.net
        official = load_wav2lip(wav2lip_path(settings.weights_dir, engine.name),
                                engine.syncer.device, engine.syncer.dtype)
        runs = [("warm-up", 1.0)] + [(name, seconds) for _ in range(repeats)
                                     for name in ("plain", "fast")]
        for i, (run, speech) in enumerate(runs):
            plain = run == "plain"  # the official network, whole, per output frame
            engine.fast, engine.syncer.net = (None, official) if plain else (fast, folded)
            audio = looped_speech(example_dir() / AUDIO, speech, work / f"{run}.wav")
            job = JobSpec(name=f"compare-{run}", face=face, audio=audio, driving=clip,
                          output_name=f"{run}{i}.mp4", fps=25.0, lipsync=True, enhance=False)
            records.append(runner.run(job, work / f"{run}{i}.mp4", no_progress, CancelToken()))
        engine.fast, engine.syncer.net = fast, folded
    # the best of each path's repeats
    old = min(records[1::2], key=lambda r: r.total_seconds)
    new = min(records[2::2], key=lambda r: r.total_seconds)
    stages = []
    new_by_name = {s.name: s for s in new.stages}
    for s in old.stages:
        other = new_by_name.get(s.name)
        if other is not None and s.seconds > 0 and other.seconds > 0:
            stages.append(Comparison(f"job: {s.name}", "s", s.seconds, other.seconds,
                                     float("nan"), ""))
    whole = Comparison(f"repeat-avatar job ({seconds:g} s of video)", "s", old.total_seconds,
                     new.total_seconds, float("nan"), "")
    return whole, stages
