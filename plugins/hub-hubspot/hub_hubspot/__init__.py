"""HubSpot CRM connector for the hub: contacts, companies, deals, associations, webhooks."""

from hub_hubspot.webhooks import (
    SignatureError,
    handle_webhook_request,
    hubspot_signature,
    verify_hubspot_signature,
)

__all__ = [
    "SignatureError",
    "handle_webhook_request",
    "hubspot_signature",
    "verify_hubspot_signature",
]
