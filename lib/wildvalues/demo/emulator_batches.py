"""The emulator's Message Batches endpoints: create, retrieve, results, cancel and list, with the
batch lifetimes and result shapes the Batches API documents. Each `Emulator` has one."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from wildvalues.demo import api_rules
from wildvalues.demo.emulator_answers import Reply, error_body, new_id, rfc3339
from wildvalues.demo.emulator_rules import check_batch_requests

if TYPE_CHECKING:
    from wildvalues.demo.emulator import Emulator


class BatchesEndpoint:
    """The batch half of an `Emulator`: its batches, locks, clock and answers are the emulator's."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.batches: dict[str, dict[str, Any]] = {}
        self._registry_lock = threading.Lock()  # guards `batches`
        self._finish_lock = threading.Lock()  # one thread at a time finishes or cancels a batch

    def create_batch(self, body: dict[str, Any], entry: dict[str, Any]) -> Reply:
        requests = body.get("requests")
        problem = check_batch_requests(requests)
        if problem:
            return Reply(400, error_body("invalid_request_error", problem))
        assert isinstance(requests, list)  # check_batch_requests found a non-empty list
        entry["custom_ids"] = [r["custom_id"] for r in requests]
        entry["models"] = [r["params"].get("model") for r in requests]
        now, wall = time.monotonic(), time.time()
        batch: dict[str, Any] = {
            "id": new_id("msgbatch_emu"),
            "created": wall,
            "due": now + self.emulator.batch_processing_s,
            "started": now,  # the emulated clock (monotonic seconds) its first entry runs at
            "requests": requests,
            "status": "in_progress",
            "cancel_at": None,
            "ended": None,
            "results": None,
        }
        with self._registry_lock:
            self.batches[batch["id"]] = batch
        entry["batch_id"] = batch["id"]
        return Reply(200, self._batch_json(batch))

    def _advance(self, batch: dict[str, Any]) -> None:
        with self._finish_lock:
            self._finish_if_due(batch)

    def _finish_if_due(self, batch: dict[str, Any]) -> None:
        """Finish a batch whose processing time has passed (or that was canceled).

        Its entries run one after another over `batch_duration_s` emulated seconds from creation
        (evenly spread), so a 5-minute cache written by an early entry has expired for a late one,
        while a 1-hour cache lives on: batches can take longer than 5 minutes
        (https://platform.claude.com/docs/en/build-with-claude/batch-processing).
        """
        if batch["results"] is not None:
            return
        canceled = batch["status"] == "canceling"
        if not canceled and time.monotonic() < batch["due"]:
            return
        results = []
        for index, request in enumerate(batch["requests"]):
            at = batch["started"] + self._entry_offset(index, len(batch["requests"]))
            result = {"type": "canceled"} if canceled else self._batch_entry(request["params"], at)
            results.append({"custom_id": request["custom_id"], "result": result})
        batch["results"], batch["status"], batch["ended"] = results, "ended", time.time()

    def _entry_offset(self, index: int, count: int) -> float:
        """Emulated seconds after a batch's creation at which its entry `index` of `count` runs."""
        return self.emulator.batch_duration_s * index / (count - 1) if count > 1 else 0.0

    def _batch_entry(self, params: dict[str, Any], at: float) -> dict[str, Any]:
        """One entry's result at emulated time `at`: a refused entry is `errored` with the API's error.

        https://platform.claude.com/docs/en/build-with-claude/batch-processing (result types).
        """
        refusal = self.emulator.refusal(params, api_rules.MESSAGES_FIELDS)
        if refusal:
            return {"type": "errored", "error": error_body(refusal[1], refusal[2])}
        model = self.emulator.model_for(str(params["model"]))
        assert model is not None
        usage, cache = self.emulator._token_usage(params, model)
        with self.emulator._lock:
            fault = self.emulator._draw_fault(online=False)
            usage = self.emulator.prompt_cache.use(usage, cache, at)
            self.emulator.prompt_cache.store(cache, at)
        if fault == "expired":
            return {"type": "expired"}
        if fault in ("server_error", "drop"):
            return {"type": "errored", "error": error_body("api_error", "Internal server error")}
        if fault == "overloaded":
            return {"type": "errored", "error": error_body("overloaded_error", "Overloaded")}
        message, _ = self.emulator.build_message(params, usage, fault, model)
        return {"type": "succeeded", "message": message}

    def _batch_json(self, batch: dict[str, Any]) -> dict[str, Any]:
        counts = Counter({"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
        if batch["results"] is None:
            counts["processing"] = len(batch["requests"])
        else:
            counts.update(r["result"]["type"] for r in batch["results"])
        ended = batch["status"] == "ended"
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": batch["status"],
            "request_counts": dict(counts),
            "created_at": rfc3339(batch["created"]),
            "expires_at": rfc3339(batch["created"] + 86_400),
            "ended_at": rfc3339(batch["ended"]) if ended else None,
            "cancel_initiated_at": rfc3339(batch["cancel_at"]) if batch["cancel_at"] else None,
            "archived_at": None,
            "results_url": f"{self.emulator.base_url}/v1/messages/batches/{batch['id']}/results" if ended else None,
        }

    def handle_batch(self, method: str, batch_id: str, action: str | None) -> Reply:
        with self._registry_lock:
            batch = self.batches.get(batch_id)
        if batch is None:
            return Reply(404, error_body("not_found_error", f"no message batch {batch_id}"))
        if method == "POST" and action == "/cancel":
            with self._finish_lock:
                if batch["status"] == "in_progress":
                    batch["status"], batch["cancel_at"] = "canceling", time.time()
            return Reply(200, self._batch_json(batch))
        if method == "DELETE" and action is None:
            self._advance(batch)
            if batch["status"] != "ended":
                return Reply(400, error_body("invalid_request_error", "batch is still processing"))
            with self._registry_lock:
                self.batches.pop(batch_id, None)
            return Reply(200, {"id": batch_id, "type": "message_batch_deleted"})
        if method != "GET":
            return Reply(405, error_body("invalid_request_error", "method not allowed"))
        self._advance(batch)
        if action == "/results":
            if batch["results"] is None:
                return Reply(400, error_body("invalid_request_error", "batch has not ended"))
            lines = "".join(json.dumps(r) + "\n" for r in batch["results"])
            return Reply(200, raw=lines.encode(), content_type="application/x-jsonl")
        return Reply(200, self._batch_json(batch))

    def list_batches(self) -> Reply:
        with self._registry_lock:
            batches = list(self.batches.values())
        for batch in batches:
            self._advance(batch)
        data = [self._batch_json(b) for b in reversed(batches)]
        return Reply(
            200,
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )
