"""What a user's train.py imports: annotations, clip sampling, the synthetic set, SSv2Clips, the loader.

Nothing here imports pytest or psutil.
"""
