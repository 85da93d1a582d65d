"""Where decided parts are reported: JSON lines, webhook, Modbus TCP and OPC UA servers for the PLC.

Every sink receives a part only after the record holds it.
"""

from lineguard.results import ErrorCode, PublishedResult
from lineguard.sinks.basic import JsonlSink, Sink, WebhookSink
from lineguard.sinks.handshake import Handshake, HandshakeState

__all__ = [
    "ErrorCode",
    "Handshake",
    "HandshakeState",
    "JsonlSink",
    "PublishedResult",
    "Sink",
    "WebhookSink",
]
