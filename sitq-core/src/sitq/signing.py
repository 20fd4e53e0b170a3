"""Signed payloads: an HMAC-SHA256 tag around stored task payloads and results.

Unpickling runs code: whoever can write a pickled payload into the database can run code on
every worker that decodes it. With a secret key (``TaskQueue(secret_key=...)``,
``Worker(secret_key=...)`` or ``$SITQ_SECRET_KEY``), every payload and every result is stored
as:

```text
b"sitq\\x01" + HMAC-SHA256(key, "call", task id, function, serializer, body) + body
```

and the reader checks the tag *before* it decodes a single byte of the body. A payload that is
unsigned, altered, moved from another task (the task id is signed) or signed with another key
raises `SignatureError` (a `PayloadError`): the worker marks the task dead and carries on.
Results are signed over the task id too, so a reader never unpickles a planted result.

Backends store the signed bytes as opaque bytes and need no change. Without a key, payloads
are stored as they are, and a signed one is refused with an error saying a key is needed.
Queues and workers never call a `Signer` directly: their `sitq.envelope.Envelope` holds it,
with the codec and the size limit.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from .errors import ConfigurationError, SignatureError

#: Environment variable read when no ``secret_key`` argument is given.
ENV_SECRET_KEY = "SITQ_SECRET_KEY"

#: The envelope header: a magic prefix and a version byte. No serializer's output starts so.
HEADER = b"sitq\x01"

#: Keys shorter than this are refused: a short key can be guessed offline from one payload.
MIN_KEY_BYTES = 16

_TAG_SIZE = hashlib.sha256().digest_size
_BODY_AT = len(HEADER) + _TAG_SIZE

SecretKey = str | bytes | Sequence[str | bytes]


def _key_bytes(key: object) -> bytes:
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, (bytes, bytearray)):
        raise ConfigurationError(
            f"secret_key must be a str or bytes (or a list of them, newest first), got "
            f"{type(key).__name__}"
        )
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"secret_key is {len(key)} bytes; use at least {MIN_KEY_BYTES} random bytes, e.g. "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return bytes(key)


class Signer:
    """Seals and opens payloads and results with an HMAC key (or passes them through).

    :param keys: the keys, newest first: the first signs, any of them verifies (to rotate a
        key, put the new one first, and drop the old one once no task signed with it is left).
        Empty: no signing (signed data is then refused, since it cannot be checked).
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[bytes] = ()) -> None:
        self._keys = tuple(keys)

    @classmethod
    def from_option(cls, secret_key: SecretKey | None) -> Signer:
        """Build from a ``secret_key`` argument; None reads ``$SITQ_SECRET_KEY`` (unset or
        empty: no signing)."""
        if secret_key is None:
            secret_key = os.environ.get(ENV_SECRET_KEY) or None
            if secret_key is None:
                return cls()
        if isinstance(secret_key, (str, bytes, bytearray)):
            return cls([_key_bytes(secret_key)])
        try:
            keys = [_key_bytes(k) for k in secret_key]
        except TypeError:
            raise ConfigurationError(
                f"secret_key must be a str or bytes (or a list of them, newest first), got "
                f"{type(secret_key).__name__}"
            ) from None
        if not keys:
            raise ConfigurationError("secret_key is an empty list; give at least one key")
        return cls(keys)

    @property
    def enabled(self) -> bool:
        """True when payloads are signed and checked."""
        return bool(self._keys)

    # -- payloads ----------------------------------------------------------------------------

    def seal_call(self, task_id: str, function: str, serializer: str, body: bytes) -> bytes:
        """The bytes to store for a task payload (``body`` unchanged without a key)."""
        if not self._keys:
            return body
        tag = _tag(self._keys[0], (b"call", task_id, function, serializer), body)
        return HEADER + tag + body

    def open_call(self, task_id: str, function: str, serializer: str, data: bytes) -> bytes:
        """The payload body, after checking its signature; `SignatureError` if it fails."""
        return self._open(data, (b"call", task_id, function, serializer), f"task {task_id}")

    # -- results -----------------------------------------------------------------------------

    def seal_result(self, task_id: str, body: bytes) -> bytes:
        """The bytes to store for a task's result (``body`` unchanged without a key)."""
        if not self._keys:
            return body
        return HEADER + _tag(self._keys[0], (b"result", task_id), body) + body

    def open_result(self, task_id: str, data: bytes | None) -> bytes | None:
        """The result body, after checking its signature (None stays None)."""
        if data is None:
            return None
        return self._open(data, (b"result", task_id), f"the result of task {task_id}")

    # -- checking ----------------------------------------------------------------------------

    def _open(self, data: bytes, fields: tuple[bytes | str, ...], what: str) -> bytes:
        signed = data[: len(HEADER)] == HEADER and len(data) >= _BODY_AT
        if not self._keys:
            if signed:
                raise SignatureError(
                    f"{what} is signed, and this process has no secret key to check it: set "
                    f"${ENV_SECRET_KEY} or pass secret_key= to the TaskQueue and Worker"
                )
            return data
        if not signed:
            raise SignatureError(
                f"{what} is not signed, and this process has a secret key: refused without "
                "decoding it (it was written without the key, or altered). Enqueue with the "
                "same secret_key as the worker."
            )
        body = memoryview(data)[_BODY_AT:]
        tag = data[len(HEADER) : _BODY_AT]
        for key in self._keys:
            if hmac.compare_digest(tag, _tag(key, fields, body)):
                return bytes(body)
        raise SignatureError(
            f"{what} has a bad signature: refused without decoding it (it was altered, moved "
            "from another task, or signed with another key)"
        )

    def __repr__(self) -> str:
        return f"<Signer {len(self._keys)} key(s)>" if self._keys else "<Signer off>"


def _tag(key: bytes, fields: tuple[bytes | str, ...], body: bytes | memoryview) -> bytes:
    """HMAC-SHA256 over length-prefixed ``fields`` and then ``body``."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for f in fields:
        raw = f.encode() if isinstance(f, str) else f
        mac.update(len(raw).to_bytes(4, "big"))
        mac.update(raw)
    mac.update(len(body).to_bytes(8, "big"))
    mac.update(body)
    return mac.digest()


__all__ = ["ENV_SECRET_KEY", "HEADER", "MIN_KEY_BYTES", "SecretKey", "Signer"]
