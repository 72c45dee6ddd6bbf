"""The send-request contract: one SQS message body, validated, masked and described."""

from worker.masking import mask_identity, mask_phone
from worker.model.channels import (
    CHANNELS,
    DEFAULT_CHANNEL,
    Channel,
    ChannelRequest,
    UnknownChannel,
    channel_named,
)
from worker.model.envelope import Envelope
from worker.model.mms import MmsRequest, SendRequest
from worker.model.parse import InvalidRequest, ParsedRequest, parse_request
from worker.model.rules import CONTRACT_KEYS, ENVELOPE_KEYS, MMS_EXTENSIONS
from worker.model.schema import request_json_schema
from worker.model.segments import parts as message_parts
from worker.model.sms import SmsRequest

__all__ = [
    "CHANNELS",
    "CONTRACT_KEYS",
    "DEFAULT_CHANNEL",
    "ENVELOPE_KEYS",
    "MMS_EXTENSIONS",
    "Channel",
    "ChannelRequest",
    "Envelope",
    "InvalidRequest",
    "MmsRequest",
    "ParsedRequest",
    "SendRequest",
    "SmsRequest",
    "UnknownChannel",
    "channel_named",
    "mask_identity",
    "mask_phone",
    "message_parts",
    "parse_request",
    "request_json_schema",
]
