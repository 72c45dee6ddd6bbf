"""sms-worker: drain an SQS queue of MMS send requests through PinpointSMSVoiceV2 SendMediaMessage."""

__version__ = "0.1.0"
