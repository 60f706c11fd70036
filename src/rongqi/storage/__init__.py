"""Layer storage: image layers unpacked once per chain id, and per-container snapshots.

Knows nothing of running containers; it hands the engine a mounted rootfs directory.
"""
