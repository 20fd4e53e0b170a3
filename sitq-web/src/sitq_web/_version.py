"""The version of sitq-web, written only here: hatchling reads it when building."""

__version__ = "0.1.0"
