"""The gateway clients, one module per gateway, behind one interface (base.py) and one status
vocabulary (campaigns.events). `client_for(account)` gives this thread's client for an account; the
registry (registry.py) finds every gateway module and its spec."""

from campaigns.events import BadPayload, Inbound, StatusUpdate
from workers.providers.base import (
    GatewayError,
    GatewaySpec,
    InvalidMessage,
    NotOffered,
    Outbound,
    ProviderClient,
    SendResult,
    SentQuery,
    client_for,
    close_clients,
)
from workers.providers.devino import DevinoClient
from workers.providers.devino import parse_callback as parse_devino_callback
from workers.providers.devino import parse_incoming as parse_devino_incoming
from workers.providers.httpapi import HttpApiClient
from workers.providers.httpapi import parse_webhook as parse_httpapi_webhook
from workers.providers.smsglobal import SmsGlobalClient
from workers.providers.socnet import SocnetClient

__all__ = [
    "BadPayload",
    "DevinoClient",
    "GatewayError",
    "GatewaySpec",
    "HttpApiClient",
    "Inbound",
    "InvalidMessage",
    "NotOffered",
    "Outbound",
    "ProviderClient",
    "SendResult",
    "SentQuery",
    "SmsGlobalClient",
    "SocnetClient",
    "StatusUpdate",
    "client_for",
    "close_clients",
    "parse_devino_callback",
    "parse_devino_incoming",
    "parse_httpapi_webhook",
]
