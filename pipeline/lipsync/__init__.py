"""Lip sync on the animated LivePortrait crops, behind one engine seam, with no second detector.

- ``engine``: the ``LipSyncEngine`` protocol (per distinct crop ``prepare``, per job
  ``audio_features``, per batch ``mouths`` -> ``MouthPatch``) and the shared ``apply_mouth``.
- ``registry``: the engines by name (``ENGINE_NAMES``: config, job.yaml and the first-run check
  use it) and ``load_engine``.
- ``wav2lip/``: Wav2Lip, ``wav2lip_engine`` over ``stage.LipSyncer`` (``load``: the official
  checkpoints; ``audio``: the mel windows; ``blend``: the feathered mask; ``bench``:
  ``facedrop bench --stage lipsync``).
- ``musetalk/``: MuseTalk 1.5, ``musetalk_engine`` over ``pipeline.musetalk`` (``musetalk_crop``:
  the official v1.5 box from our landmarks; ``avatar_cache``: latents and masks per crop;
  ``whisper_windows``: per-frame audio windows; ``musetalk_bench``: ``facedrop bench --lipsync
  musetalk``).
- Shared by the engines: ``tracking`` (landmarks tracked from crop to crop), ``box`` (the
  face box and its smoothing over time) and ``bench_crops`` (the benchmarks' input crops).

Nothing is imported or loaded here: import the submodule you need.
"""
