"""Task headers (``meta``): the rule for what a header mapping may hold, and its stored form.

Headers are a small mapping stored with every task, next to (never inside) its payload: str
keys, JSON-compatible values. They are checked where they are passed (`check_meta`), so a
bad header fails the call that set it, not a worker later; backends store them as JSON text
(`encode_meta`) and read them back with `decode_meta`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

#: The largest header mapping accepted, as encoded JSON (UTF-8 bytes).
MAX_META_BYTES = 64 * 1024


def _check_keys(value: Any, path: str) -> None:
    """Reject non-str keys anywhere (JSON would turn them into strings silently)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigurationError(
                    f"meta{path} has the key {key!r} ({type(key).__name__}); header keys "
                    "must be strings"
                )
            _check_keys(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_keys(item, f"{path}[{index}]")


def encode_meta(meta: Mapping[str, Any]) -> str:
    """``meta`` as compact JSON text (what backends store)."""
    return json.dumps(meta, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def decode_meta(text: str | bytes | None) -> dict[str, Any]:
    """A stored header text back as a dict (nothing stored: empty)."""
    if not text or text == "{}":  # the common case, without a parse
        return {}
    found = json.loads(text)
    return found if isinstance(found, dict) else {}


def check_meta(meta: Any) -> dict[str, Any]:
    """Check a header mapping and return it as a plain dict with JSON's shapes (tuples become
    lists); `ConfigurationError` naming the problem otherwise."""
    if meta is None or (type(meta) is dict and not meta):
        return {}
    if not isinstance(meta, Mapping):
        raise ConfigurationError(
            f"meta must be a mapping of str to JSON values, got {type(meta).__name__}"
        )
    _check_keys(meta, "")
    try:
        text = encode_meta(meta)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"meta cannot be encoded as JSON ({exc}); use str, int, float (finite), bool, "
            "None, lists and dicts"
        ) from None
    size = len(text.encode())
    if size > MAX_META_BYTES:
        raise ConfigurationError(
            f"meta is {size} bytes as JSON, over the limit of {MAX_META_BYTES}; keep headers "
            "small and put data in the task's arguments"
        )
    return decode_meta(text)


__all__ = ["MAX_META_BYTES", "check_meta", "decode_meta", "encode_meta"]
