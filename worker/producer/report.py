"""What ``sms-worker enqueue`` tells its user: the summary and the advice after a failure."""

from __future__ import annotations

from dataclasses import dataclass

from worker.producer.check import Scan


@dataclass
class Summary:
    rows: int = 0
    invalid: int = 0
    skipped: bool = False
    enqueued: int = 0
    failed: int = 0
    validating_s: float = 0.0
    enqueueing_s: float = 0.0

    def render(self) -> str:
        invalid = f"{self.invalid:,}" + (" (skipped)" if self.skipped and self.invalid else "")
        rate = self.enqueued / self.enqueueing_s if self.enqueueing_s > 0 else 0.0
        total = self.validating_s + self.enqueueing_s
        return "\n".join(
            [
                "Summary",
                f"  rows read  {self.rows:,}",
                f"  invalid    {invalid}",
                f"  enqueued   {self.enqueued:,}",
                f"  failed     {self.failed:,}",
                f"  elapsed    {total:.1f} s (validating {self.validating_s:.1f} s, "
                f"enqueueing {self.enqueueing_s:.1f} s)",
                f"  rate       {rate:,.0f} rows/s enqueued",
            ]
        )


def invalid_rows(scan: Scan, validate_only: bool = False) -> str:
    found = f"{scan.invalid:,} of {scan.rows:,} rows are invalid (listed above)"
    if validate_only:
        return f"{found}; fix them before enqueueing the file."
    return (
        f"{found}; nothing was enqueued. Fix them, or pass --skip-invalid to enqueue the "
        f"{scan.valid:,} valid rows only."
    )


def no_request_ids(scan: Scan) -> str:
    return (
        f"warning: {scan.without_request_id:,} rows have no RequestId, so the worker keys "
        "them by SQS message id: enqueueing them twice sends them twice. Add a RequestId "
        "column or pass --campaign-id to make re-runs safe."
    )


def rerun(scan: Scan) -> str:
    """Whether enqueueing the file again is safe."""
    if scan.without_request_id:
        return (
            "Rows without a RequestId would be sent twice if the whole file were enqueued "
            "again: enqueue only the rows that were not, or add RequestIds (or --campaign-id)."
        )
    return (
        "Running the same command again is safe: rows already enqueued carry the same "
        "RequestId, and the worker never sends a RequestId twice."
    )


def not_enqueued(summary: Summary, scan: Scan) -> str:
    return f"{summary.failed:,} rows were not enqueued (listed above). {rerun(scan)}"


def stopped(summary: Summary, scan: Scan) -> str:
    return (
        f"{summary.enqueued:,} rows were enqueued before the error, "
        f"{scan.valid - summary.enqueued:,} were not. {rerun(scan)}"
    )


def interrupted(summary: Summary) -> str:
    return (
        f"interrupted: {summary.enqueued:,} rows were enqueued before the interrupt (the "
        "batches in flight at that moment may have been too), the others were not. Rows with "
        "a RequestId can be enqueued again safely."
    )
