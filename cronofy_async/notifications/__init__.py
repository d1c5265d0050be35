"""
Cronofy's push notifications, received safely by async services and bots.

>>> from cronofy_async.notifications import NotificationReceiver, Notification, TIME_CHOSEN
>>> async def on_notification(notification: Notification) -> None:
...     if notification.type == TIME_CHOSEN:
...         print("booked:", notification.correlation_id)
>>> app = NotificationReceiver("my_client_secret", on_notification)  # an ASGI application

`verify_signature` and `parse_notification` are the two steps it takes, for use on their own;
`add_link_metadata` puts your record's id on a select URL so the notification names it.
"""

from .._errors import NotificationError
from .._public import publish
from ._links import LINK_METADATA_KEYS, MAX_LINK_METADATA_LENGTH, add_link_metadata
from ._notification import TIME_CHOSEN, Notification, parse_notification
from ._receiver import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_SIZE, Handler, NotificationReceiver
from ._signature import HEADER, Secrets, signature_header, verify_signature

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "HEADER",
    "LINK_METADATA_KEYS",
    "MAX_LINK_METADATA_LENGTH",
    "TIME_CHOSEN",
    "Handler",
    "Notification",
    "NotificationError",
    "NotificationReceiver",
    "Secrets",
    "add_link_metadata",
    "parse_notification",
    "signature_header",
    "verify_signature",
]

publish(globals(), __all__, __name__)
