"""
The Organizational Unit family (ALPHA): who can host, page by page.

``GET /v1/organizational_unit_members`` and ``GET /v1/organizational_unit_resources``, each
read to the end by an async iterator. Paging follows ``pages.next_page`` when Cronofy sends it
(``<list path>/pages/<token>``, as Read Events documents), else asks for ``page=current+1``
until ``current >= total``. The decisions are pure functions (`resolve_link`, `fresh_items`,
`next_step`), so every rule below is tested without a network:

- a ``next_page`` link is followed only if it is on the base URL's origin (scheme, host, port,
  user) and its path is the list's path or below it: the bearer token is never sent anywhere
  else;
- a listing that cannot reach its last page raises `PaginationError` once every item it could
  read was yielded, naming how many and why (a refused link, a page or link that comes again,
  an empty page that claims more): it never ends silently early, never loops, and never
  yields an item twice. It ends quietly only when the server says it is over.
"""

from __future__ import annotations

import logging
import re
import string
import urllib.parse
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import attrs
import httpx

from ._errors import PaginationError
from ._operation import Calls, Operation, _malformed, loads
from ._scheduling_models import ModelError, _mapping, _opt
from ._secret import ClientSecret

__all__ = [
    "MAX_PAGES",
    "MEMBERS_PATH",
    "RESOURCES_PATH",
    "Members",
    "OrganizationalUnitMember",
    "OrganizationalUnitResource",
    "Page",
    "fresh_items",
    "list_operation",
    "next_step",
    "resolve_link",
    "structure_member",
    "structure_resource",
]

logger: Final = logging.getLogger("cronofy_async")

MEMBERS_PATH: Final = "/v1/organizational_unit_members"
RESOURCES_PATH: Final = "/v1/organizational_unit_resources"
_LIST_NAMES: Final = {
    MEMBERS_PATH: "iter_organizational_unit_members",
    RESOURCES_PATH: "iter_organizational_unit_resources",
}

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
        name=_LIST_NAMES.get(path, "list"),
        method="GET",
        path=path if page is None else f"{path}?page={page}",
        read=read,
        idempotent=True,
        mutates=False,
        url=url,
    )


def resolve_link(link: str, endpoint: str) -> str | None:
    """
    `link` as a full URL if it is `endpoint` (a full URL), or a path below it, on its origin.

    Cronofy's ``next_page`` is the list's own path with ``/pages/<token>`` below it. Any
    query string is kept; a fragment is dropped (it never reaches the server, so two links
    apart only by one are the same page). ``None`` for anything else: another scheme, host,
    port or user, a path outside the list's (``..`` segments are resolved first, and an
    encoded ``.``, ``..``, ``/`` or backslash in a segment is refused rather than guessed at),
    or no URL at all::

        >>> resolve_link("/v1/members/pages/08a07b03", "https://api.cronofy.com/v1/members")
        'https://api.cronofy.com/v1/members/pages/08a07b03'
        >>> resolve_link("//evil.example/v1/members", "https://api.cronofy.com/v1/members")
    """
    try:
        here = httpx.URL(endpoint)
        target = here.join(link).copy_with(fragment=None)
        # Raw, not decoded: decoding a hostile host name (IDNA) can itself raise.
        same_origin = (
            target.scheme == here.scheme
            and target.raw_host.lower() == here.raw_host.lower()
            and target.port == here.port
            and target.userinfo == here.userinfo
        )
        # Raw both ways: the raw path is what is sent, and /v1%2F... decodes to /v1/... but
        # may be routed elsewhere.
        path, parent = _raw_path(target), _raw_path(here)
        below = path == parent or _below(path, parent)
    except (httpx.InvalidURL, TypeError, ValueError):  # UnicodeError is a ValueError
        return None
    return str(target) if same_origin and below else None


def _raw_path(url: httpx.URL) -> bytes:
    return url.raw_path.partition(b"?")[0]


def _below(path: bytes, parent: bytes) -> bool:
    """
    Whether `path` is `parent` + ``/`` + segments, none of which can climb or split.

    A segment is refused when, decoded, it holds a ``/`` or backslash, or its part before any
    ``;`` is empty, ``.`` or ``..``: servers that strip ``;parameters`` (Tomcat, Spring) read
    ``..;x`` as ``..``. One trailing slash after a segment is allowed (``/pages/<token>/``).
    """
    prefix = parent.rstrip(b"/") + b"/"
    if not path.startswith(prefix):
        return False
    segments = path[len(prefix) :].split(b"/")
    if len(segments) > 1 and segments[-1] == b"":
        segments.pop()
    for segment in segments:
        decoded = urllib.parse.unquote_to_bytes(segment)
        if decoded.partition(b";")[0] in (b"", b".", b"..") or b"/" in decoded or b"\\" in decoded:
            return False
    return True


MAX_PAGES: Final = 10_000
"""The most pages one listing reads: a server that never ends a list cannot hold a caller."""


_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")


def _link_key(link: str) -> str:
    """
    `link` spelled as every equivalent of it is (RFC 3986, 6.2.2), to notice a link come again.

    An escaped unreserved character is decoded and any other escape upper-cased: the server
    reads ``/pages/%74`` as ``/pages/t``, so a loop spelled both ways is still a loop. The key
    is only compared; what is followed is the link as sent.
    """

    def spell(escape: re.Match[str]) -> str:
        char = chr(int(escape.group(1), 16))
        return char if char in _UNRESERVED else escape.group(0).upper()

    return _ESCAPE.sub(spell, link)


@attrs.frozen
class _Stop:
    """
    Why a listing cannot go on before its last page: a `PaginationError`'s reason and detail.

    A value, not an exception: one raised and caught would hold, in its traceback, the frames
    that read the page, and so the link a hostile server put in it, for anything that chains
    or prints it.
    """

    reason: str
    detail: str


Step = tuple[int | None, str | None]
"""Where the next page is: ``(None, url)`` for a link, ``(n, None)`` for ``page=n``."""


@attrs.define
class _Seen:
    """What a listing has asked for and been answered, to notice a loop."""

    pages: set[int] = attrs.Factory(set)
    links: set[str] = attrs.Factory(set)
    """Every link followed (and the list's own URL), as `_link_key` spells it."""
    keys: set[Hashable] = attrs.Factory(set)
    read: int = 0
    """How many pages were read."""


def _current(page: Page[Any], seen: _Seen) -> int:
    """`page`'s number: ``pages.current``, or else how many pages were read, `page` included."""
    return seen.read if page.current is None else page.current


def _ended(page: Page[Any], seen: _Seen) -> bool:
    """Whether the server says the list ends with `page`: nothing after it is left unread."""
    if page.total is not None:
        return _current(page, seen) >= page.total
    return page.next_page is None


def fresh_items(page: Page[T], *, seen: _Seen) -> tuple[list[T], _Stop | None]:
    """
    The items of `page` not yielded before (recorded in `seen`), in order, and any `_Stop`.

    A stop when the page comes again (its number was answered before, or every one of its
    items was yielded already) and it is not the last page: a server that serves the same
    page forever would otherwise loop the client forever. The fresh items of such a page are
    still returned, to be yielded before the stop; an item is never yielded twice.
    """
    seen.read += 1
    if seen.read > MAX_PAGES:
        return [], _Stop("too_many_pages", f"more than {MAX_PAGES} pages")
    fresh = []
    for item, key in zip(page.items, page.keys, strict=True):
        if key not in seen.keys:
            seen.keys.add(key)
            fresh.append(item)
    if _ended(page, seen):
        # A list that shifted while it was read may end on items listed before, or on a
        # number it used before: nothing is missing once the server says it is over.
        return fresh, None
    if page.current is not None:
        if page.current in seen.pages:
            return fresh, _Stop("repeated_page", f"page {page.current} came twice")
        seen.pages.add(page.current)
    if page.items and not fresh:
        return fresh, _Stop(
            "repeated_page", "a page came again: every item on it was listed before"
        )
    return fresh, None


def next_step(page: Page[Any], *, endpoint: str, seen: _Seen) -> Step | _Stop | None:
    """
    Where to go after `page`: a `Step`, or a `_Stop` when the listing cannot go on.

    ``None`` when the listing really ended (``current >= total``, or no ``next_page`` and no
    ``total`` beyond ``current``; without ``current``, the pages read so far stand for it).
    A `_Stop` when it did not but cannot go on: a refused link, a link followed before, a page
    number answered before, or an empty page that claims more. `endpoint` is the full URL of
    the list on the base URL; `seen` is updated, and counts `page` as read.
    """
    if _ended(page, seen):
        return None
    if not page.items:
        return _Stop("empty_page", "an empty page claimed more pages after it")
    if page.next_page is not None:
        link = resolve_link(page.next_page, endpoint)
        if link is None:
            # Following it would send the bearer token to whoever the link names. Nor is the
            # link quoted: a hostile server may have put anything in it.
            return _Stop(
                "refused_link", "pages.next_page is not below the list's path on the base URL"
            )
        key = _link_key(link)
        if key in seen.links:
            return _Stop("link_loop", "pages.next_page points at a page read before")
        seen.links.add(key)
        return None, link
    # Not ended and no link, so a total is beyond the current page: ask for the next number.
    following = _current(page, seen) + 1
    if following in seen.pages:
        return _Stop("repeated_page", f"page {following} came before")
    return following, None


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
        seen = _Seen(links={_link_key(endpoint)})  # a link back to the first page is a loop too
        operation = list_operation(path, read)
        yielded = 0
        while True:
            page = await self._call(operation)
            fresh, stop = fresh_items(page, seen=seen)
            step = next_step(page, endpoint=endpoint, seen=seen) if stop is None else None
            # The page may carry a hostile link: gone before anything is yielded or raised, it
            # is in no traceback's locals (nor is the refused link anywhere else).
            del page
            for item in fresh:
                yield item
                yielded += 1
            if isinstance(step, _Stop):
                stop, step = step, None
            if stop is not None:
                raise _pagination_error(
                    operation.name, path, stop, yielded=yielded, pages=seen.read
                )
            if step is None:
                return
            number, link = step
            operation = list_operation(path, read, page=number, url=link)


def _pagination_error(
    name: str, path: str, stop: _Stop, *, yielded: int, pages: int
) -> PaginationError:
    read = f"{_count(yielded, 'item')} on {_count(pages, 'page')}"
    # Named like every other line of the logger: the call (GET path), then what happened.
    logger.warning("%s (GET %s): stopped listing after %s: %s", name, path, read, stop.detail)
    return PaginationError(
        f"listing {path} stopped after {read}, before its last page: {stop.detail}",
        path=path,
        reason=stop.reason,
        yielded=yielded,
        pages=pages,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
