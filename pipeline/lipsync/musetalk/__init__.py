"""MuseTalk 1.5 behind the lip-sync seam: ``musetalk_engine`` over ``pipeline.musetalk``.

``musetalk_crop``: the official v1.5 box from our landmarks; ``avatar_cache``: latents and masks
per crop; ``whisper_windows``: per-frame audio windows; ``musetalk_bench``: ``facedrop bench
--lipsync musetalk``. Nothing is imported here: import the submodule you need.
"""
