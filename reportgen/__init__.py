"""reportgen -- failure dossiers for language models."""

__version__ = "0.1.0"
