"""MuseTalk 1.5 (TMElyralab/MuseTalk, MIT code): its networks, loaded from the official files.

A single UNet pass (timestep 0) inpaints the lower half of a 256 x 256 face in the latent space
of Stable Diffusion's VAE (``sd-vae-ft-mse``), conditioned by whisper-tiny encoder features; a
BiSeNet face parser shapes the blend mask. ``bundle.MuseTalk`` is the API the lip-sync engine uses.
Importing this package imports nothing heavy: diffusers and transformers load on first use.
"""
