"""A checkpoint's model version: the tag the motion and render caches are keyed by.

(A file's content hash is ``pipeline.digest.sha256_file``.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Bump when what facedrop stores for a clip changes (cropping rule, landmark scheme, layout):
# it is part of every motion-cache key, so old entries simply stop matching.
# e2 (issue 15): eye ratios from the iris model's eyelids and both ratios mapped onto the
# official 203-point scale; the render key holds this tag too, so renders are redone as well.
# e3 (issue 19): the eye map reads the lid heights and the nose's drop below the eye line
# (``pipeline.face.ratios``), so a stored clip's eye ratios are measured again.
EXTRACTION_VERSION = "e3"


def model_version(*checkpoints: Path) -> str:
    """A short tag naming the exact checkpoint files used, plus ``EXTRACTION_VERSION``.

    Built from each file's name, size and mtime (ns) rather than its content hash: hashing the
    112 MB motion extractor on every job would cost a second or more, while a replaced or
    re-downloaded file changes size or mtime, which only causes a harmless cache miss.
    """
    digest = hashlib.sha256(EXTRACTION_VERSION.encode())
    for path in checkpoints:
        st = path.stat()
        digest.update(f"|{path.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]
