r"""
One large batch of invites sent by N worker processes on N machines, through Redis.

A producer records every invite in Redis and enqueues its id on a taskiq queue (a Redis
stream: acknowledged delivery, redelivered if a worker dies); workers share one
`RedisLimiter`, so together they keep Cronofy's rate limit, and one `RedisLedger`, under which
each invite is created with its id as the idempotency key: sent at most once, and reported
``unknown`` when a worker died while sending it. See docs/scale-out.md.

    python -m examples.distributed produce --redis-url redis://HOST:6379/0 people.csv \
        --host acc_HOST_SUB --summary "Intro call"
    CRONOFY_CLIENT_SECRET=... python -m examples.distributed worker --redis-url ...  # xN
    python -m examples.distributed report --redis-url redis://HOST:6379/0
"""
