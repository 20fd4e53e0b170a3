"""The version of sitq-sqlite, written only here: hatchling reads it when building."""

__version__ = "0.1.0"
