"""Media I/O on PyAV's bundled FFmpeg: images, audio, video decode/encode/verify, Wav2Lip mel.

Import the submodules you need (``pipeline.media.audio``, ``.image``, ``.video``, ``.verify``,
``.mel``); nothing heavy is imported here.
"""
