"""
The cattrs converter that turns payload builders into JSON bodies and JSON into models.

Unstructuring omits unset optional fields (Cronofy's example bodies carry no nulls) and merges
each builder's ``extra`` mapping in. Structuring is tolerant: unknown keys are ignored by the
model and kept in its ``raw`` mapping, but a missing or mistyped field Cronofy documents is an
error, never a silent ``"None"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._models import ScheduledRecipient, SchedulerRequest
from ._payload import Event, GroupRule, Host, NewSchedulerRequest, Recipient

__all__ = [
    "converter",
    "structure_scheduler_request",
    "unstructure_event",
    "unstructure_payload",
]

T = TypeVar("T")

converter = cattrs.Converter(unstruct_collection_overrides={tuple: list})


def _strict_str(value: Any, _type: type) -> str:
    # cattrs' default would turn None or 42 into "None" / "42"; a malformed response must fail.
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


converter.register_structure_hook(str, _strict_str)


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


def _keeping_raw(cls: type[T]) -> Callable[[Mapping[str, Any], Any], T]:
    base = make_dict_structure_fn(cls, converter, raw=override(omit=True))

    def structure(data: Mapping[str, Any], _type: Any) -> T:
        if not isinstance(data, Mapping):
            raise TypeError(f"expected an object, got {type(data).__name__}")
        return attrs.evolve(base(data, cls), raw=data)  # type: ignore[misc]

    return structure


converter.register_structure_hook(ScheduledRecipient, _keeping_raw(ScheduledRecipient))
converter.register_structure_hook(SchedulerRequest, _keeping_raw(SchedulerRequest))


def unstructure_payload(request: NewSchedulerRequest) -> dict[str, Any]:
    """The JSON-ready body for a create."""
    body: dict[str, Any] = converter.unstructure(request, NewSchedulerRequest)
    return body


def structure_scheduler_request(data: Any) -> SchedulerRequest:
    """Parse the ``scheduler_request`` object; raises ``TypeError`` naming a malformed field."""
    try:
        return converter.structure(data, SchedulerRequest)
    except cattrs.ClassValidationError as exc:
        problems = cattrs.transform_error(exc, path="scheduler_request")
        raise TypeError("; ".join(problems)) from None
    except TypeError as exc:
        raise TypeError(f"scheduler_request is malformed: {exc}") from None
