"""The batch protocols of the test server: OpenAI's Batch API (upload a JSONL file, create a
batch, poll it, read its output and error files) and Anthropic's Message Batches (create, poll,
read the JSONL results), answered from the server's script as its direct routes are.

A batch reports ``in_progress`` for ``ServerConfig.batch_polls`` polls, then ends. Fault
injection: a share (``batch_fail_rate``) of the lines fail, every (1 / rate)-th custom_id in the
order first submitted (a hash of the custom_id would depend on the server's port, which is in
the cache key, and could pick none), and only on that first submission, so a resubmission
succeeds. OpenAI's failures
alternate between a 500 line and an expired line in the error file, Anthropic's between
``errored`` and ``expired`` results. The server's stats count every batch created (with its
custom_ids) and every custom_id's submissions.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .fake_llm_server import FakeLLMServer

Reply = Callable[["FakeLLMServer", dict[str, Any]], dict[str, Any]]


class BatchProtocols:
    """The batch routes of one server, and the files and batches they hold."""

    def __init__(self, server: FakeLLMServer, openai_reply: Reply, anthropic_reply: Reply):
        self.server = server
        self.openai_reply, self.anthropic_reply = openai_reply, anthropic_reply
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._first_submissions = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{id}/content", self.file_content)
        app.router.add_post("/v1/batches", self.create_openai)
        app.router.add_get("/v1/batches/{id}", self.poll_openai)
        app.router.add_post("/v1/messages/batches", self.create_anthropic)
        app.router.add_get("/v1/messages/batches/{id}", self.poll_anthropic)
        app.router.add_get("/v1/messages/batches/{id}/results", self.anthropic_results)

    def _new_id(self, prefix: str) -> str:
        # Unique across servers too, as a provider's ids are: tests may share one store.
        return f"{prefix}_{self.server.port}_{next(self._ids)}"

    def _fails(self, custom_id: str) -> str | None:
        """Count a submission of ``custom_id``; on its first, maybe fail it: "error" or
        "expired"."""
        stats = self.server.stats
        stats.batch_submissions[custom_id] += 1
        rate = self.server.config.batch_fail_rate
        if stats.batch_submissions[custom_id] > 1 or not rate:
            return None
        self._first_submissions += 1
        every = max(1, round(1 / rate))
        if self._first_submissions % every:
            return None
        stats.batch_failed[custom_id] += 1
        return "error" if (self._first_submissions // every) % 2 else "expired"

    def _poll(self, batch_id: str) -> dict[str, Any] | None:
        batch = self.batches.get(batch_id)
        if batch is not None:
            batch["polls"] += 1
            batch["ended"] = batch["polls"] > self.server.config.batch_polls
        return batch

    # -- OpenAI ---------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField) and form["purpose"] == "batch"
        data = upload.file.read()
        file_id = self._new_id("file")
        self.files[file_id] = data
        return web.json_response(_file_object(file_id, upload.filename, len(data), "batch"))

    async def file_content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["id"])
        if data is None:
            return _not_found("openai", "no such file")
        return web.Response(body=data, content_type="application/octet-stream")

    async def create_openai(self, request: web.Request) -> web.Response:
        payload = await request.json()
        data = self.files.get(payload["input_file_id"])
        if data is None:
            return _not_found("openai", "no such file")
        assert payload["endpoint"] == "/v1/chat/completions", payload
        lines = [json.loads(text) for text in data.decode().splitlines() if text.strip()]
        batch_id = self._new_id("batch")
        self.server.stats.batches.append([line["custom_id"] for line in lines])
        output, errors = [], []
        for n, line in enumerate(lines):
            assert line["url"] == "/v1/chat/completions" and line["method"] == "POST"
            record: dict[str, Any] = {"id": f"batch_req_{n}", "custom_id": line["custom_id"]}
            fault = self._fails(line["custom_id"])
            if fault == "expired":
                record["response"] = None
                record["error"] = {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion "
                    "window expired.",
                }
                errors.append(record)
            elif fault == "error":
                record["response"] = {
                    "status_code": 500,
                    "request_id": f"req_{n}",
                    "body": {"error": {"message": "internal error", "type": "server_error"}},
                }
                record["error"] = None
                errors.append(record)
            else:
                body = self.openai_reply(self.server, line["body"])
                record["response"] = {"status_code": 200, "request_id": f"req_{n}", "body": body}
                record["error"] = None
                output.append(record)
        self.batches[batch_id] = {
            "protocol": "openai",
            "polls": 0,
            "ended": False,
            "input_file_id": payload["input_file_id"],
            "total": len(lines),
            "output": output,
            "errors": errors,
        }
        return web.json_response(self._openai_batch(batch_id))

    async def poll_openai(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["id"]
        if self._poll(batch_id) is None:
            return _not_found("openai", "no such batch")
        return web.json_response(self._openai_batch(batch_id))

    def _openai_batch(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        ended = batch["ended"]
        output_id = error_id = None
        if ended and "output_file_id" not in batch:
            for key, records in (
                ("output_file_id", batch["output"]),
                ("error_file_id", batch["errors"]),
            ):
                batch[key] = None
                if records:
                    batch[key] = self._new_id("file")
                    self.files[batch[key]] = "".join(json.dumps(r) + "\n" for r in records).encode()
        if ended:
            output_id, error_id = batch["output_file_id"], batch["error_file_id"]
        return {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": batch["input_file_id"],
            "completion_window": "24h",
            "status": "completed"
            if ended
            else ("validating" if not batch["polls"] else "in_progress"),
            "created_at": 0,
            "output_file_id": output_id,
            "error_file_id": error_id,
            "request_counts": {
                "total": batch["total"],
                "completed": len(batch["output"]) if ended else 0,
                "failed": len(batch["errors"]) if ended else 0,
            },
        }

    # -- Anthropic ------------------------------------------------------------------------

    async def create_anthropic(self, request: web.Request) -> web.Response:
        payload = await request.json()
        batch_id = self._new_id("msgbatch")
        requests = payload["requests"]
        self.server.stats.batches.append([r["custom_id"] for r in requests])
        results = []
        for r in requests:
            fault = self._fails(r["custom_id"])
            if fault == "expired":
                result: dict[str, Any] = {"type": "expired"}
            elif fault == "error":
                result = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": "api_error", "message": "internal error"},
                    },
                }
            else:
                result = {
                    "type": "succeeded",
                    "message": self.anthropic_reply(self.server, r["params"]),
                }
            results.append({"custom_id": r["custom_id"], "result": result})
        self.batches[batch_id] = {
            "protocol": "anthropic",
            "polls": 0,
            "ended": False,
            "results": results,
        }
        return web.json_response(self._anthropic_batch(batch_id))

    async def poll_anthropic(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["id"]
        if self._poll(batch_id) is None:
            return _not_found("anthropic", "no such batch")
        return web.json_response(self._anthropic_batch(batch_id))

    async def anthropic_results(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None or not batch["ended"]:
            return _not_found("anthropic", "no results for this batch")
        text = "".join(json.dumps(r) + "\n" for r in batch["results"])
        return web.Response(body=text.encode(), content_type="application/binary")

    def _anthropic_batch(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        ended = batch["ended"]
        kinds = [r["result"]["type"] for r in batch["results"]]
        created = datetime(2026, 1, 1, tzinfo=UTC)
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else len(kinds),
                "succeeded": kinds.count("succeeded") if ended else 0,
                "errored": kinds.count("errored") if ended else 0,
                "canceled": 0,
                "expired": kinds.count("expired") if ended else 0,
            },
            "created_at": created.isoformat(),
            "expires_at": (created + timedelta(days=1)).isoformat(),
            "ended_at": created.isoformat() if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": (
                f"{self.server.url}/v1/messages/batches/{batch_id}/results" if ended else None
            ),
        }


def _file_object(file_id: str, filename: str, size: int, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": 0,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }


def _not_found(protocol: str, message: str) -> web.Response:
    if protocol == "openai":
        body: dict[str, Any] = {"error": {"message": message, "type": "invalid_request_error"}}
    else:
        body = {"type": "error", "error": {"type": "not_found_error", "message": message}}
    return web.json_response(body, status=404)
