"""The chain: one job through every stage into one video, with the models resident.

``runner.Runner`` is the pipeline the daemon and ``facedrop run`` call; ``compose`` chains the
stages chunk by chunk, ``bank`` keeps the loaded models, ``stageclock`` times the stages and
``benchmark`` measures the whole chain.
"""
