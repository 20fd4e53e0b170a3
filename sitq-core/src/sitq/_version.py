"""The version of sitq-core, written only here: hatchling reads it when building."""

__version__ = "0.1.0"
