"""bridge_client against the real stack (both processes, the simulators): reads, writes, docs, errors, retries."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy
import orjson
import pytest

import bridge_client
from tests.conftest import Stack
from tests.processes import running_stack, start_backend, wait_until, write_config


@pytest.fixture(scope="module")
def lab(stack: Stack) -> Iterator[bridge_client.Bridge]:
    with bridge_client.connect(stack.url) as connected:
        yield connected


def test_connect_learns_every_module_and_attribute_from_the_bridge(lab: bridge_client.Bridge) -> None:
    assert set(lab.modules) == {"module_a", "wide", "confused", "unreachable", "slow", "busy"}
    assert {"position", "speed", "force", "temperature", "serial_number", "trace"} <= set(dir(lab.module_a))
    assert lab.module_a.info.attributes["position"].unit == "mm"
    assert "module_a" in dir(lab) and lab["module_a"] is lab.module_a


def test_help_documents_each_attribute_without_reading_it(lab: bridge_client.Bridge) -> None:
    position = type(lab.module_a).position  # what help(lab.module_a) and Jupyter's `?` show
    assert position.__doc__ == ("Carriage position from the home switch.\n"
                                "type: float; unit: mm; limits: 0 to 100 mm; writable.")
    assert "read-only" in str(type(lab.module_a).force.__doc__)
    assert "A linear actuator" in str(type(lab.module_a).__doc__)


def test_jupyter_completes_and_documents_attributes(lab: bridge_client.Bridge) -> None:
    from IPython.core.completer import provisionalcompleter
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.push({"lab": lab})
    with provisionalcompleter():
        assert "position" in [c.text for c in shell.Completer.completions("lab.module_a.po", 15)]
        assert "module_a" in [c.text for c in shell.Completer.completions("lab.mod", 7)]
    shown = shell.object_inspect_text("lab.module_a.position")
    assert "Carriage position from the home switch." in shown and "limits: 0 to 100 mm" in shown


def test_a_write_returns_the_confirmed_value_and_a_read_gets_it(lab: bridge_client.Bridge, stack: Stack) -> None:
    lab.module_a.position = 42.5
    assert lab.module_a.position == 42.5
    assert httpx.get(f"{stack.url}/module_a/position").json()["value"] == 42.5
    assert lab.module_a.set("speed", 12) == 12.0 and lab.module_a.get("speed") == 12.0


def test_an_array_arrives_as_a_numpy_array(lab: bridge_client.Bridge) -> None:
    trace = lab.module_a.trace
    assert isinstance(trace, numpy.ndarray) and trace.dtype == numpy.float64 and trace.shape == (100_000,)


def test_a_value_out_of_limits_raises_invalid_value_with_the_bridges_words(lab: bridge_client.Bridge) -> None:
    lab.module_a.position = 30
    with pytest.raises(bridge_client.InvalidValue) as raised:
        lab.module_a.position = 150
    error = raised.value
    assert (error.status, error.code, error.message) == (422, "invalid_value", "position must be 0 to 100 mm; got 150")
    assert not error.outcome_unknown and isinstance(error, ValueError)
    assert lab.module_a.position == 30


def test_writing_a_read_only_attribute_raises_read_only(lab: bridge_client.Bridge) -> None:
    with pytest.raises(bridge_client.ReadOnly, match="module_a.force is read-only") as raised:
        lab.module_a.force = 1
    assert raised.value.status == 405 and isinstance(raised.value, AttributeError)  # as README says


def test_a_misspelt_attribute_is_refused_and_nothing_is_written(lab: bridge_client.Bridge) -> None:
    lab.module_a.position = 5
    with pytest.raises(bridge_client.UnknownAttribute, match="has no attribute 'postion'; known: position"):
        lab.module_a.postion = 6
    assert not hasattr(lab.module_a, "postion") and lab.module_a.position == 5
    with pytest.raises(bridge_client.UnknownModule, match="no module named 'nope'"):
        lab["nope"]


@pytest.mark.parametrize(("module", "attribute", "error", "status", "code"), [
    ("unreachable", "position", bridge_client.InstrumentUnreachable, 502, "instrument_unreachable"),
    ("confused", "serial_number", bridge_client.InstrumentError, 502, "instrument_error"),
    ("slow", "position", bridge_client.InstrumentTimeout, 504, "instrument_timeout"),
])
def test_instrument_failures_raise_their_own_class(lab: bridge_client.Bridge, module: str, attribute: str,
                                                    error: type[bridge_client.BridgeError], status: int,
                                                    code: str) -> None:
    with pytest.raises(error) as raised:
        lab[module].get(attribute)
    assert type(raised.value) is error and (raised.value.status, raised.value.code) == (status, code)
    assert not raised.value.outcome_unknown  # a read changes nothing


def test_a_timed_out_write_says_its_outcome_is_unknown(lab: bridge_client.Bridge) -> None:
    with pytest.raises(bridge_client.InstrumentTimeout) as raised:
        lab.slow.position = 5
    assert raised.value.outcome_unknown and "read the value back" in raised.value.message


def _hold_the_busy_module(stack: Stack) -> threading.Thread:
    """A read of the `busy` module (0.5 s per answer, queue_limit 1) in the background, once it is queued."""
    reader = threading.Thread(target=httpx.get, args=(f"{stack.url}/busy/position",), kwargs={"timeout": 10})
    reader.start()
    wait_until(lambda: httpx.get(f"{stack.url}/health").json()["modules"]["busy"]["queued"] == 1, 5, "busy queued")
    return reader


def test_ctrl_c_during_a_call_stops_it_and_the_client_goes_on(lab: bridge_client.Bridge) -> None:
    interrupt = threading.Timer(0.1, _thread.interrupt_main)  # the `busy` module takes 0.5 s to answer
    interrupt.start()
    with pytest.raises(KeyboardInterrupt):
        lab.busy.get("position")
    interrupt.join()
    assert lab.module_a.set("position", 8) == 8.0


def test_a_read_is_retried_after_503_busy_and_a_write_is_not(lab: bridge_client.Bridge, stack: Stack) -> None:
    reader = _hold_the_busy_module(stack)
    assert lab.busy.position == 0.0  # 503 backend_busy with Retry-After, then the retry succeeds
    reader.join()
    reader = _hold_the_busy_module(stack)
    with pytest.raises(bridge_client.BackendBusy) as raised:
        lab.busy.position = 7
    reader.join()
    assert raised.value.status == 503 and isinstance(raised.value, bridge_client.BackendUnavailable)
    assert lab.busy.position == 0.0  # the refused write was never sent again


def test_a_read_waits_for_a_restarting_backend_and_a_write_is_sent_once(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          audit_log="audit.jsonl")
    with running_stack(config, tmp_path) as (backend, _, url):
        lab = bridge_client.connect(url, retries=5)
        backend.stop()
        with pytest.raises(bridge_client.BackendUnavailable):
            lab.module_a.position = 12
        audit = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
        assert [(a["requested"], a["stage"], a["outcome"]) for a in audit] == [(12, "refused", "backend_unavailable")]

        restarted: list[object] = []
        later = threading.Timer(1.0, lambda: restarted.append(start_backend(config, tmp_path / "backend2.log")))
        later.start()
        try:
            assert lab.module_a.position == 0.0  # 503 while it is down, Retry-After, retried until it is up
        finally:
            later.join()
            for process in restarted:
                process.stop()  # type: ignore[attr-defined]
        lab.close()


def test_tokens_are_sent_from_the_argument_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "client-token-0123456789abcdef"
    (tmp_path / "tokens.yml").write_text(f"alice: {token}\n")
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"token_file": "tokens.yml"})
    monkeypatch.delenv("BRIDGE_TOKEN", raising=False)
    with running_stack(config, tmp_path) as (_, _, url):
        with bridge_client.connect(url) as anonymous:
            assert anonymous.module_a.position == 0.0  # reads are open
            with pytest.raises(bridge_client.NotAuthenticated) as raised:
                anonymous.module_a.position = 3
            assert raised.value.status == 401
        with bridge_client.connect(url, token="wrong-token-0123456789") as wrong, pytest.raises(bridge_client.Forbidden):
            wrong.module_a.position = 3
        with bridge_client.connect(url, token=token) as alice:
            alice.module_a.position = 3
        monkeypatch.setenv("BRIDGE_TOKEN", token)
        with bridge_client.connect(url) as from_env:
            from_env.module_a.position = 4
            assert from_env.module_a.position == 4.0


def test_the_async_client_reads_writes_and_raises_the_same(stack: Stack) -> None:
    async def session() -> tuple[object, object]:
        async with bridge_client.AsyncBridge(stack.url) as lab:
            written = await lab.module_a.set("position", 17)
            with pytest.raises(bridge_client.InvalidValue, match="got -1"):
                await lab.module_a.set("position", -1)
            return written, await lab.module_a.get("position")

    assert asyncio.run(session()) == (17.0, 17.0)


def test_an_error_code_the_client_does_not_know_is_a_plain_bridge_error() -> None:
    answer = httpx.Response(418, json={"error": "brand_new", "message": "a code from a newer bridge"})
    transport = httpx.MockTransport(lambda request: answer)  # stands in for a newer bridge, not for the client

    async def connect() -> None:
        await bridge_client.AsyncBridge("http://bridge.test", transport=transport).connect()

    with pytest.raises(bridge_client.BridgeError) as raised:
        asyncio.run(connect())
    assert type(raised.value) is bridge_client.BridgeError
    assert (raised.value.status, raised.value.code, raised.value.message) == (418, "brand_new", "a code from a newer bridge")


def test_a_read_only_token_reads_and_its_writes_raise_forbidden_naming_the_role(tmp_path: Path) -> None:
    viewer, operator = "viewer-token-0123456789abcdef", "operator-token-0123456789abcd"
    (tmp_path / "tokens.yml").write_text(f"viewer: {{token: {viewer}, role: read}}\nalice: {operator}\n")
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          frontend={"token_file": "tokens.yml", "auth_reads": True})
    with running_stack(config, tmp_path) as (_, _, url), bridge_client.connect(url, token=viewer) as lab:
        assert lab.module_a.position == 0.0
        with pytest.raises(bridge_client.Forbidden, match="^this needs the operate role; viewer has read$") as raised:
            lab.module_a.position = 3
        assert (raised.value.status, raised.value.code) == (403, "forbidden")
        with pytest.raises(bridge_client.Forbidden):
            lab.module_a.move(to=5)
        with bridge_client.connect(url, token=operator) as alice:
            alice.module_a.position = 3
        assert lab.module_a.position == 3.0


def test_a_refusal_of_a_code_the_client_does_not_know_is_still_not_authenticated_or_forbidden() -> None:
    errors = bridge_client.errors
    for status, cls in ((401, bridge_client.NotAuthenticated), (403, bridge_client.Forbidden)):
        error = errors.error_from_response(status, b'{"error": "brand_new", "message": "newer"}', write=True)
        assert (type(error), error.code, error.message) == (cls, "brand_new", "newer")
        from_a_proxy = errors.error_from_response(status, b"<html>Access denied</html>", write=False)
        assert type(from_a_proxy) is cls and from_a_proxy.code == "http_error"


def test_every_error_code_of_the_bridge_has_its_own_class() -> None:
    from labbridge.core import errors as server

    codes = {cls.code for cls in server.ERRORS_BY_NAME.values()} - {"client_disconnected"}  # only ever audited
    known = bridge_client.errors.ERRORS_BY_CODE
    assert codes - set(known) == set()
    for code in codes:
        error = known[code](f"a {code}")
        assert error.code == code and isinstance(error, bridge_client.BridgeError)
    assert bridge_client.errors.error_from_response(409, b'{"error": "already_finished", "message": "done"}',
                                                    write=True).__class__ is bridge_client.AlreadyFinished


def test_no_bridge_at_all_raises_bridge_unreachable_after_the_retries() -> None:
    started = time.monotonic()
    with pytest.raises(bridge_client.BridgeUnreachable, match="no answer from the bridge"):
        bridge_client.connect("http://127.0.0.1:9", retries=2)
    assert time.monotonic() - started < 5
