"""Faults the fake Cronofy can inject, seeded so a run can be reproduced."""

from __future__ import annotations

import enum
import hashlib
import random
from typing import Any

import attrs

from .._errors import ConfigurationError

__all__ = ["Fault", "Faults"]


class Fault(enum.Enum):
    """One way a request can go wrong, and whether the invite exists afterwards."""

    RATE_LIMITED = "rate_limited"
    """429 (with ``Retry-After`` unless the fake was made with ``retry_after=False``)."""
    UNAVAILABLE = "unavailable"
    """503 before processing; not processed."""
    DROP_BEFORE = "drop_before"
    """
    The connection is closed before processing, without a byte of an answer; not processed
    (though a client cannot tell: for it, the outcome is unknown).
    """
    ERROR_AFTER_CREATE = "error_after_create"
    """500 after the request was recorded as created: the invite exists."""
    DROP_AFTER = "drop_after"
    """The connection is dropped after processing: the invite exists."""
    SLOW = "slow"
    """Processed, then answered only after `Faults.slow_seconds`: trips a read timeout."""

    @property
    def processed(self) -> bool:
        """Whether the invite is created when this fault strikes."""
        return self in _PROCESSED


_PROCESSED = frozenset({Fault.ERROR_AFTER_CREATE, Fault.DROP_AFTER, Fault.SLOW})


def _probability(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ConfigurationError(
            f"Faults.{attribute.name} must be a probability from 0 to 1, got {value!r}"
        )


def _seconds(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"Faults.{attribute.name} must be seconds >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Faults:
    """
    Random faults, as a probability per request for each kind.

    Which fault strikes a request depends only on `seed`, the request's body and how many times
    that same body was sent before, not on the order in which concurrent requests arrive: the
    same run reproduces the same faults, and a retried request draws afresh.

    >>> Faults(seed=7, rate_limited=0.1, drop_after=0.05)  # doctest: +ELLIPSIS
    Faults(seed=7, latency=0.0, rate_limited=0.1, unavailable=0.0, drop_before=0.0, ...)
    """

    seed: int = 0
    """The seed; change it for another reproducible run."""
    latency: float = attrs.field(default=0.0, validator=_seconds)
    """Seconds added before every answer."""
    rate_limited: float = attrs.field(default=0.0, validator=_probability)
    """Probability of a 429 (not processed)."""
    unavailable: float = attrs.field(default=0.0, validator=_probability)
    """Probability of a 503 before processing."""
    drop_before: float = attrs.field(default=0.0, validator=_probability)
    """Probability of a connection dropped before processing."""
    error_after_create: float = attrs.field(default=0.0, validator=_probability)
    """Probability of a 500 after the invite was created."""
    drop_after: float = attrs.field(default=0.0, validator=_probability)
    """Probability of a connection dropped after the invite was created."""
    slow: float = attrs.field(default=0.0, validator=_probability)
    """Probability of a processed request answered after `slow_seconds`."""
    slow_seconds: float = attrs.field(default=35.0, validator=_seconds)
    """How late a slow answer comes (past the client's default 30 s read timeout)."""
    retry_after: float = attrs.field(default=1.0, validator=_seconds)
    """The ``Retry-After`` of an injected 429, in seconds."""

    def __attrs_post_init__(self) -> None:
        if sum(p for _, p in self._table()) > 1:
            raise ConfigurationError("the fault probabilities add up to more than 1")

    def _table(self) -> list[tuple[Fault, float]]:
        return [
            (Fault.RATE_LIMITED, self.rate_limited),
            (Fault.UNAVAILABLE, self.unavailable),
            (Fault.DROP_BEFORE, self.drop_before),
            (Fault.ERROR_AFTER_CREATE, self.error_after_create),
            (Fault.DROP_AFTER, self.drop_after),
            (Fault.SLOW, self.slow),
        ]

    @property
    def any(self) -> bool:
        """Whether any random fault can strike."""
        return any(p > 0 for _, p in self._table())

    def draw(self, body: bytes, occurrence: int) -> Fault | None:
        """The fault for the `occurrence`-th sending (0-based) of `body`, or ``None``."""
        digest = hashlib.blake2b(body, digest_size=16, key=str(self.seed).encode()[:64])
        roll = random.Random(f"{digest.hexdigest()}:{occurrence}").random()  # noqa: S311
        for fault, probability in self._table():
            if roll < probability:
                return fault
            roll -= probability
        return None
