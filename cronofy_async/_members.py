"""
The Organizational Unit family (ALPHA): who can host, page by page.

``GET /v1/organizational_unit_members`` and ``GET /v1/organizational_unit_resources``, each
read to the end by an async iterator. Paging follows ``pages.next_page`` when Cronofy sends it,
else asks for ``page=current+1`` until ``current >= total``; the decision is `next_step`, a pure
function, so every rule below is tested without a network:

- a ``next_page`` link is followed only if it points at the same origin and endpoint as the
  base URL: the bearer token is never sent anywhere else (another link falls back to
  ``page=``);
- paging stops, with a warning logged, when a page comes again: the same items (not yielded
  twice), the same page number, or a link followed before; a server that repeats itself cannot
  loop the client forever. An empty page ends the listing too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import attrs
import httpx

from ._operation import Calls, Operation, _malformed, loads
from ._scheduling_models import ModelError, _mapping, _opt
from ._secret import ClientSecret

__all__ = [
    "MEMBERS_PATH",
    "RESOURCES_PATH",
    "Members",
    "OrganizationalUnitMember",
    "OrganizationalUnitResource",
    "Page",
    "list_operation",
    "next_step",
    "repeated",
    "resolve_link",
    "structure_member",
    "structure_resource",
]

logger: Final = logging.getLogger("cronofy_async")

MEMBERS_PATH: Final = "/v1/organizational_unit_members"
RESOURCES_PATH: Final = "/v1/organizational_unit_resources"

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class OrganizationalUnitMember:
    """
    An account of the Organizational Unit: someone who can host.

    ::

        async for member in api.iter_organizational_unit_members():
            if member.scheduler_enabled:
                print(member.sub, member.email, member.roles)
    """

    sub: str
    """The account's sub, ``acc_...``: what `Host` takes."""
    email: str | None = None
    """The account's email address."""
    roles: tuple[str, ...] = ()
    """``member``, ``developer``, ``developer_admin``, ``owner`` (or what else Cronofy sends)."""
    scheduler_enabled: bool | None = None
    """``scheduler.enabled``: whether the account may host through the Scheduler."""
    public_url: str | None = None
    """``scheduler.public_url``: the account's public scheduling page, if it has one."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """Every field Cronofy sent for this member."""


@attrs.frozen(kw_only=True)
class OrganizationalUnitResource:
    """
    A resource of the Organizational Unit (a room, a vehicle...), ``res_...``.

    ::

        async for resource in api.iter_organizational_unit_resources():
            print(resource.sub, resource.name)
    """

    sub: str
    """The resource's sub, ``res_...``."""
    email: str | None = None
    """The resource's email address."""
    name: str | None = None
    """The resource's name."""
    scheduler_enabled: bool | None = None
    """``scheduler.enabled``."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """Every field Cronofy sent for this resource."""


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a list, and where the next one is."""

    items: tuple[T, ...]
    current: int | None = None
    """``pages.current``, when sent."""
    total: int | None = None
    """``pages.total``, when sent."""
    next_page: str | None = None
    """``pages.next_page``, when sent: a URL."""
    keys: tuple[Hashable, ...] = ()
    """What identifies the page's items (their subs), to notice a page served twice."""


# -- reading ---------------------------------------------------------------------------------


def _sub(path: str, data: Mapping[str, Any]) -> str:
    sub = data.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ModelError(f"{path}.sub", "missing or not a string")
    return sub


def _scheduler(path: str, data: Mapping[str, Any]) -> Mapping[str, Any]:
    value = data.get("scheduler")
    return _EMPTY if value is None else _mapping(f"{path}.scheduler", value)


def structure_member(value: object, path: str) -> OrganizationalUnitMember:
    """Parse one member; raises `ModelError` naming a malformed field."""
    data = _mapping(path, value)
    roles = data.get("roles") or []
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise ModelError(f"{path}.roles", "expected a list of strings")
    scheduler = _scheduler(path, data)
    return OrganizationalUnitMember(
        sub=_sub(path, data),
        email=_opt(path, data, "email", str),
        roles=tuple(roles),
        scheduler_enabled=_opt(f"{path}.scheduler", scheduler, "enabled", bool),
        public_url=_opt(f"{path}.scheduler", scheduler, "public_url", str),
        raw=data,
    )


def structure_resource(value: object, path: str) -> OrganizationalUnitResource:
    """Parse one resource; raises `ModelError` naming a malformed field."""
    data = _mapping(path, value)
    scheduler = _scheduler(path, data)
    return OrganizationalUnitResource(
        sub=_sub(path, data),
        email=_opt(path, data, "email", str),
        name=_opt(path, data, "name", str),
        scheduler_enabled=_opt(f"{path}.scheduler", scheduler, "enabled", bool),
        raw=data,
    )


def structure_page(
    data: Mapping[str, Any], key: str, structure: Callable[[object, str], T]
) -> Page[T]:
    """Parse ``{key: [...], "pages": {...}}``; raises `ModelError` naming a malformed field."""
    items = data.get(key)
    if not isinstance(items, list):
        raise ModelError(key, "missing or not a list")
    parsed = tuple(structure(item, f"{key}[{i}]") for i, item in enumerate(items))
    pages = data.get("pages")
    page_data = _EMPTY if pages is None else _mapping("pages", pages)
    return Page(
        items=parsed,
        current=_opt("pages", page_data, "current", int),
        total=_opt("pages", page_data, "total", int),
        next_page=_opt("pages", page_data, "next_page", str),
        keys=tuple(getattr(item, "sub", None) for item in parsed),
    )


def _page_reader(
    key: str, structure: Callable[[object, str], T]
) -> Callable[[bytes, Callable[[], httpx.Response], ClientSecret | None], Page[T]]:
    def read(
        content: bytes, response: Callable[[], httpx.Response], secret: ClientSecret | None
    ) -> Page[T]:
        try:
            data = loads(content)
        except ValueError:
            data = None
        if not isinstance(data, Mapping):
            raise _malformed(
                "the body is not a JSON object", content, response, secret, processed=False
            )
        try:
            return structure_page(data, key, structure)
        except (TypeError, ValueError) as exc:
            raise _malformed(str(exc), content, response, secret, processed=False) from None

    return read


_READ_MEMBERS: Final = _page_reader("organizational_unit_members", structure_member)
_READ_RESOURCES: Final = _page_reader("organizational_unit_resources", structure_resource)


# -- paging ----------------------------------------------------------------------------------


def list_operation(
    path: str,
    read: Callable[[bytes, Callable[[], httpx.Response], ClientSecret | None], Page[T]],
    *,
    page: int | None = None,
    url: str | None = None,
) -> Operation[Page[T]]:
    """One ``GET`` of a list: the first page, ``page=N``, or a ``next_page`` URL."""
    return Operation(
        method="GET",
        path=path if page is None else f"{path}?page={page}",
        read=read,
        idempotent=True,
        mutates=False,
        url=url,
    )


def resolve_link(link: str, endpoint: str) -> str | None:
    """
    `link` as a full URL if it is `endpoint` (a full URL) with at most another query string.

    ``None`` for anything else: another scheme, host, port, user or path, or no URL at all.
    """
    try:
        here = httpx.URL(endpoint)
        target = here.join(link)
        # Raw, not decoded: decoding a hostile host name (IDNA) can itself raise.
        same = (
            target.scheme == here.scheme
            and target.raw_host.lower() == here.raw_host.lower()
            and target.port == here.port
            and target.userinfo == here.userinfo
            and target.path == here.path
        )
    except (httpx.InvalidURL, TypeError, ValueError):  # UnicodeError is a ValueError
        return None
    return str(target) if same else None


@attrs.define
class _Seen:
    """What a listing has asked for and been answered, to notice a loop."""

    pages: set[int] = attrs.Factory(set)
    links: set[str] = attrs.Factory(set)
    contents: set[tuple[Hashable, ...]] = attrs.Factory(set)


def repeated(page: Page[Any], *, endpoint: str, seen: _Seen) -> bool:
    """
    Whether `page` holds exactly the items of a page already read (recorded in `seen`).

    Its items are then not yielded again and the listing ends: a server that serves the same
    page forever would otherwise loop the client forever.
    """
    if page.items and page.keys in seen.contents:
        logger.warning("stopped paging %s: the server answered a page seen before", endpoint)
        return True
    seen.contents.add(page.keys)
    return False


def next_step(
    page: Page[Any], *, endpoint: str, seen: _Seen
) -> tuple[int | None, str | None] | None:
    """
    Where to go after `page`: ``(None, url)`` for a link, ``(n, None)`` for ``page=n``.

    ``None`` when the listing is over, or when going on could loop (a page number answered
    before, a link followed before). `endpoint` is the full URL of the list on the base URL;
    `seen` is updated.
    """
    if not page.items:
        return None
    if page.current is not None:
        if page.current in seen.pages:
            logger.warning("stopped paging %s: page %d came twice", endpoint, page.current)
            return None
        seen.pages.add(page.current)
    if page.next_page is not None:
        link = resolve_link(page.next_page, endpoint)
        if link is None:
            # Following it would send the bearer token to whoever the link names.
            # Nor is the link logged: a hostile server may have put anything in it.
            logger.warning("ignored pages.next_page: not %s on the base URL", endpoint)
        elif link in seen.links:
            logger.warning("stopped paging %s: next_page points at a page seen before", endpoint)
            return None
        else:
            seen.links.add(link)
            return None, link
    if page.current is None or page.total is None or page.current >= page.total:
        return None
    if page.current + 1 in seen.pages:
        logger.warning("stopped paging %s: page %d came before", endpoint, page.current + 1)
        return None
    return page.current + 1, None


class Members(Calls):
    """`AsyncSchedulerAPI`'s Organizational Unit calls."""

    __slots__ = ()

    _base_url: str

    def iter_organizational_unit_members(self) -> AsyncIterator[OrganizationalUnitMember]:
        """
        Every member of the Organizational Unit, over every page (an async iterator).

        ``GET /v1/organizational_unit_members``. Pages are fetched one at a time as you
        iterate; stop early and no more are asked for. Listing changes nothing, so 5xx and lost
        answers are retried by default and ``outcome_unknown`` is always ``False``::

            async for member in api.iter_organizational_unit_members():
                print(member.sub, member.email)
        """
        self._check_open()
        return self._pages(MEMBERS_PATH, _READ_MEMBERS)

    def iter_organizational_unit_resources(self) -> AsyncIterator[OrganizationalUnitResource]:
        """
        Every resource of the Organizational Unit, over every page (an async iterator).

        ``GET /v1/organizational_unit_resources``; paged and retried as
        `iter_organizational_unit_members`::

            rooms = [r async for r in api.iter_organizational_unit_resources()]
        """
        self._check_open()
        return self._pages(RESOURCES_PATH, _READ_RESOURCES)

    async def _pages(
        self,
        path: str,
        read: Callable[[bytes, Callable[[], httpx.Response], ClientSecret | None], Page[T]],
    ) -> AsyncIterator[T]:
        endpoint = self._base_url + path
        seen = _Seen(links={endpoint})  # a link back to the first page is a loop too
        operation = list_operation(path, read)
        while True:
            page = await self._call(operation)
            if repeated(page, endpoint=endpoint, seen=seen):
                return
            for item in page.items:
                yield item
            step = next_step(page, endpoint=endpoint, seen=seen)
            if step is None:
                return
            number, link = step
            operation = list_operation(path, read, page=number, url=link)
