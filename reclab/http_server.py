"""The HTTP endpoint: :class:`reclab.serving.RecommendationService` behind the SageMaker contract.

A SageMaker inference container answers two routes on port 8080: ``GET /ping`` (200 once it can
serve, anything else while it cannot) and ``POST /invocations``. This module is that contract as
a plain WSGI application, served by waitress (a pure-Python production WSGI server):

* the socket is bound first and the model is loaded in a background thread, so ``/ping`` answers
  503 (with ``status: "loading"``) at once instead of refusing connections, and 503 with the
  error message for good if loading fails (the log says why);
* ``POST /invocations`` takes one JSON object with exactly one query key (``user_id``,
  ``user_ids``, ``items`` (+ ``ratings``) or ``similar_to``) and optional ``k``, ``rules``,
  ``explain``;
* every client mistake gets a 4xx with a JSON ``{"error": "..."}`` body naming the problem, an
  unexpected failure a 500 JSON body without traceback (the traceback goes to the log).

``GET /info`` says which run and family are served. Nothing here knows about models: scoring,
id coercion and business-rule validation stay in the service, whose
:class:`reclab.errors.InputError` becomes a 400.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from reclab.errors import InputError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: a 1,000-user batch with rules is a few KiB
MAX_USER_IDS = 1000  # users per request, the service's own batch limit
QUERY_KEYS = ("user_id", "user_ids", "items", "similar_to")
OPTION_KEYS = ("k", "rules", "explain", "ratings")
ROUTES = {"/ping": ("GET",), "/invocations": ("POST",), "/info": ("GET",)}

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class HTTPError(Exception):
    """A request the server refuses; becomes ``{"error": message}`` with this status."""

    def __init__(
        self, status: HTTPStatus, message: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class ModelState:
    """The service being loaded, loaded, or failed to load; shared by the request threads.

    Args:
        loader: Builds the service (e.g. ``lambda: RecommendationService.from_run(run_id)``).
    """

    def __init__(self, loader: Callable[[], Any]) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self.service: Any = None
        self.error: str | None = None
        self.status = "loading"
        self.load_seconds: float | None = None

    def load(self) -> None:
        """Run the loader; record the service or the error. Never raises."""
        start = time.perf_counter()
        try:
            service = self._loader()
        except InputError as error:
            # a wrong run id or tag: the message says how to fix it, no traceback needed
            self._set("failed", error=str(error))
            logger.error("model load failed: %s", error)
            return
        except Exception as error:  # noqa: BLE001 - any failure must reach /ping, not kill us
            self._set("failed", error=f"{type(error).__name__}: {error}")
            logger.exception("model load failed")
            return
        self.load_seconds = time.perf_counter() - start
        self._set("ready", service=service)
        logger.info("model loaded in %.1f s: ready to serve", self.load_seconds)

    def load_in_background(self) -> threading.Thread:
        """Start :meth:`load` in a daemon thread (it must not keep a stopping server alive)."""
        thread = threading.Thread(target=self.load, name="model-loader", daemon=True)
        thread.start()
        return thread

    def _set(self, status: str, service: Any = None, error: str | None = None) -> None:
        with self._lock:
            self.service, self.error, self.status = service, error, status


def create_app(
    state: ModelState, max_body_bytes: int = MAX_BODY_BYTES, max_user_ids: int = MAX_USER_IDS
) -> WSGIApp:
    """The WSGI application serving ``/ping``, ``/invocations`` and ``/info``.

    Args:
        state: The model state (loading, ready or failed).
        max_body_bytes: Larger request bodies get 413.
        max_user_ids: Longer ``user_ids`` lists get 413.

    Returns:
        A WSGI callable.
    """

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        headers: list[tuple[str, str]] = []
        try:
            if path not in ROUTES:
                raise HTTPError(
                    HTTPStatus.NOT_FOUND,
                    f"no route {path!r}; routes: GET /ping, POST /invocations, GET /info",
                )
            allowed = ROUTES[path]
            if method not in allowed:
                raise HTTPError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"{method} is not allowed on {path}; use {' or '.join(allowed)}",
                    headers=[("Allow", ", ".join(allowed))],
                )
            if path == "/ping":
                status, body = _ping(state)
            else:
                service = _ready_service(state)
                if path == "/info":
                    status, body = HTTPStatus.OK, _info(service, state)
                else:
                    request = _read_json(environ, max_body_bytes)
                    status, body = HTTPStatus.OK, invoke(service, request, max_user_ids)
        except HTTPError as error:
            status, body, headers = error.status, {"error": error.message}, error.headers
        except InputError as error:
            status, body = HTTPStatus.BAD_REQUEST, {"error": str(error)}
        except OverflowError as error:
            # a client's number too large for the service's arithmetic (e.g. a filter of 1e400)
            logger.warning("%s %s: overflow treated as a bad request: %s", method, path, error)
            status = HTTPStatus.BAD_REQUEST
            body = {"error": f"a number in the request is out of range ({error})"}
        except Exception:  # noqa: BLE001 - never show a traceback to the client
            request_id = uuid.uuid4().hex[:12]
            logger.exception("request %s: %s %s failed", request_id, method, path)
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            body = {"error": f"internal server error (request id {request_id}; see server log)"}
        if status >= 400 and path != "/ping":  # load balancers ping often; /ping 503 is normal
            logger.info("%s %s -> %d: %s", method, path, status, body.get("error"))
        try:
            payload = json.dumps(body, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError):
            logger.exception("%s %s: the response is not JSON-serialisable", method, path)
            status, headers = HTTPStatus.INTERNAL_SERVER_ERROR, []
            payload = b'{"error": "internal server error (response not serialisable; see log)"}'
        start_response(
            f"{status.value} {status.phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                *headers,
            ],
        )
        return [payload]

    return app


def invoke(service: Any, request: dict, max_user_ids: int = MAX_USER_IDS) -> dict:
    """Answer one ``/invocations`` body with the service.

    Args:
        service: A :class:`reclab.serving.RecommendationService` (or anything with its methods).
        request: The decoded JSON body.
        max_user_ids: Longest accepted ``user_ids`` list.

    Returns:
        The service's response dict; ``{"results": [...]}`` for ``user_ids``.

    Raises:
        HTTPError: On a body that is not a well-formed query (400) or too many users (413).
        InputError: From the service, on ids, k or rules it refuses.
    """
    query, value = _query(request)
    k, rules, explain = _options(request, service.MAX_K)
    _check_value(query, value, max_user_ids)
    if query == "user_ids":
        results = service.recommend_many(value, k=k, rules=rules, explain=explain)
        return {"results": results}
    if query == "user_id":
        return service.recommend(value, k=k, rules=rules, explain=explain)
    if query == "items":
        ratings = request.get("ratings")
        return service.recommend_for_items(
            value, ratings=ratings, k=k, rules=rules, explain=explain
        )
    if explain:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "explain is not available for similar_to")
    return service.similar_items(value, k=k, rules=rules)


def _query(request: Any) -> tuple[str, Any]:
    """The body's one query key and its value.

    Raises:
        HTTPError: On a body that is not an object, unknown fields, not exactly one query key,
            or ratings without items (400).
    """
    if not isinstance(request, dict):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f'the body must be a JSON object, e.g. {{"user_id": 196, "k": 10}}; '
            f"got a JSON {_json_type(request)}",
        )
    unknown = sorted(set(request) - set(QUERY_KEYS) - set(OPTION_KEYS))
    if unknown:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(QUERY_KEYS + OPTION_KEYS)}",
        )
    given = [key for key in QUERY_KEYS if key in request]
    if len(given) != 1:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f"give exactly one of {', '.join(QUERY_KEYS)}; got "
            + (", ".join(given) if given else "none"),
        )
    query = given[0]
    value = request[query]
    if "ratings" in request and query != "items":
        raise HTTPError(HTTPStatus.BAD_REQUEST, "ratings is only allowed together with items")
    return query, value


def _check_value(query: str, value: Any, max_user_ids: int) -> None:
    """The query value's JSON type: one id, or a list (of at most ``max_user_ids`` users).

    Raises:
        HTTPError: On a value of the wrong JSON type (400) or too many users (413).
    """
    if query in ("user_id", "similar_to") and isinstance(value, list | dict):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f"{query} must be one id (integer or string); got a JSON {_json_type(value)}"
            + ("; use user_ids for several users" if query == "user_id" else ""),
        )
    if query in ("user_ids", "items") and not isinstance(value, list):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"{query} must be a JSON list; got {_json_type(value)}"
        )
    if query == "user_ids" and len(value) > max_user_ids:
        raise HTTPError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"at most {max_user_ids} user_ids per request, got {len(value)}; split the list",
        )


def _options(request: dict, max_k: int) -> tuple[int, dict | None, bool]:
    """``k``, ``rules`` and ``explain`` of the body, with JSON types the service would not name.

    Raises:
        HTTPError: On a k that is not an integer, rules that are not an object, or an explain
            that is not a boolean (400).
    """
    k = request.get("k", 10)
    # the service checks k's range; a JSON type it would not name clearly is refused here
    if isinstance(k, bool) or not isinstance(k, int):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f"k must be an integer from 1 to {max_k}; got {_json_type(k)} {json.dumps(k)[:50]}",
        )
    explain = request.get("explain", False)
    if not isinstance(explain, bool):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"explain must be true or false; got {_json_type(explain)}"
        )
    rules = request.get("rules")
    if rules is not None and not isinstance(rules, dict):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f'rules must be a JSON object (e.g. {{"exclude_items": [50]}}); '
            f"got {_json_type(rules)}",
        )
    return k, rules, explain


def warm_up(service: Any) -> None:
    """One small query of each kind, so /ping turns 200 only when the first requests are fast.

    The bundles deserialise their models on first use; without this, the first fold-in and
    similar-items requests would pay for it (and concurrent first requests twice). Uses the
    public API only: the most popular item stands in for a real query.
    """
    try:
        popular = service.recommend_for_items([], k=1)["items"]
    except InputError:  # a run without a popularity ranking: no item stands in for a query
        return
    if not popular:
        return
    item = popular[0]["item_id"]
    service.recommend_for_items([item], k=1)
    service.similar_items(item, k=1)


def serve(
    app: WSGIApp,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 4,
    max_body_bytes: int = MAX_BODY_BYTES,
    on_bound: Callable[[str, int], None] | None = None,
) -> None:
    """Serve the app with waitress until the process is stopped.

    Args:
        app: The WSGI app.
        host: Interface to bind; 127.0.0.1 (loopback only) unless a container needs 0.0.0.0.
        port: TCP port (0 picks a free one).
        threads: Worker threads answering requests.
        max_body_bytes: The app's body limit; waitress drops bodies over 4x this before
            buffering them (its own plain-text 413), the app answers the rest with JSON.
        on_bound: Called with the bound host and port once the socket listens (e.g. to
            start loading the model).
    """
    from waitress import create_server

    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=4 * max_body_bytes,
        ident="reclab",
        clear_untrusted_proxy_headers=True,
    )
    bound_host, bound_port = server.effective_host, server.effective_port
    logger.info("listening on http://%s:%s (%d threads)", bound_host, bound_port, threads)
    if on_bound is not None:
        on_bound(bound_host, bound_port)
    server.run()


def _ping(state: ModelState) -> tuple[HTTPStatus, dict]:
    if state.status == "ready":
        return HTTPStatus.OK, {"status": "ready", "run": state.service.run_pathspec}
    if state.status == "failed":
        return HTTPStatus.SERVICE_UNAVAILABLE, {
            "status": "failed",
            "error": f"model could not be loaded: {state.error}",
        }
    return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "loading", "error": "model is loading"}


def _ready_service(state: ModelState) -> Any:
    if state.status == "ready":
        return state.service
    if state.status == "failed":
        raise HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, f"model could not be loaded: {state.error}")
    raise HTTPError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "model is loading; retry when GET /ping answers 200",
        headers=[("Retry-After", "1")],
    )


def _info(service: Any, state: ModelState) -> dict:
    info = service.info()
    info["load_seconds"] = round(state.load_seconds or 0.0, 3)
    info["max_k"] = service.MAX_K
    return info


def _read_json(environ: dict, max_body_bytes: int) -> Any:
    """The request body as JSON, after the content type and size checks."""
    content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type must be application/json; got {content_type or 'none'}",
        )
    raw_length = environ.get("CONTENT_LENGTH") or "0"
    try:
        length = int(raw_length)
    except ValueError:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST, f"bad Content-Length header {raw_length!r}"
        ) from None
    if length > max_body_bytes:
        raise HTTPError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"request body is {length} bytes; the limit is {max_body_bytes} bytes",
        )
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    if not body.strip():
        raise HTTPError(HTTPStatus.BAD_REQUEST, "empty body; send a JSON object")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except RecursionError:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "malformed JSON: nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {error}") from None


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's json would accept them
    raise HTTPError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {name} is not a JSON value")


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
