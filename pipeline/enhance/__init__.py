"""GFPGAN restoration of the face inside the 512x512 LivePortrait crops, blended by strength.

``load_gfpgan(path, device, dtype)`` builds the network from ``GFPGANv1.4.pth``;
``Enhancer(net, device, dtype, strength, batch_size).enhance(crops, landmarks)`` restores crops
given landmarks smoothed over the distinct crops by ``stage.smooth_landmarks``.
"""

from pipeline.enhance.load import gfpgan_from_checkpoint, load_gfpgan
from pipeline.enhance.stage import Enhancer

__all__ = ["Enhancer", "gfpgan_from_checkpoint", "load_gfpgan"]
