"""The package version, in a leaf module so that every layer can stamp it on what it writes."""
__version__ = "0.1.0"
