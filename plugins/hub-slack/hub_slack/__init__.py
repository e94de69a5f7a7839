"""Slack connector for the hub: messages, channels and the Events API trigger."""

from hub_slack.events import (
    SignatureError,
    handle_events_request,
    slack_signature,
    verify_slack_signature,
)

__all__ = [
    "SignatureError",
    "handle_events_request",
    "slack_signature",
    "verify_slack_signature",
]
