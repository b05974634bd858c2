"""Whether a run did most of its work: a run that fails most of it must fail, not exit 0.

The run keeps everything it wrote; `failed_work` names what went wrong, and the CLI then exits
with EXIT_TOO_MANY_ERRORS (4) so that a scheduler marks the run failed:

* classification: error rows above `classifier.max_error_share` of the run's conversations
  (classified + errors), with the error kinds and their counts;
* a systematic fallback: more than half of the adjudication, naming or label audit requests failed
  (their offline stand-ins were used; counted and printed as before).
"""

from __future__ import annotations

from collections.abc import Mapping

EXIT_TOO_MANY_ERRORS = 4
SYSTEMATIC_SHARE = 0.5  # "most requests of a kind failing"
ERROR_KIND_PREFIX = "classification_errors_"
FALLBACK_KINDS = (
    ("adjudication", "adjudication_requests", "adjudication_failures"),
    ("naming (AI values)", "naming_ai_requests", "naming_ai_failures"),
    ("naming (human values)", "naming_human_requests", "naming_human_failures"),
    ("label audit", "label_audit_requests", "label_audit_failures"),
)


def error_kinds(metrics: Mapping[str, float]) -> dict[str, int]:
    return {k[len(ERROR_KIND_PREFIX) :]: int(v) for k, v in metrics.items() if k.startswith(ERROR_KIND_PREFIX)}


def classification_failure(metrics: Mapping[str, float], max_share: float) -> str | None:
    """One line when the classification error rows exceed `max_share` of the run's conversations."""
    if "classification_errors" not in metrics:
        return None
    errors = int(metrics["classification_errors"])
    total = errors + int(metrics.get("classified", 0))
    if not total or errors / total <= max_share:
        return None
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(error_kinds(metrics).items(), key=lambda kv: -kv[1]))
    return (
        f"{errors:,} of {total:,} conversations ({100.0 * errors / total:.1f}%) ended as classification "
        f"errors, above classifier.max_error_share {100.0 * max_share:.1f}%: {kinds}"
    )


def fallback_failures(metrics: Mapping[str, float]) -> list[str]:
    """One line per request kind where most requests failed and the offline stand-in was used."""
    lines = []
    for what, asked_key, failed_key in FALLBACK_KINDS:
        asked, failed = int(metrics.get(asked_key, 0)), int(metrics.get(failed_key, 0))
        if asked and failed / asked > SYSTEMATIC_SHARE:
            lines.append(f"{what}: {failed:,} of {asked:,} requests failed (a systematic fallback)")
    return lines


def failed_work(metrics: Mapping[str, float], max_share: float) -> list[str]:
    """Why the run failed, one line each; [] when it did its work."""
    classification = classification_failure(metrics, max_share)
    return ([classification] if classification else []) + fallback_failures(metrics)
