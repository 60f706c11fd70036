"""rongqi (容器): an OCI container runtime and a daemonless container engine.

Public names only; the runtime's command line lives in rongqi.oci.cli. `rongqi.Client` and
`rongqi.from_env` (rongqi.api) load on first use, so the runtime's start stays light.
"""

__version__ = "0.1.0"

__all__ = ["Client", "from_env", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy: rongqi-oci imports this package on its start path and must not pay for the API.
    if name in ("Client", "from_env"):
        from rongqi import api
        return getattr(api, name)
    raise AttributeError(f"module 'rongqi' has no attribute {name!r}")
