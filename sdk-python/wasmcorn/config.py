"""Plugin configuration (host op config.get): the keys the manifest grants."""

from . import _abi, _host


def get(key, default=None):
    """Return the configured string for key, or default when it is absent."""
    try:
        return _host.call(_abi.OP_CONFIG_GET, key)[0]
    except _host.NotFound:
        return default
