"""Wav2Lip behind the lip-sync seam: ``wav2lip_engine`` over ``stage.LipSyncer``.

``load``: the official checkpoints; ``audio``: the mel windows; ``blend``: the feathered
lower-face mask; ``wav2lip_fast``: the network pass without repeated or unseen work; ``bench``:
``facedrop bench --stage lipsync``. Nothing is imported here: import the submodule you need.
"""
