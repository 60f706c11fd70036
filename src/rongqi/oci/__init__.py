"""The OCI runtime: bundle (config.json + rootfs) -> running container, and its state.

Imported by the rongqi-oci command line and by the engine (in-process); keep it light.
"""
