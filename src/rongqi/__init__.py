"""rongqi (容器): an OCI container runtime and a daemonless container engine.

Public names only; the runtime's command line lives in rongqi.oci.cli.
"""

__version__ = "0.1.0"
