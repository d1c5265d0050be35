"""
`build_server`: the MCP server's tools over one `AsyncSchedulerAPI`.

Each tool is a thin layer: `_tools` turns its arguments into a request and the answer into
JSON, the API object sends it (pacing, the 429 pause, retries, the idempotency ledger), and
any exception becomes a tool error of one sentence (`_tools.explain`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Annotated, Any, Final, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import Field
from pydantic import ValidationError as SchemaError
from typing_extensions import TypedDict

from .._client import AsyncSchedulerAPI
from .._errors import PayloadError
from .._secret import ClientSecret
from .._version import __version__
from ._keys import send_invite
from ._tools import (
    ArgumentError,
    HostEntry,
    Invite,
    InviteStatus,
    RuleAnswer,
    explain,
    given_id,
    given_key,
    holding_no_secret,
    host_answer,
    invite_request,
    invite_status,
    rule_answer,
    schema_error,
    unknown_arguments,
)

__all__ = ["INSTRUCTIONS", "build_server"]

_log = logging.getLogger("cronofy_async.mcp")
T = TypeVar("T")

INSTRUCTIONS: Final = (
    "Schedules meetings through Cronofy's Scheduler API. list_hosts finds who can host; "
    "create_invite sends one person a link to pick a slot in a host's calendar (or a "
    "selection rule's) and answers its select_url; get_invites says whether they picked; "
    "cancel_invite withdraws one. A retried create_invite with the same arguments never "
    "invites twice: it answers the first invite with replayed: true."
)

MAX_HOSTS: Final = 1000
MAX_IDS: Final = 50


class Hosts(TypedDict):
    """`list_hosts`' answer."""

    hosts: list[HostEntry]
    more: bool


class Invites(TypedDict):
    """`get_invites`' answer."""

    invites: list[InviteStatus]
    not_found: list[str]


class Cancelled(TypedDict):
    """`cancel_invite`'s answer."""

    scheduling_request_id: str
    cancelled: bool


class _RefusalError(ToolError):
    """A tool of ours failed: `sentence` is all the agent is told."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


async def _answer(tool: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except ToolError:
        raise
    except Exception as exc:  # every failure is an answer the agent reads, never a traceback
        message = explain(exc, tool=tool)
        # The kind only: the sentence may quote an email (personal data), and a traceback's
        # locals hold every argument. An agent's slip in its arguments is no operator's
        # concern: INFO; what Cronofy or the ledger did is: WARNING.
        slip = isinstance(exc, ArgumentError | PayloadError)
        _log.log(
            logging.INFO if slip else logging.WARNING, "%s failed: %s", tool, type(exc).__name__
        )
        raise _RefusalError(message) from None


def _refusal(tool: str, error: ToolError) -> str | None:
    cause = error.__cause__
    if isinstance(cause, SchemaError):
        _log.info("%s refused its arguments", tool)
        problems = [(tuple(e["loc"]), e["type"], e["msg"]) for e in cause.errors()]
        return schema_error(tool, problems)
    for found in (error, cause):
        if isinstance(found, _RefusalError):
            return found.sentence
    return None


TOOLS: Final = frozenset(
    {"list_hosts", "create_invite", "get_invites", "cancel_invite", "show_selection_rule"}
)


def _tool_error(sentence: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=sentence)], is_error=True)


class _Server(MCPServer[Any]):
    """
    The SDK's server, answering our tools' failures itself.

    The SDK would prefix them, quote pydantic's report (which holds every value given, an
    email or a pasted secret) and log their text at INFO; here each is one sentence, sent
    as a tool error and logged by its kind only.
    """

    secret: ClientSecret | None
    """The API's client secret: an argument's name holding it is never repeated."""
    ours: dict[str, object]
    """Our tools, as registered: a user's tool of the same name keeps the SDK's handling."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        mine = tool is not None and self.ours.get(name) is tool
        if mine and isinstance(arguments, dict):
            known = tool.parameters.get("properties", {}) if tool is not None else {}
            unknown = sorted(key for key in arguments if key not in known)
            if unknown:
                # A misspelt argument (``duration`` for ``duration_minutes``) would otherwise
                # be dropped in silence, and the invite sent without it.
                return _tool_error(unknown_arguments(name, unknown, self.secret))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as error:
            sentence = _refusal(name, error) if mine else None
            if sentence is None:
                raise
            return _tool_error(sentence)


def _built(name: str) -> _Server:
    # The SDK's constructor calls logging.basicConfig: a RichHandler on the root logger and
    # its level set, in the user's process. A library must not: the root is put back as found.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        server = _Server(name, instructions=INSTRUCTIONS, version=__version__)
        server.secret, server.ours = None, {}
        return server
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


_READ_ONLY: Final = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


def build_server(api: AsyncSchedulerAPI, *, name: str = "cronofy") -> MCPServer[Any]:
    """
    The MCP SDK's server (`mcp.server.mcpserver.MCPServer`) with this library's tools.

    Mount it in an app of your own, add tools, or run it (``server.run()`` serves stdio).
    The tools send through `api`, its pacing, retries and idempotency ledger; the server
    never closes `api`: whoever opened it closes it::

        from cronofy_async import AsyncSchedulerAPI, SQLiteLedger
        from cronofy_async.mcp import build_server

        api = AsyncSchedulerAPI(ledger=SQLiteLedger("cronofy-mcp.db"))
        server = build_server(api)
        server.run()  # stdio; or server.streamable_http_app() for an ASGI app

    Tools: ``list_hosts``, ``create_invite``, ``get_invites``, ``cancel_invite``,
    ``show_selection_rule``. Without a ledger given to `api`, ``create_invite`` keeps its
    keys in the API object's own `MemoryLedger`: safe against retries for the life of the
    process only.
    """
    if not isinstance(api, AsyncSchedulerAPI):
        raise TypeError(f"build_server takes an AsyncSchedulerAPI, got {type(api).__name__}")
    server = _built(name)
    server.secret = api._shared.secret

    def no_secret(**given: object) -> None:
        holding_no_secret(api._shared.secret.reveal(), **given)

    @server.tool(
        title="List hosts",
        description=(
            "List the members of the Organizational Unit who may host: each one's account sub "
            "(give it to create_invite as host), email and whether the Scheduler is enabled "
            "for them. Reads every page Cronofy has, up to limit."
        ),
        annotations=_READ_ONLY,
    )
    async def list_hosts(
        limit: Annotated[
            int,
            Field(
                strict=True, ge=1, le=MAX_HOSTS, description="At most this many members (1-1000)."
            ),
        ] = 100,
    ) -> Hosts:
        async def hosts() -> Hosts:
            found: list[HostEntry] = []
            more = False
            members = api.iter_organizational_unit_members()
            try:
                async for member in members:
                    if len(found) == limit:
                        more = True
                        break
                    found.append(host_answer(member))
            finally:
                # The listing stops here, not whenever the garbage collector finds it.
                close = getattr(members, "aclose", None)
                if close is not None:
                    await close()
            return {"hosts": found, "more": more}

        return await _answer("list_hosts", hosts())

    @server.tool(
        title="Invite someone to pick a meeting slot",
        description=(
            "Create a Cronofy scheduling request: the person at email gets a link (select_url) "
            "to pick a slot in the host's calendar, or in a selection rule's hosts'. Give "
            "exactly one of host or selection_rule. Safe to retry: a call with the same email, "
            "host or rule, summary and duration answers the first invite with replayed: true "
            "and sends nothing; give an idempotency_key of your own to decide what counts as "
            "the same invite."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def create_invite(
        email: Annotated[str, Field(description="The invitee's email address.")],
        summary: Annotated[str, Field(description="The meeting's title, as the invitee sees it.")],
        host: Annotated[
            str | None,
            Field(description="The hosting account's sub (acc_...), from list_hosts."),
        ] = None,
        selection_rule: Annotated[
            str | None,
            Field(description="A selection rule's id (sel_...) to pick the host instead."),
        ] = None,
        display_name: Annotated[
            str | None, Field(description="The invitee's name, as the invite greets them.")
        ] = None,
        duration_minutes: Annotated[
            int | None,
            Field(
                strict=True, ge=1, le=1440, description="The meeting's length in minutes (1-1440)."
            ),
        ] = None,
        description: Annotated[str | None, Field(description="The meeting's description.")] = None,
        idempotency_key: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=255,
                description=(
                    "What makes two calls the same invite (1-255 characters); by default "
                    "derived from email, host or selection_rule, summary and duration."
                ),
            ),
        ] = None,
    ) -> Invite:
        async def invite() -> Invite:
            no_secret(  # first: a refusal below may quote what it refuses
                email=email,
                summary=summary,
                host=host,
                selection_rule=selection_rule,
                display_name=display_name,
                description=description,
            )
            request = invite_request(
                email=email,
                summary=summary,
                host=host,
                selection_rule=selection_rule,
                display_name=display_name,
                duration_minutes=duration_minutes,
                description=description,
            )
            answered = await send_invite(api, request, given_key(idempotency_key))
            if answered["replayed"]:
                key = answered["idempotency_key"]
                _log.info("create_invite: %s answered from the ledger, nothing sent", key)
            return answered

        return await _answer("create_invite", invite())

    @server.tool(
        title="Get invites",
        description=(
            "What became of invites: for each scheduling request id, slot_selection "
            "(pending, or complete once a slot was picked), its select and dashboard URLs. "
            "Ids Cronofy does not know are listed in not_found."
        ),
        annotations=_READ_ONLY,
    )
    async def get_invites(
        ids: Annotated[
            list[str],
            Field(
                min_length=1,
                max_length=MAX_IDS,
                description="Scheduling request ids (srq_...), 1-50 of them.",
            ),
        ],
    ) -> Invites:
        async def invites() -> Invites:
            no_secret(ids=ids)
            asked = [given_id(f"ids[{at}]", value) for at, value in enumerate(ids)]
            found = await api.query_scheduling_requests(asked)
            known = {item.scheduling_request_id for item in found}
            return {
                "invites": [invite_status(item) for item in found],
                "not_found": [i for i in dict.fromkeys(asked) if i not in known],
            }

        return await _answer("get_invites", invites())

    @server.tool(
        title="Cancel an invite",
        description=(
            "Cancel a scheduling request: its link stops working and a slot already picked is "
            "withdrawn. Cancelling one already cancelled does no harm."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def cancel_invite(
        id: Annotated[str, Field(description="The scheduling request id (srq_...) to cancel.")],
    ) -> Cancelled:
        async def cancel() -> Cancelled:
            no_secret(id=id)
            given = given_id("id", id)
            await api.cancel_scheduling_request(given)
            return {"scheduling_request_id": given, "cancelled": True}

        return await _answer("cancel_invite", cancel())

    @server.tool(
        title="Show a selection rule",
        description=(
            "Show a selection rule (a group of hosts Cronofy picks from): its name, how many "
            "hosts are required, and its members."
        ),
        annotations=_READ_ONLY,
    )
    async def show_selection_rule(
        id: Annotated[str, Field(description="The selection rule's id (sel_...).")],
    ) -> RuleAnswer:
        async def show() -> RuleAnswer:
            no_secret(id=id)
            return rule_answer(await api.get_selection_rule(given_id("id", id)))

        return await _answer("show_selection_rule", show())

    server.ours = {name: server._tool_manager.get_tool(name) for name in TOOLS}
    return server
