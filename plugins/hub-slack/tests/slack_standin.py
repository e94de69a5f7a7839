"""A local stand-in for the Slack Web API (slack.com cannot be reached from the test machine).

It implements the documented requests and answers of the methods the connector uses
(auth.test, chat.postMessage, chat.update, chat.delete, conversations.list) as a plain ASGI
app served by uvicorn on 127.0.0.1, and checks what Slack checks that matters here: the bearer
token (``not_authed`` / ``invalid_auth``), JSON bodies for write methods, required arguments
(``channel_not_found``, ``no_text``, ``message_not_found``) and the pagination cursor. It
records every request so tests can assert what the connector sent. ``force`` queues canned
answers (429, 5xx ...) for the next requests.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from hub.testing import StandIn, StandInRequest

TOKEN = "xoxb-standin-0123456789-abcdefABCDEF"


class SlackStandIn(StandIn):
    """The ASGI app: a workspace with channels, and the messages posted during a test."""

    def reset(self) -> None:
        """Forget requests, messages and canned answers."""
        super().reset()
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.channels = [
            {"id": f"C{i:04d}", "name": f"channel-{i}", "is_private": False, "is_archived": False}
            for i in range(205)
        ]
        self.channels[0]["name"] = "general"
        self.channels.append(
            {"id": "C9999", "name": "old-stuff", "is_private": False, "is_archived": True}
        )
        self.channels.append(
            {"id": "G0001", "name": "secret-plans", "is_private": True, "is_archived": False}
        )
        self._seq = 0

    def calls(self, method: str) -> list[StandInRequest]:
        """The requests made to one Web API method."""
        return [r for r in self.requests if r.path == f"/api/{method}"]

    # -- the Web API -----------------------------------------------------------------------

    def answer(self, seen: StandInRequest) -> tuple[int, Any]:
        """Slack's answer to one request (HTTP 200, ``ok`` true or false)."""
        return 200, self.method(seen)

    def method(self, seen: StandInRequest) -> dict[str, Any]:
        """The body of a Web API method's answer."""
        method = seen.path.removeprefix("/api/")
        auth = seen.headers.get("authorization", "")
        if not auth:
            return {"ok": False, "error": "not_authed"}
        if auth != f"Bearer {TOKEN}":
            return {"ok": False, "error": "invalid_auth"}
        if method == "conversations.list":
            return self.conversations_list(seen.query)
        if method == "auth.test":
            return {"ok": True, "team": "Stand-in", "team_id": "T0001", "user": "hubbot"}
        if seen.method != "POST" or not seen.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return {"ok": False, "error": "invalid_arguments"}
        args = seen.json
        handler = {
            "chat.postMessage": self.post_message,
            "chat.update": self.update_message,
            "chat.delete": self.delete_message,
        }.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(args)

    def _channel(self, ref: str) -> dict[str, Any] | None:
        for channel in self.channels:
            if ref in (channel["id"], f"#{channel['name']}"):
                return channel
        return None

    def post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(args.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        self._seq += 1
        ts = f"{int(time.time())}.{self._seq:06d}"
        message = {"type": "message", "user": "U0BOT", "bot_id": "B0001", "ts": ts}
        message["text"] = args.get("text", "")
        if args.get("blocks"):
            message["blocks"] = args["blocks"]
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        self.messages[(channel["id"], ts)] = message
        return {"ok": True, "channel": channel["id"], "ts": ts, "message": message}

    def update_message(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if self._channel(key[0]) is None:
            return {"ok": False, "error": "channel_not_found"}
        message = self.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message["text"] = args.get("text", message["text"])
        if "blocks" in args:
            message["blocks"] = args["blocks"]
        return {
            "ok": True,
            "channel": key[0],
            "ts": key[1],
            "text": message["text"],
            "message": message,
        }

    def delete_message(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if self._channel(key[0]) is None:
            return {"ok": False, "error": "channel_not_found"}
        if self.messages.pop(key, None) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def conversations_list(self, query: dict[str, str]) -> dict[str, Any]:
        types = set(query.get("types", "public_channel").split(","))
        limit = min(int(query.get("limit", "100")), 1000)
        start = 0
        if query.get("cursor"):
            try:
                start = int(base64.b64decode(query["cursor"]).decode().removeprefix("next:"))
            except ValueError:
                return {"ok": False, "error": "invalid_cursor"}
        wanted = [
            c
            for c in self.channels
            if ("private_channel" if c["is_private"] else "public_channel") in types
            and not (query.get("exclude_archived") == "true" and c["is_archived"])
        ]
        page = wanted[start : start + limit]
        following = start + limit
        cursor = (
            base64.b64encode(f"next:{following}".encode()).decode()
            if following < len(wanted)
            else ""
        )
        return {
            "ok": True,
            "channels": [{**c, "is_channel": True, "is_member": True} for c in page],
            "response_metadata": {"next_cursor": cursor},
        }
