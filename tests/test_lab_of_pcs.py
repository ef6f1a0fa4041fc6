"""One frontend, several experiment processes (issue 22, points 1 and 2), real processes over loopback TCP.

Each experiment process is a lab PC with its own config.yml, ports and modules; the frontend lists them under
`experiments:` and serves them as one lab.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import zmq
from bridge_client import Bridge, ExperimentUnavailable

from labbridge.core.protocol import VERSION
from tests.lab_of_pcs import Lab, p99, start_lab, unavailable
from tests.netns import netns  # noqa: F401 - the fixture of the namespace form
from tests.processes import shipped_modules, wait_until


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    running = start_lab(tmp_path_factory.mktemp("lab"))
    yield running
    running.stop()


def test_every_route_reaches_the_process_that_holds_it(lab: Lab) -> None:
    with httpx.Client(base_url=lab.url, timeout=10) as http:
        modules = http.get("/modules").json()["modules"]
        assert {name: modules[name]["experiment"] for name in ("module_a", "setpoint")} == {
            "module_a": "bench", "setpoint": "cryo"}
        assert http.put("/setpoint/value", json={"value": 12.5}).status_code == 200
        assert http.get("/setpoint/value").json()["value"] == 12.5
        assert http.get("/module_a/speed").status_code == 200
        assert http.get("/nothing/value").json()["error"] == "unknown_module"
        assert http.get("/setpoint/value/history").json()["error"] == "history_off"  # cryo's answer: it records none
        # An action and its invocation: routed by module, then by id.
        started = http.post("/module_a/home", json={})
        assert started.status_code == 201, started.text
        ident = started.json()["id"]
        assert http.get(f"/invocations/{ident}").json()["module"] == "module_a"
        assert ident in [inv["id"] for inv in http.get("/invocations").json()["invocations"]]
        assert http.get("/invocations/0123456789abcdef").json()["error"] == "unknown_invocation"
        # Runs: a procedure runs in the process that declares it; the lab's list merges every process's.
        assert set(http.get("/procedures").json()["procedures"]) == {"force_curve"}
        run = http.post("/runs", json={"procedure": "force_curve", "parameters": {"points": 2}})
        assert run.status_code == 201, run.text
        assert http.get(f"/runs/{run.json()['id']}").json()["procedure"] == "force_curve"
        assert run.json()["id"] in [r["id"] for r in http.get("/runs").json()["runs"]]
        assert http.get("/runs/queue").status_code == 200
        # Safety lists: every PC's alarm limits, and interlocks (none here).
        alarms = http.get("/alarms").json()
        assert sorted((a["module"], a["attribute"]) for a in alarms["alarms"]) == [
            ("module_a", "speed"), ("setpoint", "value")]
        assert set(alarms["webhooks"]) == {"bench", "cryo"}
        assert http.get("/interlocks").json() == {"interlocks": {}}
        # The schema, the dashboard, the metrics and the health see the whole lab.
        paths = http.get("/openapi.json").json()["paths"]
        assert "/module_a/position" in paths and "/setpoint/value" in paths
        assert http.get("/").status_code == 200
        metrics = http.get("/metrics").text
        assert 'module="module_a"' in metrics and 'module="setpoint"' in metrics
        assert 'bridge_experiment_up{experiment="bench"} 1.0' in metrics
        health = http.get("/health").json()
        assert health["status"] == "ok", health
        assert {name: state["up"] for name, state in health["experiments"].items()} == {"bench": True, "cryo": True}
        assert health["experiments"]["bench"]["modules"] == ["module_a"]


def test_live_values_come_from_every_process(lab: Lab) -> None:
    from websockets.sync.client import connect

    httpx.put(lab.url + "/setpoint/value", json={"value": 3.0}, timeout=5)
    seen: set[str] = set()
    with connect(lab.url.replace("http", "ws") + "/ws", open_timeout=5) as ws:
        deadline = time.monotonic() + 10
        while {"module_a", "setpoint"} - seen and time.monotonic() < deadline:
            seen.add(orjson.loads(ws.recv(timeout=5))["module"])
    assert {"module_a", "setpoint"} <= seen


def test_an_experiment_process_of_another_protocol_version_is_refused(lab: Lab) -> None:
    # This release's experiment process, asked in another version, names both.
    ctx: Any = zmq.Context.instance()
    with ctx.socket(zmq.REQ) as sock:
        sock.linger = 0
        sock.connect(f"tcp://127.0.0.1:{lab.pcs['bench'].socket['port']}")
        sock.send(orjson.dumps({"v": VERSION + 1, "id": "x", "op": "ping", "deadline": time.time() + 5}))
        assert sock.poll(5000)
        header = orjson.loads(sock.recv_multipart()[0])
    assert header["error"] == "MalformedRequest"
    assert f"version {VERSION + 1}" in header["detail"] and f"version {VERSION}" in header["detail"]


def _fake_old_pc(port: int, stop: threading.Event) -> None:
    """An experiment process of another release: it answers pings saying protocol version 0."""
    ctx: Any = zmq.Context.instance()
    with ctx.socket(zmq.ROUTER) as sock:
        sock.linger = 0
        sock.bind(f"tcp://127.0.0.1:{port}")
        while not stop.is_set():
            if not sock.poll(50):
                continue
            *envelope, frame = sock.recv_multipart()
            request = orjson.loads(frame)
            body = {"time": time.time(), "pid": 1, "protocol": 0, "modules": {}, "history": None}
            sock.send_multipart([*envelope, orjson.dumps({"id": request["id"], "ok": True}), orjson.dumps(body)])


def test_version_mismatch_and_module_clash_are_refused_naming_both(tmp_path: Path) -> None:
    from tests.lab_of_pcs import make_lab

    lab = make_lab(tmp_path, pcs={"bench": ({"module_a": shipped_modules()["module_a"]}, ()),
                                  "twin": ({"module_a": shipped_modules()["module_a"]}, ()),
                                  "old": ({"setpoint": shipped_modules()["setpoint"]}, ())})
    stop = threading.Event()
    fake = threading.Thread(target=_fake_old_pc, args=(lab.pcs["old"].socket["port"], stop), daemon=True)
    fake.start()
    try:
        lab.pcs["bench"].start(tmp_path / "bench.log")
        lab.start_frontend(wait_up=False)
        wait_until(lambda: lab.health()["experiments"]["bench"]["up"], 20, "bench up")
        lab.pcs["twin"].start(tmp_path / "twin.log")
        wait_until(lambda: "message" in lab.health()["experiments"]["twin"]
                   and "unique" in lab.health()["experiments"]["twin"]["message"], 10, "twin refused")
        twin = lab.health()["experiments"]["twin"]["message"]
        assert "'bench'" in twin and "'twin'" in twin and "module_a" in twin
        assert httpx.get(lab.url + "/module_a/speed").status_code == 200  # still the first one's
        wait_until(lambda: "version" in lab.health()["experiments"]["old"].get("message", ""), 10, "old refused")
        old = lab.health()["experiments"]["old"]["message"]
        assert "version 0" in old and f"version {VERSION}" in old and "'old'" in old
        answer = httpx.get(lab.url + "/setpoint/value")  # a module of no process described: it may be old's
        assert (answer.status_code, answer.json()["error"]) == (503, "experiment_unavailable")
        assert "version 0" in answer.json()["message"]
        assert lab.frontend is not None and "version 0" in lab.frontend.output  # logged
    finally:
        stop.set()
        lab.stop()


def _get_ms(http: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    answer = http.get(path)
    return 1000 * (time.perf_counter() - start), answer


def _latencies(http: httpx.Client, healthy: str, other: str, count: int) -> list[float]:
    """GET times of `healthy`, alternating with GETs of `other` (the module of the PC that goes down)."""
    times = []
    for _ in range(count):
        times.append(_get_ms(http, healthy)[0])
        http.get(other)
    return times


def _down_within(lab: Lab, http: httpx.Client, how: int) -> float:
    bench = lab.pcs["bench"].process
    assert bench is not None
    start = time.monotonic()
    bench.signal(how)
    wait_until(lambda: unavailable(http, "/module_a/speed", "bench"), 5, "bench's modules 503")
    return time.monotonic() - start


@pytest.fixture(params=["loopback", "netns"])
def faulty_lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    """The lab over loopback, or with each PC in its own network namespace over CurveZMQ (CI: root)."""
    network = request.getfixturevalue("netns") if request.param == "netns" else None  # skips where none can be made
    lab = start_lab(tmp_path, network=network)
    try:
        yield lab
    finally:
        lab.stop()


def test_one_pc_down_is_one_pc_down(faulty_lab: Lab, tmp_path: Path) -> None:
    lab = faulty_lab
    with httpx.Client(base_url=lab.url, timeout=10) as http:
        _latencies(http, "/setpoint/value", "/module_a/speed", 30)  # warm up
        before = _latencies(http, "/setpoint/value", "/module_a/speed", 400)
        took = _down_within(lab, http, signal.SIGKILL)
        health = http.get("/health").json()
        assert health["status"] == "degraded" and health["experiments"]["bench"]["up"] is False
        assert health["experiments"]["cryo"]["up"] is True and health["experiments"]["bench"]["since"] > 0
        after = _latencies(http, "/setpoint/value", "/module_a/speed", 400)
        print(f"kill -9: 503 after {took:.2f} s; GET of the other PC's module, median {statistics.median(before):.2f}"
              f" -> {statistics.median(after):.2f} ms, p99 {p99(before):.2f} -> {p99(after):.2f} ms")
        assert took < 2.0
        # Within 20%, plus the scheduling noise of a loaded 2-core machine (p99 of 400 samples is their 4th
        # slowest); a down PC that held the others up would cost them its timeouts: 500 ms and more.
        assert p99(after) <= 1.2 * p99(before) + 5.0
        assert statistics.median(after) <= 1.2 * statistics.median(before) + 2.0
        with Bridge(lab.url) as bridge, pytest.raises(ExperimentUnavailable, match="'bench'"):
            bridge["module_a"].get("speed")  # a notebook gets the client's class for it
        described = http.get("/modules").json()["modules"]["module_a"]
        assert "bench" in described["unavailable"] and "attributes" in described  # greyed, still described

        # Back by itself when it is restarted.
        lab.pcs["bench"].start(tmp_path / "bench-2.log")
        wait_until(lambda: http.get("/module_a/speed").status_code == 200, 10, "bench back")

        # SIGSTOP: a hung PC keeps its TCP connection open; the heartbeat finds it.  A write sent to it is
        # answered with an unknown outcome, not resent.
        bench = lab.pcs["bench"].process
        assert bench is not None
        start = time.monotonic()
        bench.signal(signal.SIGSTOP)
        write = http.put("/module_a/speed", json={"value": 7.0})
        assert write.status_code == 503 and "unknown" in write.json()["message"], write.text
        wait_until(lambda: unavailable(http, "/module_a/speed", "bench"), 5, "bench's modules 503")
        print(f"SIGSTOP: 503 after {time.monotonic() - start:.2f} s")
        assert time.monotonic() - start < 2.0
        assert http.get("/setpoint/value").status_code == 200
        bench.signal(signal.SIGCONT)
        wait_until(lambda: http.get("/module_a/speed").status_code == 200, 5, "bench back after SIGCONT")

        if lab.pcs["bench"].host is not None:  # a pulled cable: TCP stays open, nothing passes
            pc = lab.pcs["bench"].host
            start = time.monotonic()
            pc.link_down()
            try:
                wait_until(lambda: unavailable(http, "/module_a/speed", "bench"), 5, "bench's modules 503")
                print(f"link down: 503 after {time.monotonic() - start:.2f} s")
                assert time.monotonic() - start < 2.0
                cut = _latencies(http, "/setpoint/value", "/module_a/speed", 200)
                print(f"link down: other PC's GET median {statistics.median(cut):.2f} ms, p99 {p99(cut):.2f} ms")
                assert p99(cut) <= 1.2 * p99(before) + 5.0
            finally:
                pc.link_up()
            wait_until(lambda: http.get("/module_a/speed").status_code == 200, 20, "bench back after link up")

        # A frontend started while a PC is down knows its modules from the description on disk: 503, not 404.
        assert lab.frontend is not None
        lab.frontend.stop()
        bench.signal(signal.SIGKILL)
        bench.wait(5)
        lab.start_frontend(wait_up=False)
        wait_until(lambda: lab.health()["experiments"]["cryo"]["up"], 10, "cryo up")
    with httpx.Client(base_url=lab.url, timeout=10) as http:
        answer = http.get("/module_a/speed")
        assert (answer.status_code, answer.json()["error"]) == (503, "experiment_unavailable"), answer.text
        assert http.get("/setpoint/value").status_code == 200
        files = list((tmp_path / "frontend-data" / "experiments").iterdir())
        assert sorted(f.name for f in files) == ["bench.json", "cryo.json"]
        assert all(f.stat().st_mode & 0o077 == 0 for f in files)
        lab.pcs["bench"].start(tmp_path / "bench-3.log")
        wait_until(lambda: http.get("/module_a/speed").status_code == 200, 10, "bench back")


def test_the_client_sees_one_lab(lab: Lab) -> None:
    with Bridge(lab.url) as bridge:
        assert {"module_a", "setpoint"} <= set(bridge.modules)
        bridge["setpoint"].set("value", 4.0)  # a module of one PC
        assert bridge["setpoint"].get("value") == 4.0
        assert bridge["module_a"].get("speed") > 0  # and of the other, through the same address
        moved = bridge["module_a"].invoke("home")
        assert bridge.invocation(moved.id).module == "module_a"


def test_the_dashboard_greys_the_modules_of_a_down_pc(tmp_path: Path) -> None:
    from tests.browser import chromium

    lab = start_lab(tmp_path)
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(lab.url + "/")
            page.wait_for_selector("#module-module_a")
            assert "down" not in (page.get_attribute("#module-module_a", "class") or "")
            bench = lab.pcs["bench"].process
            assert bench is not None
            bench.signal(signal.SIGKILL)
            page.wait_for_selector("#module-module_a.down", timeout=10_000)
            assert "bench" in (page.get_attribute("#module-module_a", "title") or "")
            page.wait_for_selector('#experiment-bench[data-state="down"]', timeout=10_000)  # a pill per lab PC
            assert page.inner_text("#experiment-bench") == "bench down"
            assert page.inner_text("#experiment-cryo") == "cryo up"
            assert page.locator("#module-module_a tr[data-attribute=position]").count() == 1  # still described
            assert "down" not in (page.get_attribute("#module-setpoint", "class") or "")
            lab.pcs["bench"].start(tmp_path / "bench-2.log")
            page.wait_for_selector("#module-module_a:not(.down)", timeout=10_000)
            page.wait_for_selector('#experiment-bench[data-state="ok"]', timeout=10_000)
    finally:
        lab.stop()


def test_the_frontend_config_of_a_lab(tmp_path: Path) -> None:
    from labbridge.core.config import ConfigError, load_config
    from labbridge.frontend.app import create_app

    config = tmp_path / "config.yml"
    config.write_text("experiments:\n  bench: {host: 127.0.0.1, port: 5601}\n  cryo: {host: 127.0.0.1, port: 5611}\n")
    loaded = load_config(config)  # a frontend of a lab needs no modules
    assert list(loaded.experiment_sockets) == ["bench", "cryo"] and loaded.is_lab
    config.write_text("experiments:\n  Bench: {port: 5601}\n")
    with pytest.raises(ConfigError, match="experiments.Bench: .* lower_snake_case"):
        load_config(config)
    config.write_text("experiments:\n  bench: {host: 192.0.2.7, port: 5601}\n")
    with pytest.raises(ConfigError, match=r"experiments\.bench\.host: 192\.0\.2\.7 .* experiments\.bench\.curve"):
        create_app(load_config(config), config)
    config.write_text("modules: {}\n")
    assert list(load_config(config).experiment_sockets) == ["default"]  # experiment_socket alone: one, "default"


def test_an_interlock_name_declared_by_two_pcs_is_not_acknowledged_at_either(tmp_path: Path) -> None:
    """Acknowledged at the first process that has it, the other's would stay latched: refused, naming both."""
    actuator = {"class": "module_a.ModuleA", "simulate": True, "poll": {"force": 0.5}}
    pcs = {"bench": ({"module_a": actuator}, ()), "cryo": ({"stage": actuator}, ())}
    same = {name: {"hot": {"trips_when": f"{module}.force > 1000", "then": [{"run": f"{module}.stop"}], "within": 1}}
            for name, module in (("bench", "module_a"), ("cryo", "stage"))}
    lab = start_lab(tmp_path, pcs=pcs, interlocks=same)
    try:
        answer = httpx.post(lab.url + "/interlocks/hot/ack", timeout=10)
        assert answer.status_code == 409 and answer.json()["error"] == "interlocked", answer.text
        assert "declared by the experiment processes 'bench' and 'cryo'" in answer.json()["message"]
    finally:
        lab.stop()
