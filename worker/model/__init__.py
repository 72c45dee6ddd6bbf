"""The send-request contract: one SQS message body, validated, masked and described."""

from worker.masking import mask_identity, mask_phone
from worker.model.parse import InvalidRequest, ParsedRequest, parse_request
from worker.model.request import SendRequest
from worker.model.rules import API_KEYS, CONTRACT_KEYS, ENVELOPE_KEYS, MMS_EXTENSIONS
from worker.model.schema import request_json_schema

__all__ = [
    "API_KEYS",
    "CONTRACT_KEYS",
    "ENVELOPE_KEYS",
    "MMS_EXTENSIONS",
    "InvalidRequest",
    "ParsedRequest",
    "SendRequest",
    "mask_identity",
    "mask_phone",
    "parse_request",
    "request_json_schema",
]
