"""The ``slack`` connector: post, update and delete messages, list channels, Events API.

Every request goes through ``ctx.http`` (the hub's shared client behind the SSRF guard) to
``base_url`` (``https://slack.com/api`` unless the connection says otherwise).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import httpx
import msgspec

from hub import ActionError, CachePolicy, Connector, RateLimit, action, hookimpl
from hub_slack.client import DEFAULT_BASE_URL, SlackClient
from hub_slack.events import EVENTS_TRIGGER

MAX_PAGES = 50  # conversations.list pages read at most (200 channels each)
OPTIONS_TTL = 300.0

Channel = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        description="A channel id (C0123...); post_message also accepts a name (#general).",
    ),
]
Ts = Annotated[str, msgspec.Meta(min_length=1, description="A message's ts (1503435956.000247).")]


# Optional fields carry their description outside the anyOf, where the docs look for it.
Text = Annotated[
    str | None,
    msgspec.Meta(description="The message text (mrkdwn); the fallback when blocks are given."),
]
Blocks = Annotated[list[dict[str, Any]] | None, msgspec.Meta(description="Block Kit blocks.")]
ThreadTs = Annotated[
    str | None, msgspec.Meta(description="Reply in the thread of the message with this ts.")
]
Flag = Annotated[bool | None, msgspec.Meta(description="Slack's flag of the same name.")]


class PostMessageIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Input of slack.post_message."""

    channel: Channel
    text: Text = None
    blocks: Blocks = None
    thread_ts: ThreadTs = None
    reply_broadcast: Flag = None
    unfurl_links: Flag = None
    unfurl_media: Flag = None
    mrkdwn: Flag = None


class MessageOut(msgspec.Struct):
    """A posted or updated message."""

    channel: Annotated[str, msgspec.Meta(description="The channel id.")]
    ts: Annotated[str, msgspec.Meta(description="The message's ts (its id in the channel).")]
    thread_ts: Annotated[
        str | None, msgspec.Meta(description="The ts of the thread's parent, for a reply.")
    ] = None
    message: Annotated[
        dict[str, Any] | None, msgspec.Meta(description="The message as Slack stored it.")
    ] = None


class UpdateMessageIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Input of slack.update_message."""

    channel: Channel
    ts: Ts
    text: Text = None
    blocks: Blocks = None


class DeleteMessageIn(msgspec.Struct, forbid_unknown_fields=True):
    """Input of slack.delete_message."""

    channel: Channel
    ts: Ts


class DeletedOut(msgspec.Struct):
    """A deleted message."""

    channel: Annotated[str, msgspec.Meta(description="The channel id.")]
    ts: Annotated[str, msgspec.Meta(description="The deleted message's ts.")]


class ListChannelsIn(msgspec.Struct, forbid_unknown_fields=True):
    """Input of slack.list_channels."""

    types: Annotated[
        str,
        msgspec.Meta(
            description="Comma-separated: public_channel, private_channel, mpim, im.",
            pattern=r"^(public_channel|private_channel|mpim|im)"
            r"(,(public_channel|private_channel|mpim|im))*$",
        ),
    ] = "public_channel"
    exclude_archived: Annotated[bool, msgspec.Meta(description="Leave archived channels out.")] = (
        True
    )


class ChannelOut(msgspec.Struct):
    """One channel."""

    id: Annotated[str, msgspec.Meta(description="The channel id (C0123...).")]
    name: Annotated[str, msgspec.Meta(description="The name, without #.")]
    is_private: bool = False
    is_archived: bool = False
    is_member: Annotated[bool, msgspec.Meta(description="The bot is in the channel.")] = False


class ChannelsOut(msgspec.Struct):
    """The channels."""

    channels: Annotated[list[ChannelOut], msgspec.Meta(description="Every channel found.")]


def _needs_content(name: str, text: str | None, blocks: list[Any] | None) -> None:
    if not text and not blocks:
        raise ActionError(f"slack.{name}: give input.text or input.blocks (both are empty)")


@action(
    needs_connection=True,
    title="Post a message",
    rate_limit=RateLimit(requests=1, per_seconds=1.0),
    examples=[
        {"input": {"channel": "#sales", "text": "New lead: ada@example.com"}},
        {"input": {"channel": "C0123456", "text": "Done", "thread_ts": "1503435956.000247"}},
    ],
)
async def post_message(ctx: Any, data: PostMessageIn) -> MessageOut:
    """Post a message to a channel (chat.postMessage); give thread_ts to reply in a thread.

    Slack has no idempotency key for chat.postMessage: a retry after a timeout may post twice.
    """
    _needs_content("post_message", data.text, data.blocks)
    body = await SlackClient.of(ctx).call("chat.postMessage", msgspec.to_builtins(data))
    message = body.get("message") or {}
    return MessageOut(
        channel=str(body.get("channel") or data.channel),
        ts=str(body.get("ts") or ""),
        thread_ts=message.get("thread_ts") or data.thread_ts,
        message=message or None,
    )


@action(
    needs_connection=True,
    title="Update a message",
    idempotent=True,
    rate_limit=RateLimit(requests=50, per_seconds=60.0),
    examples=[{"input": {"channel": "C0123456", "ts": "1503435956.000247", "text": "Edited"}}],
)
async def update_message(ctx: Any, data: UpdateMessageIn) -> MessageOut:
    """Replace the text or blocks of a message the bot posted (chat.update)."""
    _needs_content("update_message", data.text, data.blocks)
    body = await SlackClient.of(ctx).call("chat.update", msgspec.to_builtins(data))
    message = body.get("message") or {}
    return MessageOut(
        channel=str(body.get("channel") or data.channel),
        ts=str(body.get("ts") or data.ts),
        thread_ts=message.get("thread_ts"),
        message=message or None,
    )


@action(
    needs_connection=True,
    title="Delete a message",
    idempotent=True,
    rate_limit=RateLimit(requests=50, per_seconds=60.0),
    examples=[{"input": {"channel": "C0123456", "ts": "1503435956.000247"}}],
)
async def delete_message(ctx: Any, data: DeleteMessageIn) -> DeletedOut:
    """Delete a message the bot posted (chat.delete)."""
    body = await SlackClient.of(ctx).call("chat.delete", msgspec.to_builtins(data))
    return DeletedOut(channel=str(body.get("channel") or data.channel), ts=str(body.get("ts")))


async def fetch_channels(
    client: SlackClient, types: str = "public_channel", exclude_archived: bool = True
) -> list[dict[str, Any]]:
    """Every channel conversations.list gives, following its cursor."""
    channels: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(MAX_PAGES):
        body = await client.call(
            "conversations.list",
            {
                "types": types,
                "exclude_archived": "true" if exclude_archived else "false",
                "limit": 200,
                "cursor": cursor or None,
            },
            read=True,
        )
        for item in body.get("channels") or []:
            channels.append(
                {
                    "id": str(item.get("id")),
                    "name": str(item.get("name") or item.get("id")),
                    "is_private": bool(item.get("is_private")),
                    "is_archived": bool(item.get("is_archived")),
                    "is_member": bool(item.get("is_member")),
                }
            )
        cursor = str((body.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor:
            return channels
    raise ActionError(f"slack conversations.list: more than {MAX_PAGES} pages of channels")


@action(
    needs_connection=True,
    title="List channels",
    idempotent=True,
    cache=CachePolicy(ttl=OPTIONS_TTL, stale_while_revalidate=60.0),
    rate_limit=RateLimit(requests=20, per_seconds=60.0),
    examples=[{"input": {"types": "public_channel,private_channel"}}],
)
async def list_channels(ctx: Any, data: ListChannelsIn) -> ChannelsOut:
    """List the workspace's channels (conversations.list, every page)."""
    found = await fetch_channels(SlackClient.of(ctx), data.types, data.exclude_archived)
    return msgspec.convert({"channels": found}, ChannelsOut)


async def channel_options(ctx: Any) -> list[dict[str, Any]]:
    """Dynamic options for ``channel``: ``[{value: id, label: "#name"}]``, cached 5 minutes."""
    client = SlackClient.of(ctx)
    digest = hashlib.sha256(f"{client.base_url}\0{ctx.connection['bot_token']}".encode())
    key = f"slack:channels:{digest.hexdigest()[:32]}"

    async def load() -> list[dict[str, Any]]:
        found = await fetch_channels(client, "public_channel,private_channel")
        return [{"value": c["id"], "label": f"#{c['name']}"} for c in found]

    cache = getattr(ctx, "cache", None)
    if cache is None:
        return await load()
    result: list[dict[str, Any]] = await cache.get_or_load(key, load, OPTIONS_TTL)
    return result


for _act in (post_message, update_message, delete_message):
    _act.options = {"channel": channel_options}

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "bot_token": {
            "type": "string",
            "writeOnly": True,
            "pattern": r"^\S+$",
            "description": "The bot user OAuth token (xoxb-...) of your Slack app. Scopes: "
            "chat:write, channels:read (groups:read for private channels).",
        },
        "signing_secret": {
            "type": "string",
            "writeOnly": True,
            "description": "The app's signing secret (Basic Information): needed by the "
            "events trigger to verify Slack's requests.",
        },
        "base_url": {
            "type": "string",
            "format": "uri",
            "default": DEFAULT_BASE_URL,
            "description": "The Web API's base URL.",
        },
    },
    "required": ["bot_token"],
    "additionalProperties": False,
}

NOTES = """\
- **Errors.** Slack answers most failures with HTTP 200 and `{"ok": false, "error": ...}`.
  `invalid_auth`, `not_authed`, `token_revoked`, `token_expired`, `account_inactive` fail the
  step without retry ("Slack refused the credentials"); `missing_scope` names the scope
  needed; `ratelimited` / HTTP 429 are retried after `Retry-After`; `internal_error`,
  `fatal_error`, `service_unavailable`, `request_timeout` and 5xx are retryable.
- **Idempotency.** Slack has no idempotency key for `chat.postMessage`: if an attempt times
  out after Slack accepted it, the retry posts a second message. Give such steps
  `retry: {max_attempts: 1}` where a duplicate matters.
- **Rate limits.** `chat.postMessage` allows about one message per second per channel;
  `chat.update`/`chat.delete` are Tier 3 (50+/min), `conversations.list` Tier 2 (20+/min).
- **Channels.** `post_message` accepts an id or a `#name`; update and delete need the id
  (the `channel` of `post_message`'s output).
- **Events trigger.** Set the Request URL of your app's Event Subscriptions to the flow's
  webhook URL. Requests are verified with the signing secret (HMAC-SHA256 `v0`, 5 minutes
  tolerance); the `url_verification` challenge is answered; each event carries Slack's
  `event_id` as idempotency key, so a redelivery does not start a second run.
"""


async def test_connection(connection: dict[str, Any], http: httpx.AsyncClient | None = None) -> Any:
    """Check the token with auth.test; return the team and bot user it belongs to.

    Pass the hub's guarded client as ``http``; without it a plain client is used.
    """
    if http is not None:
        body = await SlackClient(http, connection).call("auth.test")
    else:
        async with httpx.AsyncClient() as own:
            body = await SlackClient(own, connection).call("auth.test")
    return {"team": body.get("team"), "team_id": body.get("team_id"), "user": body.get("user")}


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``slack`` connector."""
    return [
        Connector(
            name="slack",
            title="Slack",
            version="1",
            icon="slack",
            description="Post, update and delete Slack messages; react to Slack events.",
            connection_schema=CONNECTION_SCHEMA,
            actions=[post_message, update_message, delete_message, list_channels],
            triggers=[EVENTS_TRIGGER],
            test_connection=test_connection,
            notes=NOTES,
        )
    ]
