"""whisperd: local speech-to-text for the Linux desktop."""

__version__ = "0.1.0"
