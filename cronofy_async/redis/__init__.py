"""
A rate budget and idempotency keys shared by every process and machine, on Redis.

>>> from cronofy_async.redis import RedisLedger, RedisLimiter

``pip install 'cronofy-async[redis]'`` brings redis-py. See `RedisLimiter` and `RedisLedger`.
"""

from .._errors import ConfigurationError

try:
    import redis.asyncio  # noqa: F401 - checked here, used by the limiter
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "cronofy_async.redis needs redis-py: pip install 'cronofy-async[redis]'"
    ) from exc

from .._public import publish
from ._ledger import RedisLedger
from ._limiter import DEFAULT_REDIS_TIMEOUT, RedisLimiter

__all__ = ["DEFAULT_REDIS_TIMEOUT", "RedisLedger", "RedisLimiter"]

publish(globals(), __all__, __name__)
