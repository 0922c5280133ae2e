"""The review page of `mwe review`: a local web app to check a set's labels one item at a time.

A small Starlette app over the store. The page (``mwe/review/web/review.*``) fetches each item as JSON
and writes its text with ``textContent``, so nothing a generator wrote can become markup; the
Content-Security-Policy allows only the app's own script and style besides. Every answer is
stored as soon as it is given (one short write per answer: the store is opened per request, so
other mwe commands can read it while the page is open), and the page opens at the reviewer's
first unanswered item, so leaving and coming back resumes where they stopped.

The judge's label confidence is not sent for an item until the reviewer has answered it, so it
cannot anchor their answer; it is shown after.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mwe.errors import MweError, StoreError, StoreLockedError, UsageError
from mwe.review.reviews import check_answer, review_order, review_summary
from mwe.store import EvalSetInfo, Store, SuiteInfo

# Nothing but the app's own script, style and API: an injected tag could load nothing, run nothing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MAX_NOTE = 4000
# An answer is a verdict, a relevance and a note of MAX_NOTE characters (12 bytes each at most,
# as JSON escapes of astral characters): a body past this is refused unread, so one request
# cannot fill the memory, and a body of more fields than an answer has is refused as well.
MAX_BODY = 64 * 1024
MAX_FIELDS = 8
_ASSETS = {
    "common.js": "text/javascript",
    "review.js": "text/javascript",
    "transcripts.js": "text/javascript",
    "review.css": "text/css",
}


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse an address other machines can reach unless ``allow_remote``: the page shows the
    store's items to anyone who can open it, and takes answers from them."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"refusing to serve the review page on {host}: anyone who can reach it can read the "
            "set and answer for you; use 127.0.0.1, or pass --allow-remote if that is intended"
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0 picks a free port), or a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port; "
            "0 picks a free one)"
        ) from None
    sock.listen(64)
    return sock


class _Session:
    """What both review sessions share: the store opened per request, and the order."""

    db: str
    order: list[int]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def store(self, *, read_only: bool = True) -> Iterator[Store]:
        """The store, opened for one request and closed after it, so the page holds no lock
        (it was migrated when the session started)."""
        with self._lock, Store(self.db, read_only=read_only, create=False) as store:
            yield store

    def next_open(self, answered: dict[int, Any], after: int = -1) -> int | None:
        """The first position after ``after`` (else from the start) not yet answered."""
        for pos in [*range(after + 1, len(self.order)), *range(after + 1)]:
            if self.order[pos] not in answered:
                return pos
        return None


@dataclass
class ReviewSession(_Session):
    """What one `mwe review` serves: one set version, one reviewer, one order of items."""

    db: str
    info: EvalSetInfo
    reviewer: str
    order: list[int]

    def answered(self, store: Store) -> dict[int, dict[str, Any]]:
        """This reviewer's answers on the set, by item index."""
        return {
            r.idx: {"verdict": r.verdict, "relevance": r.relevance, "note": r.note}
            for r in store.reviews(self.info, self.reviewer)
        }


def allowed_hosts(host: str, allow_remote: bool) -> list[str]:
    """The Host headers the app answers: the loopback names and the address it is served on
    (any, with ``allow_remote``). Refusing others keeps DNS-rebinding pages out."""
    if allow_remote:
        return ["*"]
    return sorted({"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host})


def create_app(session: ReviewSession, *, hosts: list[str] | None = None) -> Starlette:
    """The review app for ``session``, answering the Host headers ``hosts`` (default:
    :func:`allowed_hosts` of 127.0.0.1)."""

    def state(request: Request) -> Response:
        with session.store() as store:
            answered = session.answered(store)
        reviewed = sum(idx in answered for idx in session.order)
        return _json(
            {
                "set": session.info.ref,
                "behavior": session.info.description or session.info.name.replace("-", " "),
                "reviewer": session.reviewer,
                "total": len(session.order),
                "reviewed": reviewed,
                "position": session.next_open(answered),
            }
        )

    def item(request: Request) -> Response:
        pos = _position(request, session)
        with session.store() as store:
            answer = session.answered(store).get(session.order[pos])
            return _json(_item_view(store, session, pos, answer))

    async def save(request: Request) -> Response:
        pos = _position(request, session)
        body = await read_answer(request, "answer", {"verdict", "relevance", "note"})
        verdict: Any = body.get("verdict")  # checked as the answer is, just below
        relevance: Any = body.get("relevance")
        try:
            note = _text(body.get("note"), "note")
            check_answer(verdict, relevance)
        except MweError as exc:
            raise HTTPException(400, f"bad answer: {exc}") from None
        note = (note or "").strip()[:MAX_NOTE] or None
        return _json(await run_in_threadpool(store_answer, pos, verdict, relevance, note))

    def store_answer(pos: int, verdict: str, relevance: int | None, note: str | None) -> Any:
        idx = session.order[pos]
        with session.store(read_only=False) as store:
            store.save_review(session.info, idx, session.reviewer, verdict, relevance, note)
            answered = session.answered(store)
            view = _item_view(store, session, pos, answered[idx])
        view["next"] = session.next_open(answered, pos)
        view["reviewed"] = sum(i in answered for i in session.order)
        return view

    def summary(request: Request) -> Response:
        with session.store() as store:
            return _json(
                review_summary(store, session.info).model_dump() | {"set": session.info.ref}
            )

    return _app(
        "review.html",
        [
            Route("/api/state", state),
            Route("/api/items/{pos:int}", item),
            Route("/api/items/{pos:int}/review", save, methods=["PUT"]),
            Route("/api/summary", summary),
        ],
        hosts,
    )


def _app(page: str, routes: list[Route], hosts: list[str] | None) -> Starlette:
    """The page ``web/<page>`` at ``/``, the static files, and ``routes``, behind the Host
    check; a locked store is a 503 saying nothing was saved."""

    async def index(request: Request) -> Response:
        template = resources.files("mwe").joinpath(f"review/web/{page}").read_text("utf-8")
        return HTMLResponse(template, headers=_headers())

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:
            return JSONResponse({"error": f"no asset {name}"}, status_code=404)
        body = resources.files("mwe").joinpath(f"review/web/{name}").read_text("utf-8")
        return Response(body, media_type=_ASSETS[name], headers=_headers())

    async def store_busy(request: Request, exc: Exception) -> Response:
        # Another mwe command is writing to the store: say so, and nothing is lost by retrying.
        return _json({"error": f"{exc} (nothing was saved; try again)"}, 503)

    async def store_unusable(request: Request, exc: Exception) -> Response:
        # The store was moved, deleted, made read-only or damaged under the page: retrying
        # cannot help until the reviewer fixes it, and nothing was written anywhere.
        return _json({"error": f"{exc} (nothing was saved)"}, 409)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _json({"error": exc.detail}, exc.status_code)

    async def failed(request: Request, exc: Exception) -> Response:
        # Even a bug answers the page in JSON with one line, never a bare "Internal Server Error".
        return _json({"error": f"the review server failed: {type(exc).__name__}: {exc}"}, 500)

    return Starlette(
        routes=[Route("/", index), Route("/static/{name}", asset), *routes],
        middleware=[
            Middleware(
                TrustedHostMiddleware,
                allowed_hosts=hosts if hosts is not None else allowed_hosts("127.0.0.1", False),
            )
        ],
        exception_handlers={
            StoreLockedError: store_busy,
            StoreError: store_unusable,
            HTTPException: refused,
            Exception: failed,
        },
    )


async def read_answer(request: Request, what: str, fields: set[str]) -> dict[str, Any]:
    """The JSON object of a PUT, holding only ``fields``: refused with a 4xx (raised as an
    HTTPException) if it is not JSON, over :data:`MAX_BODY` bytes or :data:`MAX_FIELDS` fields,
    not UTF-8, or holds another field."""
    if request.headers.get("content-type", "").split(";")[0] != "application/json":
        # A cross-site form cannot send JSON without a preflight, which this app refuses.
        raise HTTPException(415, f"send the {what} as application/json")
    too_large = HTTPException(413, f"the {what} is over {MAX_BODY:,} bytes; nothing was saved")
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise too_large  # refused before a byte of it is read
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:  # a chunked body has no length to check first
            raise too_large
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the {what} is not UTF-8 text (byte {exc.start})") from None
    count = 0

    def limited(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal count
        count += len(pairs)
        if count > MAX_FIELDS:
            raise HTTPException(413, f"the {what} has over {MAX_FIELDS} fields; nothing was saved")
        return dict(pairs)

    try:
        body = json.loads(text, object_pairs_hook=limited)
    except (ValueError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise HTTPException(400, f"the {what} is not valid JSON ({detail})") from None
    if not isinstance(body, dict):
        raise HTTPException(400, f"the {what} must be a JSON object")
    if unknown := sorted(set(body) - fields):
        raise HTTPException(
            400, f"unknown field {unknown[0]!r} in the {what} (known: {', '.join(sorted(fields))})"
        )
    return body


def _text(value: object, field: str) -> str | None:
    """``value`` if it is text the store can hold (or None), else a UsageError."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{field} must be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate such as "\ud800" in the JSON
        raise UsageError(
            f"{field} holds {value[exc.start]!r}, half of a surrogate pair, which is not text"
        ) from None
    return value


@dataclass
class TranscriptSession(_Session):
    """What `mwe review SUITE` serves: one rollout suite's transcripts, one reviewer."""

    db: str
    suite: SuiteInfo
    reviewer: str
    order: list[int]  # rollout ids, in review order

    def scored(self, store: Store) -> dict[int, dict[str, Any]]:
        """This reviewer's scores, by rollout id."""
        return {
            rid: {"score": score, "comment": comment}
            for rid, who, score, comment in store.transcript_reviews(self.suite)
            if who == self.reviewer
        }


def create_transcript_app(
    session: TranscriptSession, *, hosts: list[str] | None = None
) -> Starlette:
    """The transcript review app: each rollout's turns with the judge's quoted evidence
    marked, a 1-10 score per transcript; the judge's own score only once it is scored."""

    def state(request: Request) -> Response:
        with session.store() as store:
            scored = session.scored(store)
        return _json(
            {
                "suite": session.suite.ref,
                "behavior": session.suite.description,
                "reviewer": session.reviewer,
                "total": len(session.order),
                "reviewed": sum(rid in scored for rid in session.order),
                "position": session.next_open(scored),
            }
        )

    def transcript(request: Request) -> Response:
        pos = _position(request, session)
        with session.store() as store:
            answer = session.scored(store).get(session.order[pos])
            return _json(_transcript_view(store, session, pos, answer))

    async def save(request: Request) -> Response:
        pos = _position(request, session)
        body = await read_answer(request, "score", {"score", "comment"})
        score = body.get("score")
        try:
            if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 10:
                raise UsageError(f"the score is a whole number from 1 to 10, not {score!r}")
            comment = _text(body.get("comment"), "comment")
        except MweError as exc:
            raise HTTPException(400, f"bad score: {exc}") from None
        comment = (comment or "").strip()[:MAX_NOTE] or None
        return _json(await run_in_threadpool(store_score, pos, score, comment))

    def store_score(pos: int, score: int, comment: str | None) -> Any:
        rid = session.order[pos]
        with session.store(read_only=False) as store:
            store.save_transcript_review(rid, session.reviewer, score, comment)
            scored = session.scored(store)
            view = _transcript_view(store, session, pos, scored[rid])
        view["next"] = session.next_open(scored, pos)
        view["reviewed"] = sum(r in scored for r in session.order)
        return view

    return _app(
        "transcripts.html",
        [
            Route("/api/state", state),
            Route("/api/transcripts/{pos:int}", transcript),
            Route("/api/transcripts/{pos:int}/review", save, methods=["PUT"]),
        ],
        hosts,
    )


def _transcript_view(
    store: Store, session: TranscriptSession, pos: int, answer: dict[str, Any] | None
) -> dict[str, Any]:
    rid = session.order[pos]
    (row,) = [r for r in store.rollouts(session.suite) if r.id == rid]
    view: dict[str, Any] = {
        "position": pos,
        "total": len(session.order),
        "id": rid,
        "target": row.target,
        "scenario": session.suite.scenarios[row.scenario],
        "turns": [{"role": role, "content": text} for role, text in row.turns],
        "evidence": row.evidence,
        "answer": answer,
    }
    if answer is not None:  # the judge's scores only once the reviewer has given theirs
        view["judge"] = {
            "score": row.score,
            "realism": row.realism,
            "awareness": row.awareness,
            "justification": row.justification,
        }
    return view


def _position(request: Request, session: _Session) -> int:
    pos = int(request.path_params["pos"])
    if not 0 <= pos < len(session.order):
        raise HTTPException(404, f"no item {pos + 1}: the review has {len(session.order)}")
    return pos


def _item_view(
    store: Store, session: ReviewSession, pos: int, answer: dict[str, Any] | None
) -> dict[str, Any]:
    """One item as the page shows it; the judge's confidence only once it is answered."""
    idx = session.order[pos]
    item = store.items_at(session.info, [idx])[0]
    view: dict[str, Any] = {
        "position": pos,
        "total": len(session.order),
        "idx": idx,
        "format": item.format,
        "text": item.text,
        "matching": item.answer_matching_behavior,
        "not_matching": item.not_matching,
        "answer": answer,
    }
    if answer is not None:
        view["label_confidence"] = item.label_confidence
    return view


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _json(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status, headers=_headers())


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on the bound ``sock`` until Ctrl-C."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def start_transcript_session(
    store: Store, suite: SuiteInfo, reviewer: str, sample: int | None, seed: int, db: str
) -> TranscriptSession:
    """The transcripts of ``suite`` to review, in a seeded order (a sample of them if asked)."""
    ids = [r.id for r in store.rollouts(suite)]
    if not ids:
        raise UsageError(f"{suite.ref} has no stored rollout to review")
    return TranscriptSession(
        db, suite, reviewer, [ids[i] for i in review_order(len(ids), sample, seed)]
    )


def start_session(
    store: Store, ref: str, reviewer: str, sample: int | None, seed: int, db: str
) -> ReviewSession:
    """Resolve ``ref`` to one version and fix the order its items are reviewed in."""
    info = store.resolve(ref)
    if info.item_count == 0:
        raise UsageError(f"{info.ref} has no items to review")
    return ReviewSession(db, info, reviewer, review_order(info.item_count, sample, seed))
