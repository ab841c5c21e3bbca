"""Face detection, landmarks, crop geometry, masks and paste-back.

Detection and landmarks run MediaPipe's Apache-2.0 BlazeFace and FaceMesh ``.tflite`` models on
LiteRT (``landmarks.py``); everything else is plain numpy/OpenCV geometry on the resulting 468
FaceMesh points. Nothing is loaded at import time.
"""
