"""sss_studio: semantic soft segmentation, as a library, a command and a desktop editor."""

__version__ = "0.1.0"
