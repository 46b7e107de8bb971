"""Messages between the parent and a shard: length-prefixed pickles over a Unix socket, on asyncio streams.

Why not a shared-memory ring: what crosses is small (an index batch is two int64 arrays; its answers
two more), so a copy costs less than the synchronisation a ring needs, and a socket gives three things
for free that a ring must build: the reader sleeps in the event loop until data comes (no polling), the
kernel's buffer bounds what is in flight, and a shard that dies closes its end, so the parent reads EOF
at once. ``bench/scale.py transport`` measures the round trip. Backpressure is the pool's credit
(requests in flight per shard), not the socket's buffer.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

__all__ = ["Link", "LinkClosed"]

_HEADER = struct.Struct("!Q")


class LinkClosed(ConnectionError):
    """The other end closed the link (or its process died)."""


class Link:
    """One end of a parent ↔ shard link: ``send`` a message, ``receive`` the next one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def connect(cls, path: str) -> Link:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 24)
        return cls(reader, writer)

    async def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=5)
        self._writer.write(_HEADER.pack(len(data)) + data)
        await self._writer.drain()

    async def receive(self) -> Any:
        try:
            header = await self._reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            return pickle.loads(await self._reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            raise LinkClosed("the other end closed the link") from exc

    def close(self) -> None:
        self._writer.close()
