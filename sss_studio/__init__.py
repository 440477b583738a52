"""sss_studio: semantic soft segmentation, as a library, a command and a desktop editor.

Importing the package loads nothing heavy and changes no environment variable; the
command-line entry point sets the thread environment (``_threads_env``).
"""

__version__ = "0.1.0"
