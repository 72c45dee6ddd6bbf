"""``sms-worker enqueue``'s share of a campaign's expected total (``--campaign-id`` with
``--table``): recorded per run identity, so enqueueing the same file again adds nothing.

Before the first batch the run's share is raised to the rows about to be enqueued (which also
checks that the table answers: a wrong ``--table`` stops the run before anything is sent);
after the last, or on an error or Ctrl-C, it is set to what was enqueued, never below what an
earlier run of the same file recorded. See :class:`worker.status.expected.RunShare`.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.aws.clients import ConfigurationError, aws_client
from worker.ops.common import explain_client_error
from worker.status.expected import RunShare, run_id

_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 10,
    "retries": {"mode": "standard", "total_max_attempts": 3},
}


class TotalNotRecorded(Exception):
    """The expected total could not be written; ``str()`` says why and what to do."""


class ExpectedTotal:
    def __init__(
        self, table: str, campaign_id: str, region: str | None, digest: int, count: int
    ) -> None:
        self.table = table
        self.campaign_id = campaign_id
        self.run = run_id(campaign_id, digest, count)
        self._region = region
        self._stack = AsyncExitStack()
        self._share: RunShare | None = None

    @classmethod
    def of(cls, args: Any, digest: int, count: int) -> ExpectedTotal | None:
        """The run's share for ``enqueue``'s options, or None when none is to be recorded."""
        if not (args.campaign_id and args.table) or args.no_expected_total:
            return None
        return cls(args.table, args.campaign_id, args.region, digest, count)

    @property
    def earlier(self) -> int:
        """What earlier runs of the same file had recorded (0 for a new file)."""
        return self._share.earlier if self._share is not None else 0

    async def begin(self, planned: int) -> None:
        try:
            client = await self._stack.enter_async_context(
                aws_client("dynamodb", region=self._region, **_CONFIG)
            )
            self._share = RunShare(client, self.table, self.campaign_id, self.run)
            await self._share.begin(planned)
        except (ClientError, BotoCoreError, ConfigurationError, RuntimeError) as exc:
            await self._stack.aclose()
            raise TotalNotRecorded(
                f"could not record campaign {self.campaign_id!r}'s expected total: "
                f"{_explain(exc, self.table)}"
            ) from None

    async def end(self, enqueued: int) -> None:
        """Record what was enqueued and close the client."""
        try:
            if self._share is not None:
                await self._share.end(enqueued)
        except (ClientError, BotoCoreError, RuntimeError) as exc:
            raise TotalNotRecorded(
                f"could not correct campaign {self.campaign_id!r}'s expected total to the "
                f"{enqueued:,} rows enqueued: {_explain(exc, self.table)}; run the same "
                "command again to record it"
            ) from None
        finally:
            await self._stack.aclose()


def _explain(exc: BaseException, table: str) -> str:
    if isinstance(exc, ClientError):
        return explain_client_error(exc, table).replace("--table / ", "--table or ")
    return str(exc)
