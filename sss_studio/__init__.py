"""sss_studio: semantic soft segmentation, as a library, a command and a desktop editor."""

from . import _threads_env  # noqa: F401  (first: idle threads sleep, before numpy loads)

__version__ = "0.1.0"
