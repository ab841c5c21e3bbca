"""Keep the Hugging Face libraries off the network.

facedrop never passes them a hub name (every network is built from a shipped config and loaded
from a local file), and also sets their offline switches before their first import, so no code
path inside them (telemetry, a config lookup) can reach out. Called by the loaders, not at import.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DIFFUSERS_OFFLINE": "1",
}


def force_offline(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the offline switches (in ``os.environ`` unless another mapping is given) and, when
    huggingface_hub is already imported, its module-level copy of the switch too."""
    env = os.environ if environ is None else environ
    env.update(OFFLINE_ENV)
    if environ is None:
        import huggingface_hub.constants as hub_constants  # after the env: it reads it once

        hub_constants.HF_HUB_OFFLINE = True
