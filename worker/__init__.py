"""sms-worker: send the MMS requests of an SQS queue with PinpointSMSVoiceV2 SendMediaMessage."""

__version__ = "0.1.0"
