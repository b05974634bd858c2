"""Whether a run did most of its work: a run that fails most of it must fail, not exit 0.

The run keeps everything it wrote; `failed_work` names what went wrong, and the CLI then exits
with EXIT_TOO_MANY_ERRORS (4) so that a scheduler marks the run failed:

* classification: error rows above `classifier.max_error_share` of the run's conversations
  (classified + errors), with the error kinds and their counts;
* a systematic fallback: more than half of the adjudication, naming or label audit requests failed
  (their offline stand-ins were used; counted and printed as before).

Each stage's typed summary says what of this applies to it (`ReportsFailedWork`); the sentences
are made here, from its numbers, so every stage words a failure alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

EXIT_TOO_MANY_ERRORS = 4
SYSTEMATIC_SHARE = 0.5  # "most requests of a kind failing"


@runtime_checkable
class ReportsFailedWork(Protocol):
    """A stage summary that can tell whether its stage failed most of its work."""

    def failed_work(self, max_share: float) -> list[str]: ...


def classification_failure(errors: int, classified: int, kinds: Mapping[str, int], max_share: float) -> str | None:
    """One line when the classification error rows exceed `max_share` of the run's conversations."""
    total = errors + classified
    if not total or errors / total <= max_share:
        return None
    listed = ", ".join(f"{kind} {n:,}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return (
        f"{errors:,} of {total:,} conversations ({100.0 * errors / total:.1f}%) ended as classification "
        f"errors, above classifier.max_error_share {100.0 * max_share:.1f}%: {listed}"
    )


def systematic_fallback(what: str, requests: int, failures: int) -> str | None:
    """One line when most requests of a kind failed and its offline stand-in was used."""
    if requests and failures / requests > SYSTEMATIC_SHARE:
        return f"{what}: {failures:,} of {requests:,} requests failed (a systematic fallback)"
    return None


def failed_work(summaries: Iterable[object], max_share: float) -> list[str]:
    """Why the run failed, one line each, in stage order; [] when it did its work."""
    return [
        line
        for summary in summaries
        if isinstance(summary, ReportsFailedWork)
        for line in summary.failed_work(max_share)
    ]
