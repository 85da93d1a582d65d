"""LineGuard: deep-learning visual inspection for production lines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lineguard")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
