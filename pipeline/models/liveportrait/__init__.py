"""LivePortrait's five networks (F, M, W, G, S/R), matching the official checkpoint layout.

One network per module: ``appearance`` (F), ``motion`` (M), ``warping`` + ``dense_motion`` (W),
``spade`` (G), ``stitching`` (S, R_eyes, R_lip); ``config`` holds the official hyperparameters,
``convert`` the checkpoint key conversion, ``keypoints`` the keypoint maths and ``ops`` the
portable 5-D op rewrites. No file I/O here: loading is ``pipeline.liveportrait.loader``.
"""
