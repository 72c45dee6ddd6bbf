"""Every SMS rule of the contract as bodies accepted and rejected, shared by the model's unit
tests and the worker's end-to-end test (a unique module name on sys.path)."""

from __future__ import annotations

from typing import Any

ORIGIN = "+18005550100"


def sms(n: int, **fields: Any) -> dict[str, Any]:
    """A valid SMS request; destination derives from ``n`` (None removes a key)."""
    body: dict[str, Any] = {
        "Channel": "SMS",
        "DestinationPhoneNumber": f"+1206555{n % 10000:04d}",
        "MessageBody": f"code {n}",
        "RequestId": f"sms-{n}",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


#: (name, fields) of SMS bodies the worker sends as given.
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("minimal, no identity", {}),
    ("identity", {"OriginationIdentity": ORIGIN}),
    ("sender id", {"OriginationIdentity": "MyBrand"}),
    ("transactional", {"MessageType": "TRANSACTIONAL"}),
    ("promotional", {"MessageType": "PROMOTIONAL"}),
    ("keyword with a space", {"Keyword": "STOP ALL"}),
    ("keyword of 30", {"Keyword": "K" * 30}),
    ("india parameters", {"DestinationCountryParameters": {"IN_ENTITY_ID": "1101",
                                                           "IN_TEMPLATE_ID": "T-77"}}),
    ("empty country parameters", {"DestinationCountryParameters": {}}),
    ("every shared parameter", {"ConfigurationSetName": "cs-1", "MaxPrice": "0.05",
                                "TimeToLive": 300, "Context": {"order": "o-1"}, "DryRun": True,
                                "ProtectConfigurationId": "pc-1",
                                "MessageFeedbackEnabled": True}),
    ("body of 1600", {"MessageBody": "x" * 1600}),
    ("unicode body", {"MessageBody": "Привет 😀"}),
]  # fmt: skip

#: (name, fields, ErrorReason) of SMS bodies the worker refuses without a call.
REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("media urls", {"MediaUrls": ["s3://media-bucket/a.jpg"]}, "MediaUrls"),
    ("no body", {"MessageBody": None}, "MessageBody"),
    ("blank body", {"MessageBody": "   "}, "MessageBody"),
    ("body of 1601", {"MessageBody": "x" * 1601}, "MessageBody"),
    ("no destination", {"DestinationPhoneNumber": None}, "DestinationPhoneNumber"),
    ("bad destination", {"DestinationPhoneNumber": "+1999"}, "DestinationPhoneNumber"),
    ("bad identity", {"OriginationIdentity": "has space"}, "OriginationIdentity"),
    ("message type", {"MessageType": "MARKETING"}, "MessageType"),
    ("message type case", {"MessageType": "transactional"}, "MessageType"),
    ("empty keyword", {"Keyword": ""}, "Keyword"),
    ("keyword of 31", {"Keyword": "K" * 31}, "Keyword"),
    ("keyword with a tab", {"Keyword": "A\tB"}, "Keyword"),
    ("country key", {"DestinationCountryParameters": {"US_ID": "1"}},
     "DestinationCountryParameters"),
    ("country value space", {"DestinationCountryParameters": {"IN_ENTITY_ID": "1 2"}},
     "DestinationCountryParameters"),
    ("country value of 65", {"DestinationCountryParameters": {"IN_TEMPLATE_ID": "9" * 65}},
     "DestinationCountryParameters"),
    ("country not an object", {"DestinationCountryParameters": ["IN_ENTITY_ID"]},
     "DestinationCountryParameters"),
    ("ttl", {"TimeToLive": 4}, "TimeToLive"),
    ("max price", {"MaxPrice": "1"}, "MaxPrice"),
    ("context entries", {"Context": {str(i): "v" for i in range(6)}}, "Context"),
    ("context value edge space", {"Context": {"k": " v"}}, "Context"),
    ("configuration set", {"ConfigurationSetName": "a b"}, "ConfigurationSetName"),
    ("dry run type", {"DryRun": "yes"}, "DryRun"),
    ("unknown key", {"Unknown": 1}, "Unknown"),
    ("channel case", {"Channel": "sms"}, "Channel"),
]  # fmt: skip
