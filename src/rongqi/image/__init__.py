"""Images: references, the content store, layers, registries and archives.

Knows nothing of running containers; the engine composes it with storage/ and oci/.
"""
