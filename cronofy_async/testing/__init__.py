"""
A fake Cronofy for tests, demos and benchmarks.

>>> from cronofy_async.testing import FakeCronofy, Fault, Faults
>>> fake = FakeCronofy(members=["acc_1"], faults=Faults(seed=1, rate_limited=0.1))

With a ``notification_url``, ``fake.select_slot(...)`` also POSTs the signed push notification
Cronofy sends when a time is chosen; `NotificationFaults` makes it misdeliver, and each POST is
recorded as a `Delivery` in ``fake.notifications``.

Serving it over TCP (``fake.serve()``, the ``fake-server`` command) needs the ``testing``
extra: ``pip install 'cronofy-async[testing]'``.
"""

from .._public import publish
from ._fake import DEFAULT_SECRET, CreatedRequest, FakeCronofy, InProcessTransport
from ._fake_scheduling import FakeSelectionRule, SchedulingEntry
from ._faults import Fault, Faults
from ._notify import Delivery, NotificationFaults

__all__ = [
    "DEFAULT_SECRET",
    "CreatedRequest",
    "Delivery",
    "FakeCronofy",
    "FakeSelectionRule",
    "Fault",
    "Faults",
    "InProcessTransport",
    "NotificationFaults",
    "SchedulingEntry",
]

publish(globals(), __all__, __name__)
