"""
httpcore's connection pool, with the request-to-connection assignment fixed for bursts.

httpcore 1.0's pool re-runs ``_assign_requests_to_connections`` whenever a request enters or a
response is closed, and that pass costs a lot under concurrency (profiled on a batch at 10 in
flight, 3,200 creates):

- it hands *the same* idle connection to every request queued in one pass, because handing it
  out does not make it busy until its request's task runs. All but one then fail with
  ``ConnectionNotAvailable`` inside httpcore, are re-queued and run the pass again: two to three
  extra passes per request, more when requests arrive in bursts (as a batch sends them);
- each pass checks every idle connection's socket for a server-side close (``getpeername`` and
  ``poll`` system calls each), and counts idle connections once per connection (quadratic).

This pool keeps httpcore's connections, its request handling and its exceptions (so ``respx``,
which patches ``AsyncConnectionPool.handle_async_request``, still intercepts it) and only
replaces that pass: a connection promised to a request is not promised again, a connection's
socket is checked when it is about to be handed out, and idle connections are swept for expiry
at most once a second.
"""

from __future__ import annotations

import time
from typing import Final

import httpcore
import httpx

__all__ = ["LeanConnectionPool", "lean_transport"]

SWEEP_INTERVAL: Final = 1.0
"""Seconds between checks of every idle connection for keep-alive expiry or a server close."""


class LeanConnectionPool(httpcore.AsyncConnectionPool):
    """An ``httpcore.AsyncConnectionPool`` whose assignment pass is linear and never doubles."""

    _next_sweep: float = 0.0

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        connections = self._connections
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            for connection in list(connections):
                if connection.is_closed():
                    connections.remove(connection)
                elif connection.has_expired():
                    connections.remove(connection)
                    closing.append(connection)
        else:
            connections[:] = [c for c in connections if not c.is_closed()]

        # A connection handed to a request stays idle until that request's task runs: it must
        # not be handed to another request in the meantime.
        promised = {id(r.connection) for r in self._requests if r.connection is not None}
        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            chosen = None
            for connection in list(connections):
                if (
                    id(connection) in promised
                    or not connection.can_handle_request(origin)
                    or not connection.is_available()
                ):
                    continue
                if connection.has_expired():  # the server closed it while it was idle
                    connections.remove(connection)
                    closing.append(connection)
                    continue
                chosen = connection
                break
            if chosen is None:
                if len(connections) >= self._max_connections:
                    spare = next(
                        (c for c in connections if c.is_idle() and id(c) not in promised), None
                    )
                    if spare is None:
                        continue  # stays queued until a connection is released
                    connections.remove(spare)
                    closing.append(spare)
                chosen = self.create_connection(origin)
                connections.append(chosen)
            pool_request.assign_to_connection(chosen)
            promised.add(id(chosen))

        idle = [c for c in connections if c.is_idle() and id(c) not in promised]
        for connection in idle[self._max_keepalive_connections :]:
            connections.remove(connection)
            closing.append(connection)
        return closing


def lean_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An ``httpx.AsyncHTTPTransport`` (TLS as httpx sets it up) over a `LeanConnectionPool`."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    stock = transport._pool
    transport._pool = LeanConnectionPool(
        ssl_context=stock._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
    )
    return transport
