"""Reconnection pacing toward the CSMS: OCPP-J's randomised doubling back-off and a shared token bucket.

Rules
- Pure arithmetic: time and randomness are arguments (`now` in monotonic seconds, `random_fraction` drawn
  by the caller from [0, 1)).
- `BackoffPolicy.delay` follows OCPP 2.0.1 part 4 §5.3: the first reconnection waits RetryBackOffWaitMinimum
  plus a random part up to RetryBackOffRandomRange; each failed attempt doubles the previous (non-random)
  wait, at most RetryBackOffRepeatTimes times, and every attempt draws a new random part.
- `TokenBucket` paces connection attempts across all stations of one bridge, so a CSMS restart does not turn
  into a connection storm: `rate` attempts per second on average, `burst` at once after a quiet period.
  Reservations may run into the future (the bucket goes negative), so concurrent callers are served in
  order of reservation, each with its own wait; a random jitter of up to one slot spreads them further.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    wait_minimum: float = 3.0  # RetryBackOffWaitMinimum, seconds
    random_range: float = 10.0  # RetryBackOffRandomRange, seconds
    repeat_times: int = 5  # RetryBackOffRepeatTimes

    def delay(self, attempt: int, random_fraction: float) -> float:
        """Seconds to wait before reconnection attempt `attempt` (0 is the first after a loss)."""
        doublings = min(max(attempt, 0), self.repeat_times)
        return self.wait_minimum * float(1 << doublings) + random_fraction * self.random_range


class TokenBucket:
    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def reserve(self, now: float, random_fraction: float = 0.0) -> float:
        """Take one token; the seconds to wait before using it (0 when one is available now)."""
        elapsed = max(now - self._updated, 0.0)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._updated = now
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return 0.0
        return (-self._tokens + random_fraction) / self._rate
