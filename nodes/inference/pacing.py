"""When an engine that keeps several batches queued on its device asks for the next one.

Why: a Server batch should hold every query that arrived before the device could start it. Ask too
early (as soon as the previous batch is launched) and the next batch is sealed almost empty, then waits
a whole batch time on the device; ask only when the device is idle and it idles while the batch is
formed, copied and launched. ``Pacer`` predicts when the device will have finished what is queued on it
(from the device time it has measured per batch size) and asks ``lead`` earlier, ``lead`` being how long
it has measured from asking to launching. In Offline a full batch is always waiting, so the lead is
small and the device never idles.
"""

from __future__ import annotations

import itertools

__all__ = ["Pacer"]

SMOOTHING = 0.2
"""Weight of the newest measurement in the running averages: a few batches settle them."""


class Pacer:
    """One engine's model of its device queue. Call ``launched`` after each launch and ``finished`` with
    its token when that batch has run."""

    def __init__(self, margin_s: float = 0.0002) -> None:
        self.device_s: dict[int, float] = {}
        """Measured device time per batch-size key (the engine's bucket), smoothed."""
        self.lead_s = 0.0
        """Measured time from asking for a batch to having launched it, smoothed."""
        self.margin_s = margin_s
        self.busy_until = 0.0
        """When the device is predicted to finish everything launched so far."""
        self._queued: dict[int, tuple[int, float, float]] = {}  # token: (key, launched at, predicted)
        self._tokens = itertools.count()
        self._last_done = 0.0

    def estimate(self, key: int) -> float:
        """Device seconds for a batch of ``key``: measured, else scaled from the nearest measured key,
        else 0 (nothing known yet: ask at once, as an engine without pacing would)."""
        if key in self.device_s:
            return self.device_s[key]
        if not self.device_s:
            return 0.0
        nearest = min(self.device_s, key=lambda k: abs(k - key))
        return self.device_s[nearest] * key / nearest

    def ask_at(self) -> float:
        """perf_counter time at which to ask for the next batch."""
        return self.busy_until - self.lead_s - self.margin_s

    def launched(self, key: int, asked: float, now: float) -> int:
        """Record a launch of a batch of ``key`` asked for at ``asked``; returns its token."""
        self.lead_s += SMOOTHING * (max(0.0, now - asked) - self.lead_s)
        predicted = self.estimate(key)
        self.busy_until = max(now, self.busy_until) + predicted
        token = next(self._tokens)
        self._queued[token] = (key, now, predicted)
        return token

    def finished(self, token: int, now: float) -> None:
        key, launched_at, _ = self._queued.pop(token)
        # It started once launched and once the batch before it had finished, whichever was later.
        took = now - max(launched_at, self._last_done)
        self._last_done = max(self._last_done, now)
        old = self.device_s.get(key)
        self.device_s[key] = took if old is None else old + SMOOTHING * (took - old)
        self.busy_until = now + sum(predicted for _, _, predicted in self._queued.values())
