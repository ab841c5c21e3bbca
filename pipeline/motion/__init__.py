"""Motion sources: where a job's head, eye and face motion comes from (``clip``, ``voice``,
``still``), beside the lip-sync engine seam. ``source.resolve_motion`` is the one rule that picks
a job's source; every source yields a ``DrivingMotion`` that the LivePortrait stage renders."""
