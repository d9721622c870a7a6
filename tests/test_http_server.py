"""The HTTP endpoint (flows/serve.py, reclab/http_server.py).

The first part runs the WSGI app in-process with a fake service, for what a real run cannot show
on demand: /ping while the model is still loading, and a 500 from an unexpected exception. The
second part starts the REAL server as a subprocess on the session's ML-100k run and calls every
route over loopback with ``requests``, the bad requests included; the last tests run a server
whose model cannot load and a small load test.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from werkzeug.test import Client

from reclab.errors import InputError
from reclab.http_server import MAX_BODY_BYTES, MAX_USER_IDS, ModelState, create_app, warm_up

# Not `from tests.conftest import ...`: that imports conftest a second time under another name,
# which makes a new temporary Metaflow root and repoints os.environ away from the session's runs.
REPO_ROOT = Path(__file__).resolve().parents[1]
SERVE = REPO_ROOT / "flows" / "serve.py"
LOAD_TEST = REPO_ROOT / "benchmarks" / "load_test_endpoint.py"
JSON = {"Content-Type": "application/json"}
UNKNOWN_USER = 987654321


# ------------------------------------------------------------------------------------------------
# In-process: loading states and unexpected errors
# ------------------------------------------------------------------------------------------------


class FakeService:
    """Just enough of RecommendationService; ``recommend`` fails unexpectedly for user 13."""

    MAX_K = 100
    run_pathspec = "TrainFlow/1"

    def info(self) -> dict:
        return {"family": "fake", "run": self.run_pathspec}

    def recommend(self, user_id, k=10, rules=None, explain=False) -> dict:
        if user_id == 13:
            raise RuntimeError("secret internal detail")
        if user_id == "bad":
            raise InputError("user id 'bad' is not an integer")
        return {"user_id": user_id, "k": k, "items": []}


def test_warm_up_touches_fold_in_and_similar_items() -> None:
    calls = []

    class Recorder:
        def recommend_for_items(self, items, k=10):
            calls.append(("items", items))
            return {"items": [{"item_id": 50}]}

        def similar_items(self, item_id, k=10):
            calls.append(("similar", item_id))

    warm_up(Recorder())
    assert calls == [("items", []), ("items", [50]), ("similar", 50)]


def test_ping_is_503_while_loading_then_200() -> None:
    release = threading.Event()
    state = ModelState(lambda: release.wait(10) and FakeService())
    client = Client(create_app(state))
    thread = state.load_in_background()

    ping = client.get("/ping")
    assert ping.status_code == 503
    assert ping.json == {"status": "loading", "error": "model is loading"}
    early = client.post("/invocations", json={"user_id": 1})
    assert early.status_code == 503 and early.headers["Retry-After"] == "1"
    assert "loading" in early.json["error"]
    assert client.get("/info").status_code == 503

    release.set()
    thread.join(10)
    assert client.get("/ping").status_code == 200
    assert client.post("/invocations", json={"user_id": 1}).json["user_id"] == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InputError("run TrainFlow/9 was not found"), "run TrainFlow/9 was not found"),
        (OSError("disk gone"), "OSError: disk gone"),
    ],
)
def test_failed_load_keeps_ping_503_with_the_reason(error, expected, caplog) -> None:
    def loader():
        raise error

    state = ModelState(loader)
    with caplog.at_level(logging.ERROR, logger="reclab.http_server"):
        state.load()
    client = Client(create_app(state))
    for _ in range(2):  # and stays so
        ping = client.get("/ping")
        assert ping.status_code == 503
        assert ping.json["status"] == "failed"
        assert expected in ping.json["error"]
    assert expected in client.post("/invocations", json={"user_id": 1}).json["error"]
    assert "model load failed" in caplog.text and str(error) in caplog.text


def test_unexpected_exception_is_500_json_without_traceback(caplog) -> None:
    state = ModelState(FakeService)
    state.load()
    client = Client(create_app(state))
    with caplog.at_level(logging.ERROR, logger="reclab.http_server"):
        answer = client.post("/invocations", json={"user_id": 13})
    assert answer.status_code == 500
    assert answer.headers["Content-Type"] == "application/json"
    assert "internal server error" in answer.json["error"]
    assert "secret" not in answer.get_data(as_text=True)
    assert "Traceback" not in answer.get_data(as_text=True)
    # the log has the traceback, under the request id the client got
    assert "secret internal detail" in caplog.text and "Traceback" in caplog.text
    request_id = answer.json["error"].split("request id ")[1].split(";")[0]
    assert request_id in caplog.text
    # a service InputError is the client's mistake
    bad = client.post("/invocations", json={"user_id": "bad"})
    assert bad.status_code == 400 and bad.json == {"error": "user id 'bad' is not an integer"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"user_id": ' + "9" * 5000 + "}", "malformed JSON"),
        ('{"user_id": 1, "k": 1e400}', "k must be an integer"),
    ],
    ids=["deep", "long-int", "huge-float"],
)
def test_pathological_json_is_400(body, message) -> None:
    state = ModelState(FakeService)
    state.load()
    answer = Client(create_app(state)).post(
        "/invocations", data=body, content_type="application/json"
    )
    assert answer.status_code == 400 and message in answer.json["error"]


def test_invocations_answer_as_the_service_on_a_small_run() -> None:
    """The app with a real service on the small in-process run: every query kind, no flow."""
    from reclab.serving import RecommendationService
    from tests.small_run import bundle_of, fitted_models, item_metadata, small_run, small_train

    run = small_run()
    service = RecommendationService(run["sar"], run, "TrainFlow/small")
    warm_up(service)
    state = ModelState(lambda: service)
    state.load()
    client = Client(create_app(state))
    assert client.get("/ping").json == {"status": "ready", "run": "TrainFlow/small"}
    assert client.get("/info").json["capabilities"]["fold_in"] == "sar"
    rules = {"exclude_items": [201]}
    pairs = [
        ({"user_id": "1003", "k": 3, "explain": True}, service.recommend(1003, 3, explain=True)),
        ({"user_ids": [1003, 5], "k": 2}, {"results": service.recommend_many([1003, 5], 2)}),
        ({"items": [205], "ratings": [4]}, service.recommend_for_items([205], [4])),
        ({"similar_to": 205, "k": 4, "rules": rules}, service.similar_items(205, 4, rules)),
    ]
    for body, expected in pairs:
        answer = client.post("/invocations", json=body)
        assert answer.status_code == 200 and answer.json == expected, body
    bad = client.post("/invocations", json={"similar_to": 205, "explain": True})
    assert bad.status_code == 400 and "explain is not available" in bad.json["error"]
    bad = client.post("/invocations", json={"user_id": 1003, "rules": {"exclude": [1]}})
    assert bad.status_code == 400 and "unknown key" in bad.json["error"]
    # a run without a popularity ranking still warms up and serves known users
    bare = bundle_of("sar", fitted_models(small_train())["sar"], item_metadata())
    warm_up(RecommendationService(bare))


# ------------------------------------------------------------------------------------------------
# The real server on the session's run
# ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """flows/serve.py as a subprocess on a free loopback port, its log in a file."""

    def __init__(self, tmp_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_dir / f"serve-{self.port}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(SERVE), "--port", str(self.port), *args],
            # conftest's Metaflow settings are inherited from os.environ; cwd = datastore root
            cwd=os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"],
            env=dict(os.environ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ping_history: list[str] = []

    def wait(self, until: set[str], timeout: float = 180) -> requests.Response:
        """Poll /ping until its status is in `until`; the statuses seen go to ping_history."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited:\n{self.log()}"
            try:
                ping = requests.get(f"{self.url}/ping", timeout=5)
            except requests.ConnectionError:
                self._seen("refused")
            else:
                self._seen(str(ping.status_code) + ":" + ping.json().get("status", ""))
                if ping.json().get("status") in until:
                    return ping
            time.sleep(0.1)
        raise AssertionError(f"/ping never reached {until}: {self.ping_history}\n{self.log()}")

    def _seen(self, status: str) -> None:
        if not self.ping_history or self.ping_history[-1] != status:
            self.ping_history.append(status)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    """The real server on the session's run, ready; terminated when the module is done."""
    server = Server(tmp_path_factory.mktemp("http"), "--run-id", trained_run.id, "--threads", "4")
    try:
        server.wait({"ready"})
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bundle(trained_run):
    return trained_run.data.best_model


@pytest.fixture(scope="module")
def known_user(bundle):
    """A known raw user with a long train history."""
    counts = np.diff(bundle.model._seen.indptr)
    return bundle.user_map.raw_ids[int(np.argmax(counts))].item()


def post(server: Server, body, headers=JSON, **kwargs) -> requests.Response:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return requests.post(f"{server.url}/invocations", data=data, headers=headers, timeout=30)


@pytest.mark.slow
def test_ping_goes_from_no_answer_or_503_to_200(server, trained_run) -> None:
    # 'refused' before the socket listens, 503 loading while the model loads, then 200
    assert server.ping_history[-1] == "200:ready"
    assert set(server.ping_history) <= {"refused", "503:loading", "200:ready"}
    ping = requests.get(f"{server.url}/ping", timeout=5)
    assert ping.status_code == 200
    assert ping.headers["Content-Type"] == "application/json"
    assert ping.json() == {"status": "ready", "run": trained_run.pathspec}
    log = server.log()
    assert "listening on http://127.0.0.1:" in log and "model loaded" in log
    # it listened before it loaded
    assert log.index("listening on") < log.index("model loaded")


@pytest.mark.slow
def test_info_names_the_run_and_family(server, trained_run) -> None:
    info = requests.get(f"{server.url}/info", timeout=10).json()
    assert info["run"] == trained_run.pathspec
    assert info["family"] == trained_run.data.best_model_name
    assert info["max_k"] == 100 and info["load_seconds"] > 0


@pytest.mark.slow
def test_known_user_matches_the_service(server, trained_run, known_user) -> None:
    from reclab.serving import RecommendationService

    answer = post(server, {"user_id": known_user, "k": 5})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body["user_id"] == known_user and body["cold_start"] is False
    assert body["strategy"] == "model" and len(body["items"]) == 5
    service = RecommendationService(
        trained_run.data.best_model, trained_run.data.best_model_per_family, trained_run.pathspec
    )
    # the same answer as the Python API (JSON round trip of floats included)
    assert body == json.loads(json.dumps(service.recommend(known_user, k=5)))
    # a string id is coerced like in the Python API
    assert post(server, {"user_id": str(known_user), "k": 5}).json() == body


@pytest.mark.slow
def test_explain_known_user(server, known_user) -> None:
    body = post(server, {"user_id": known_user, "k": 3, "explain": True}).json()
    assert len(body["items"]) == 3
    explained = all("because" in item for item in body["items"])
    # families without explanations say so instead of failing
    assert explained or any("explanations are not available" in w for w in body["warnings"])


@pytest.mark.slow
def test_user_ids_batch_keeps_order_and_marks_cold_start(server, known_user) -> None:
    body = post(server, {"user_ids": [known_user, UNKNOWN_USER], "k": 4}).json()
    assert [r["user_id"] for r in body["results"]] == [known_user, UNKNOWN_USER]
    assert [r["cold_start"] for r in body["results"]] == [False, True]
    assert body["results"][1]["strategy"] == "cold_start_popularity"
    assert all(len(r["items"]) == 4 for r in body["results"])


@pytest.mark.slow
def test_new_user_items_are_folded_in(server, bundle) -> None:
    items = bundle.item_map.raw_ids[:3].tolist()
    body = post(server, {"items": items, "ratings": [5, 4, 5], "k": 6, "explain": True}).json()
    assert body["user_id"] is None and body["cold_start"] is True
    assert body["strategy"] in {"fold_in", "fallback_popularity"}
    assert len(body["items"]) == 6
    assert not {item["item_id"] for item in body["items"]} & set(items)


@pytest.mark.slow
def test_similar_to(server, bundle) -> None:
    item = bundle.item_map.raw_ids[0].item()
    body = post(server, {"similar_to": item, "k": 5}).json()
    assert body["item_id"] == item and len(body["items"]) == 5
    assert item not in [i["item_id"] for i in body["items"]]


@pytest.mark.slow
def test_rules_exclude_and_force_items(server, known_user) -> None:
    plain = post(server, {"user_id": known_user, "k": 5}).json()
    top = plain["items"][0]["item_id"]
    forced = plain["items"][4]["item_id"]  # rank 5 pinned to rank 1
    rules = {"exclude_items": [top], "include_items": [{"item_id": forced, "position": 1}]}
    body = post(server, {"user_id": known_user, "k": 5, "rules": rules}).json()
    ids = [item["item_id"] for item in body["items"]]
    assert top not in ids
    assert ids[0] == forced and body["items"][0]["forced"] is True
    assert len(body["rules_applied"]) == 2


BIG_BODY = b'{"user_id": 1, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        ("{bad json", JSON, 400, "malformed JSON"),
        ("", JSON, 400, "empty body"),
        (b"\xff\xfe", JSON, 400, "not UTF-8"),
        ('{"user_id": NaN}', JSON, 400, "NaN"),
        ("[1, 2]", JSON, 400, "must be a JSON object"),
        ('"user"', JSON, 400, "must be a JSON object"),
        ({"user_id": 1, "foo": 2}, JSON, 400, "unknown field(s) 'foo'"),
        (
            {"user_id": 1, "k": "ten"},
            JSON,
            400,
            'k must be an integer from 1 to 100; got string "ten"',
        ),
        ({"user_id": 1, "k": True}, JSON, 400, "got boolean true"),
        ({"user_id": 1, "k": 2.5}, JSON, 400, "k must be an integer"),
        ({"user_id": 1, "k": 0}, JSON, 400, "k must be an integer from 1 to 100"),
        ({"user_id": 1, "k": 101}, JSON, 400, "k must be an integer from 1 to 100"),
        ({"user_ids": 5}, JSON, 400, "user_ids must be a JSON list"),
        ({"user_ids": "1,2"}, JSON, 400, "user_ids must be a JSON list"),
        ({"user_id": [1, 2]}, JSON, 400, "use user_ids"),
        ({"items": "50"}, JSON, 400, "items must be a JSON list"),
        ({"items": [50], "ratings": [0]}, JSON, 400, "ratings must be positive"),
        ({"items": [50], "ratings": [5, 4]}, JSON, 400, "one number per item"),
        ({"user_id": 1, "ratings": [5]}, JSON, 400, "ratings is only allowed together with items"),
        ({"user_id": 1, "explain": "yes"}, JSON, 400, "explain must be true or false"),
        ({"similar_to": 50, "explain": True}, JSON, 400, "explain is not available"),
        ({"k": 5}, JSON, 400, "give exactly one of user_id, user_ids, items, similar_to; got none"),
        ({"user_id": 1, "similar_to": 2}, JSON, 400, "got user_id, similar_to"),
        ({"user_id": "abc"}, JSON, 400, "is not an integer"),
        ({"user_id": None}, JSON, 400, "is not an id"),
        ({"similar_to": 987654321}, JSON, 400, "not in the model's catalogue"),
        ({"user_id": 1, "rules": [1]}, JSON, 400, "rules must be a JSON object"),
        ({"user_id": 1, "rules": {"nope": 1}}, JSON, 400, "rules: unknown key(s) nope"),
        ({"user_id": 1, "rules": {"filters": {"no_column": ["x"]}}}, JSON, 400, "no_column"),
        (
            '{"user_id": 1, "rules": {"filters": {"item_year": [1' + "0" * 400 + "]}}}",
            JSON,
            400,
            "",
        ),
        ({"user_id": 1}, {"Content-Type": "text/plain"}, 415, "must be application/json"),
        ({"user_id": 1}, {}, 415, "must be application/json; got none"),
        ({"user_ids": list(range(MAX_USER_IDS + 1))}, JSON, 413, "at most 1000 user_ids"),
        (BIG_BODY, JSON, 413, f"the limit is {MAX_BODY_BYTES} bytes"),
    ],
    ids=lambda value: None if isinstance(value, str | dict | bytes | list) else str(value),
)
@pytest.mark.slow
def test_bad_requests_get_a_json_4xx_naming_the_problem(
    server, body, headers, status, message
) -> None:
    answer = post(server, body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert set(answer.json()) == {"error"}
    assert message in answer.json()["error"]
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/invocations", 405, "POST"),
        ("PUT", "/invocations", 405, "POST"),
        ("POST", "/ping", 405, "GET"),
        ("DELETE", "/info", 405, "GET"),
        ("GET", "/", 404, None),
        ("POST", "/predict", 404, None),
    ],
)
@pytest.mark.slow
def test_wrong_method_and_unknown_path(server, method, path, status, allow) -> None:
    answer = requests.request(method, f"{server.url}{path}", timeout=10)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]
    assert answer.headers.get("Allow") == allow


@pytest.mark.slow
def test_server_survives_bad_requests(server, known_user) -> None:
    # after the whole bad-request battery the same process still answers
    assert server.process.poll() is None
    assert post(server, {"user_id": known_user, "k": 1}).status_code == 200
    assert "Traceback" not in server.log()


@pytest.mark.slow
def test_taken_port_exits_2_with_a_message(server) -> None:
    result = subprocess.run(
        [sys.executable, str(SERVE), "--port", str(server.port), "--run-id", "1"],
        cwd=os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.stderr


def test_help_says_the_default_bind_is_loopback() -> None:
    result = subprocess.run(
        [sys.executable, str(SERVE), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "127.0.0.1" in result.stdout and "0.0.0.0" in result.stdout


def test_unknown_run_keeps_ping_503_with_the_error(tmp_path) -> None:
    server = Server(tmp_path, "--run-id", "987654321")
    try:
        ping = server.wait({"failed"}, timeout=120)
        assert ping.status_code == 503
        assert "TrainFlow/987654321" in ping.json()["error"]
        assert "not found" in ping.json()["error"]
        time.sleep(0.5)
        # still up, still 503, and /invocations says why
        assert server.process.poll() is None
        assert requests.get(f"{server.url}/ping", timeout=5).status_code == 503
        answer = post(server, {"user_id": 1})
        assert answer.status_code == 503 and "not found" in answer.json()["error"]
        assert "model load failed: run TrainFlow/987654321" in server.log()
    finally:
        server.stop()


@pytest.mark.slow
def test_small_load_test_has_no_errors(server, tmp_path, bundle) -> None:
    users = bundle.user_map.raw_ids
    results = tmp_path / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            str(LOAD_TEST),
            "--url",
            server.url,
            "--requests",
            "200",
            "--concurrency",
            "4",
            "--known-users",
            f"{users.min()}:{users.max()}",
            "--results-file",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(results.read_text())
    assert figures["requests"] == 200 and figures["errors"] == 0
    assert set(figures["mix"]) == {"known_user", "unknown_user", "similar_to"}
    assert figures["latency_ms"]["p50"] <= figures["latency_ms"]["p99"]
