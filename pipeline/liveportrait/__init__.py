"""The LivePortrait stage: a still face animated by a driving clip's motion.

Public API (the runner chains these):

- ``loader.build_stage(settings, landmarker=None, runner=None) -> animate.LivePortraitStage``
  (loads the five networks once; keep the stage for the daemon's lifetime);
- ``LivePortraitStage.run(image, landmarks, driving, audio_seconds, fps, options=None,
  progress=no_progress, cancel=None) -> animate.AnimationResult`` with the crop ``affine``
  (image -> 512 crop), ``order`` (output frame -> distinct crop), ``distinct`` (driving frame of
  each crop), ``crop(k)`` / ``frame(i)`` (512x512x3 uint8 RGB, read from the render cache),
  ``rendered`` / ``reused``, ``motion_cache`` / ``render_cache`` and per-network ``timings``;
- ``drivers.DriverLibrary(settings.drivers_dir)``: ``add``, ``list``, ``find``; and
  ``drivers.resolve_driving``, the one rule for which clip drives a job;
- ``template.load_template`` / ``save_template``: official ``.pkl`` layouts, safe unpickler.
"""
