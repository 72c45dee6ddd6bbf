"""The rate-share item of one key in the status table, and the conditional writes on it.

``RequestId = "rateshare#<key>"`` (:class:`KeyFamily.RATE_SHARE`) holds every worker's lease,
``Granted`` and the shared rate; :func:`decode_share` reads it into the pure
:class:`worker.sending.sharing.ShareItem` and :class:`ShareTable` turns a
:class:`~worker.sending.sharing.Plan` into its one conditional ``UpdateItem`` (a refused
condition is :class:`~worker.sending.sharing.Refused`). The limiter that uses it is
:mod:`worker.sending.shared`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from worker.aws.errors import CONDITION_FAILED, error_code
from worker.sending import sharing as sh
from worker.status.model import REQUEST_KEY, KeyFamily

#: The share items expire (DynamoDB TTL) this long after their last write.
ITEM_TTL_S = 86_400


def share_key(key: str) -> str:
    return KeyFamily.RATE_SHARE.value + key


# -- the item's wire form -------------------------------------------------------------------
def _lease_value(lease: sh.Lease) -> dict[str, Any]:
    return {
        "M": {
            "G": {"N": str(lease.grant_mmps)},
            "W": {"N": str(lease.want_mmps)},
            "U": {"N": str(lease.until_ms)},
            "R": {"N": str(lease.renew_at_ms)},
            "F": {"N": str(lease.fair_mmps)},
        }
    }


def decode_share(raw: dict[str, Any] | None, seen_at_ms: int | None = None) -> sh.ShareItem:
    if not raw:
        return sh.ShareItem(seen_at_ms=seen_at_ms)
    leases = {
        worker: sh.Lease(
            int(v["M"]["G"]["N"]),
            int(v["M"]["W"]["N"]),
            int(v["M"]["U"]["N"]),
            int(v["M"].get("R", {}).get("N", "0")),
            # not written before 2026-12: such a lease is short while below what it asked
            # for, so nobody borrows past a worker of the previous release (a rolling deploy)
            int(v["M"].get("F", v["M"]["W"])["N"]),
        )
        for worker, v in raw.get("Leases", {}).get("M", {}).items()
    }
    rate = raw.get("Rate")
    return sh.ShareItem(
        leases=leases,
        granted_mmps=int(raw.get("Granted", {}).get("N", "0")),
        rate_mmps=int(rate["N"]) if rate else None,
        rate_at_ms=int(raw.get("RateAt", {}).get("N", "0")),
        seen_at_ms=seen_at_ms,
    )


class ShareTable:
    """The share items' three writes and one read, each a single DynamoDB call."""

    def __init__(self, ddb: Any, table: str, wall: Callable[[], float] = time.time) -> None:
        self._ddb, self._table, self._wall = ddb, table, wall
        self.writes = 0
        self.refused = 0

    def _key(self, key: str) -> dict[str, Any]:
        return {REQUEST_KEY: {"S": share_key(key)}}

    def _now_ms(self) -> int:
        return int(self._wall() * 1000)

    def _expires(self) -> dict[str, str]:
        return {"N": str(int(self._wall()) + ITEM_TTL_S)}

    async def read(self, key: str) -> sh.ShareItem:
        resp = await self._ddb.get_item(
            TableName=self._table, Key=self._key(key), ConsistentRead=True
        )
        return decode_share(resp.get("Item"), self._now_ms())

    async def ensure(self, key: str) -> sh.ShareItem:
        """Create the item's lease map if it is missing (a nested path needs its map) and
        return the item: the worker's first view of the key."""
        self.writes += 1
        resp = await self._ddb.update_item(
            TableName=self._table,
            Key=self._key(key),
            UpdateExpression="SET Leases = if_not_exists(Leases, :empty), "
            "Granted = if_not_exists(Granted, :zero), ExpiresAt = :exp",
            ExpressionAttributeValues={
                ":empty": {"M": {}},
                ":zero": {"N": "0"},
                ":exp": self._expires(),
            },
            ReturnValues="ALL_NEW",
        )
        return decode_share(resp.get("Attributes"), self._now_ms())

    async def write(self, key: str, p: sh.Plan) -> sh.ShareItem:
        """The renewal ``p`` as one conditional UpdateItem (the conditions of
        :func:`worker.sending.sharing.apply`); raises :class:`sharing.Refused`."""
        names = {"#me": p.worker}
        if p.previous is not None or p.reclaim:
            names |= {"#u": "U", "#g": "G"}
        values: dict[str, Any] = {
            ":lease": _lease_value(p.lease),
            ":delta": {"N": str(p.delta_mmps)},
            ":exp": self._expires(),
        }
        conditions = []
        if p.previous is None:
            conditions.append("attribute_not_exists(Leases.#me)")
        else:
            conditions.append("Leases.#me.#u = :pu AND Leases.#me.#g = :pg")
            values[":pu"] = {"N": str(p.previous.until_ms)}
            values[":pg"] = {"N": str(p.previous.grant_mmps)}
        removes = []
        for i, (worker, lease) in enumerate(sorted(p.reclaim.items())):
            names[f"#d{i}"] = worker
            values[f":du{i}"] = {"N": str(lease.until_ms)}
            values[f":dg{i}"] = {"N": str(lease.grant_mmps)}
            conditions.append(f"Leases.#d{i}.#u = :du{i} AND Leases.#d{i}.#g = :dg{i}")
            removes.append(f"Leases.#d{i}")
        if p.limit_mmps is not None:
            conditions.append("Granted <= :limit")
            values[":limit"] = {"N": str(p.limit_mmps)}
        update = "SET Leases.#me = :lease, ExpiresAt = :exp ADD Granted :delta"
        if removes:
            update += " REMOVE " + ", ".join(removes)
        raw = await self._conditional(key, update, conditions, names, values)
        return decode_share(raw, self._now_ms())

    async def release(self, key: str, worker: str, lease: sh.Lease) -> None:
        """Leaving: remove the lease and give its grant back (if it is still ours)."""
        await self._conditional(
            key,
            "REMOVE Leases.#me ADD Granted :minus",
            ["Leases.#me.#u = :pu"],
            {"#me": worker, "#u": "U"},
            {":minus": {"N": str(-lease.grant_mmps)}, ":pu": {"N": str(lease.until_ms)}},
        )

    async def decrease(self, key: str, rate_mmps: int, now_ms: int, seen: sh.ShareItem) -> None:
        """A throttle's shared decrease, unless another worker's came first."""
        condition = "attribute_not_exists(RateAt)" if seen.rate_mmps is None else "RateAt = :seen"
        values: dict[str, Any] = {":r": {"N": str(rate_mmps)}, ":at": {"N": str(now_ms)}}
        if seen.rate_mmps is not None:
            values[":seen"] = {"N": str(seen.rate_at_ms)}
        await self._conditional(key, "SET Rate = :r, RateAt = :at", [condition], {}, values)

    async def _conditional(
        self,
        key: str,
        update: str,
        conditions: list[str],
        names: dict[str, str],
        values: dict[str, Any],
    ) -> dict[str, Any]:
        self.writes += 1
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._key(key),
            "UpdateExpression": update,
            "ConditionExpression": " AND ".join(f"({c})" for c in conditions),
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            resp = await self._ddb.update_item(**kwargs)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                self.refused += 1
                raise sh.Refused(f"rate share of {key!r} changed since it was read") from None
            raise
        attributes: dict[str, Any] = resp.get("Attributes", {})
        return attributes
