"""The per-channel pause: one probe per interval, resumed by a success, on a simulated clock."""

from __future__ import annotations

from botocore.exceptions import ClientError

from worker.sending.cooldown import ChannelPause, Cooldown
from worker.sending.errors import ErrorKind, classify


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_probe_per_interval_then_resumed() -> None:
    clock = Clock()
    pause = ChannelPause("SMS", probe_s=30.0, clock=clock)
    assert pause.admit() == 0.0 and pause.reason is None  # not paused: everyone sends
    pause.pause("MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT")
    assert pause.admit() == 30.0  # handed back till the probe
    clock.now += 30.0
    assert pause.admit() == 0.0  # this one is the probe...
    assert pause.admit() > 0  # ...and nobody else goes while it is out
    pause.pause("MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT")  # the probe was refused too
    assert pause.admit() == 30.0 and pause.started_total == 1
    clock.now += 30.0
    assert pause.admit() == 0.0
    pause.probe_done()  # it ended otherwise (an invalid destination): another may probe
    assert pause.admit() == 0.0
    pause.resume()
    assert pause.reason is None and pause.admit() == 0.0 and pause.probes_total == 3


def test_the_cooldown_holds_a_pause_per_channel() -> None:
    cooldown = Cooldown(60.0, spend_limit_probe_s=10.0)
    cooldown.channels["SMS"].pause("MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT")
    assert cooldown.channels.paused() == {"SMS": "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"}
    assert cooldown.channels["MMS"].admit() == 0.0  # the other channel sends
    assert not cooldown.active


def _client_error(code: str, reason: str | None) -> ClientError:
    response: dict[str, object] = {"Error": {"Code": code, "Message": "m"}}
    if reason is not None:
        response["Reason"] = reason
    return ClientError(response, "SendTextMessage")  # type: ignore[arg-type]


def test_spend_limit_reasons_are_per_channel_other_quotas_account_wide() -> None:
    text = classify(_client_error("ServiceQuotaExceededException",
                                  "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"))  # fmt: skip
    media = classify(_client_error("ServiceQuotaExceededException",
                                   "MONTHLY_SPEND_LIMIT_REACHED_FOR_MEDIA"))  # fmt: skip
    other = classify(_client_error("ServiceQuotaExceededException", None))
    assert text is not None and media is not None and other is not None
    assert (text.kind, text.paused_channel) == (ErrorKind.CHANNEL, "SMS")
    assert (media.kind, media.paused_channel) == (ErrorKind.CHANNEL, "MMS")
    assert (other.kind, other.paused_channel) == (ErrorKind.ACCOUNT, None)
    assert other.cooldown_reason == "ServiceQuotaExceededException"
