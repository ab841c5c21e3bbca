"""The official LivePortrait example driving clips (MIT), fetchable into the driving library.

Chosen from ``assets/examples/driving`` of github.com/KwaiVGI/LivePortrait at commit
1986663be3b6902605d32200c01f4bfd36cda83d: three short square talking-head clips. Sizes and
sha256 were computed from that commit's blobs; downloads are checked against them.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import FacedropError, WeightsError
from pipeline.liveportrait.drivers import Driver, DriverLibrary
from pipeline.weights.fetch import download

COMMIT = "1986663be3b6902605d32200c01f4bfd36cda83d"
BASE_URL = f"https://raw.githubusercontent.com/KwaiVGI/LivePortrait/{COMMIT}/assets/examples/driving"
LICENCE = "MIT (LivePortrait, (c) 2024 Kuaishou Visual Generation and Interaction Center)"


@dataclass(frozen=True, slots=True)
class ExampleClip:
    """One downloadable clip: its library name, URL, size and sha256."""

    name: str
    url: str
    size: int
    sha256: str


EXAMPLE_CLIPS: tuple[ExampleClip, ...] = (
    # d19: 480x480, 30 fps, 250 frames (8.3 s), calm speech: the default clip
    ExampleClip("lp-d19", f"{BASE_URL}/d19.mp4", 232859,
                "3047ba66296d96b8a4584e412e61493d7bc0fa5149c77b130e7feea375e698bd"),
    # d20: 480x480, 25 fps, 175 frames (7.0 s), lively speech
    ExampleClip("lp-d20", f"{BASE_URL}/d20.mp4", 462335,
                "1e249873c21abf27b3c9f405a1b5283ef1b70e5eff21c1df44ca4b5b4d9b7309"),
    # d0: 512x512, 25 fps, 78 frames (3.1 s), the README's example: smiles and head turns
    ExampleClip("lp-d0", f"{BASE_URL}/d0.mp4", 2958395,
                "63f6f9962e1fdf6e6722172e7a18155204858d5d5ce3b1e0646c150360c33bed"),
)

Opener = Callable[..., Any]
ByteProgress = Callable[[str, int, int | None], None]


def fetch_examples(
    library: DriverLibrary,
    clips: Sequence[ExampleClip] = EXAMPLE_CLIPS,
    *,
    opener: Opener | None = None,
    progress: ByteProgress | None = None,
) -> list[Driver]:
    """Download ``clips`` (verified by size and sha256) into ``library``; skip ones present.

    Without network the first failure stops everything with one ``FacedropError``.
    """
    added = []
    staging = library.root / ".downloads"
    for clip in clips:
        existing = library.find(clip.name)
        if existing is not None:
            added.append(library.add(existing, clip.name))  # same bytes: a no-op, returns it
            continue
        dest = staging / f"{clip.name}.mp4"
        try:
            download(clip.url, dest, label=clip.name, size=clip.size, sha256=clip.sha256,
                     progress=progress, opener=opener)
        except (WeightsError, urllib.error.URLError, OSError) as exc:
            problem = exc.problem if isinstance(exc, WeightsError) else str(exc)
            raise FacedropError(
                f"could not download the example driving clips ({problem})",
                fix="check the internet connection and run 'facedrop drivers fetch' again, "
                "or add your own clip with 'facedrop drivers add VIDEO'",
                file=clip.url,
            ) from exc
        added.append(library.add(dest, clip.name))
        dest.unlink(missing_ok=True)
    return added
