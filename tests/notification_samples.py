"""Shared test data for push notifications: the documented body, the docs' test vector."""

from __future__ import annotations

import json
from typing import Any

# Cronofy's docs' test vector for Cronofy-HMAC-SHA256.
VECTOR_SECRET = "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID"
VECTOR_BODY = b'{"example":"well-known"}'
VECTOR_HEADER = "5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0="

SECRET = "CRN_test_notification_secret_value"
PHONE = "+44 7700 900123"
EMAIL = "marty@evenitron.com"


def documented_body(**notification: Any) -> dict[str, Any]:
    """The one body Cronofy documents, with its placeholders filled in."""
    return {
        "notification": {
            "type": "scheduling_request_time_chosen",
            "triggered_at": "2025-01-19T16:14:11Z",
            **notification,
        },
        "scheduling_request": {
            "scheduling_request_id": "srq_6789",
            "slot_selection": "complete",
            "primary_select_url": "https://app.cronofy.com/r/abc",
            "dashboard_url": "https://app.cronofy.com/scheduling_requests/srq_6789",
            "recipient_operations": {
                "view_url": "https://app.cronofy.com/v/1",
                "decline_url": "https://app.cronofy.com/d/1",
                "reschedule_url": "https://app.cronofy.com/rs/1",
            },
            "summary": "Driving lessons - Marty & Doc",
            "duration": {"minutes": 30},
            "recipients": [{"email": EMAIL, "display_name": "Marty McFly", "slot_selector": True}],
            "event": {
                "summary": "Driving lessons - Marty & Doc",
                "metadata": {
                    "scheduler": {
                        "correlation_id": "foobar",
                        "utm_medium": "email",
                        "utm_source": "newsletter",
                        "utm_campaign": "spring",
                        "captured_data.phone_number": PHONE,
                        "captured_data.notes": "Bring the DeLorean",
                    }
                },
            },
        },
    }


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()
