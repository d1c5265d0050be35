"""
The cattrs converter that turns payload builders into JSON bodies.

Unstructuring omits unset optional fields (Cronofy's example bodies carry no nulls) and merges
each builder's ``extra`` mapping in. Responses are read by each model's module, by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ._payload import Event, GroupRule, Host, NewSchedulerRequest, Recipient

__all__ = [
    "converter",
    "unstructure_event",
    "unstructure_payload",
]

converter = cattrs.Converter(unstruct_collection_overrides={tuple: list})


def _with_extra(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    base = make_dict_unstructure_fn(
        cls, converter, _cattrs_omit_if_default=True, extra=override(omit=True)
    )

    order = [a.name for a in attrs.fields(cls) if a.name != "extra"]

    def unstructure(obj: Any) -> dict[str, Any]:
        # cattrs puts omitted-if-default fields last; keep the class's order, which is Cronofy's
        # (host first), so a logged body reads like the documentation's example.
        generated = base(obj)
        body = {name: generated[name] for name in order if name in generated}
        if obj.extra:
            body.update(obj.extra)
        return body

    return unstructure


def unstructure_event(event: Event) -> dict[str, Any]:
    """``event`` as Cronofy documents it: nested ``location`` and ``duration``, then `extra`."""
    body: dict[str, Any] = {"summary": event.summary}
    if event.description is not None:
        body["description"] = event.description
    if event.location is not None:
        body["location"] = {"description": event.location}
    if event.duration_minutes is not None:
        body["duration"] = {"minutes": event.duration_minutes}
    if event.locale is not None:
        body["locale"] = event.locale
    body.update(event.extra)
    return body


# Leaves first: the request's generated function looks up its fields' hooks when it is made.
converter.register_unstructure_hook(Host, make_dict_unstructure_fn(Host, converter))
converter.register_unstructure_hook(GroupRule, make_dict_unstructure_fn(GroupRule, converter))
converter.register_unstructure_hook(Recipient, _with_extra(Recipient))
converter.register_unstructure_hook(Event, unstructure_event)
converter.register_unstructure_hook(NewSchedulerRequest, _with_extra(NewSchedulerRequest))


def unstructure_payload(request: NewSchedulerRequest) -> dict[str, Any]:
    """The JSON-ready body for a create."""
    body: dict[str, Any] = converter.unstructure(request, NewSchedulerRequest)
    return body
