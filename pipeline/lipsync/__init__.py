"""Wav2Lip lip sync on the animated LivePortrait crops, with no second face detector.

- ``load``: ``load_wav2lip(path, device, dtype)`` for the official ``wav2lip(_gan).pth``;
  ``wav2lip_path(weights_dir, model)``.
- ``audio``: ``frame_mels(samples16k, fps, n)`` (the frame count is
  ``pipeline.media.frame_count.output_frame_count``).
- ``stage``: ``LipSyncer`` (``prepare_sequence`` once per distinct crop, ``sync`` per frame).
- ``box`` / ``blend``: the tight face box (zero-lag smoothing) and the feathered mouth blend.
- ``bench``: ``benchmark_lipsync`` for ``facedrop bench --stage lipsync``.

Nothing is imported or loaded here: import the submodule you need.
"""
