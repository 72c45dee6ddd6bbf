"""A local PinpointSMSVoiceV2 ``SendMediaMessage`` endpoint for development and load tests.

The real aiobotocore client talks to it unchanged through ``endpoint_url`` (or
``AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2``). Requests are validated against botocore's own
service model; rate limits, latency, faults, opt-outs and account errors are configurable at
start-up and at run time through the admin API under ``/_sandbox/``.
"""

from worker.sandbox.app import build_app
from worker.sandbox.cli import add_arguments, config_from_args, run
from worker.sandbox.config import SandboxConfig, config_from_json, config_to_json
from worker.sandbox.server import RunningSandbox, start_sandbox
from worker.sandbox.state import SandboxCounters, SandboxState, SendRecord

__all__ = [
    "RunningSandbox",
    "SandboxConfig",
    "SandboxCounters",
    "SandboxState",
    "SendRecord",
    "add_arguments",
    "build_app",
    "config_from_args",
    "config_from_json",
    "config_to_json",
    "run",
    "start_sandbox",
]
