"""The gateway clients, one module per gateway, behind one interface (base.py) and one status
vocabulary (events.py). `client_for(account)` gives this thread's client for an account."""

from workers.providers.base import (
    GatewayError,
    InvalidMessage,
    Outbound,
    ProviderClient,
    SendResult,
    client_for,
    close_clients,
)
from workers.providers.devino import DevinoClient
from workers.providers.events import (
    BadPayload,
    Inbound,
    StatusUpdate,
    parse_devino_callback,
    parse_devino_incoming,
    parse_httpapi_webhook,
)
from workers.providers.httpapi import HttpApiClient
from workers.providers.smsglobal import SmsGlobalClient
from workers.providers.socnet import SocnetClient

__all__ = [
    "BadPayload",
    "DevinoClient",
    "GatewayError",
    "HttpApiClient",
    "Inbound",
    "InvalidMessage",
    "Outbound",
    "ProviderClient",
    "SendResult",
    "SmsGlobalClient",
    "SocnetClient",
    "StatusUpdate",
    "client_for",
    "close_clients",
    "parse_devino_callback",
    "parse_devino_incoming",
    "parse_httpapi_webhook",
]
