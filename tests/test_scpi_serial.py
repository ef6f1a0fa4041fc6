"""The SCPI multimeter of tests/scpi_instrument.py on a serial line: a pseudo-terminal, through pyvisa-py's ASRL.

README promises serial instruments (pyvisa-py with pyserial): the instrument
process holds the master side of a pseudo-terminal, the bridge opens the other
side as `ASRL/dev/pts/N::INSTR` at a baud rate, as it would a USB serial adapter.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.processes import Process, running_stack, wait_until, write_config


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("scpi_serial")
    path_file = tmp / "tty"
    instrument = Process([sys.executable, "-m", "tests.scpi_instrument", "--pty", str(path_file)],
                         tmp / "instrument.log")
    try:
        wait_until(lambda: not instrument.alive() or path_file.exists(), 10, "the pseudo-terminal")
        assert instrument.alive(), instrument.output
        tty = path_file.read_text(encoding="utf-8")
        config = write_config(tmp / "config.yml", {
            "dmm": {"class": "tests.multimeter.Multimeter", "resource": f"ASRL{tty}::INSTR", "baud_rate": 9600},
        })
        with running_stack(config, tmp) as (_, _, base):
            yield base
    finally:
        instrument.stop()


def test_a_serial_instrument_is_read(url: str) -> None:
    idn = httpx.get(f"{url}/dmm/idn")
    assert idn.json()["value"] == "LABBRIDGE,DMM6500,SOCK0001,1.0", idn.text
    assert httpx.get(f"{url}/dmm/voltage").json()["value"] == pytest.approx(1.234567)  # the slow measurement


def test_a_serial_instrument_is_set_and_refuses_with_its_own_error(url: str) -> None:
    put = httpx.put(f"{url}/dmm/voltage_range", json={"value": 50})
    assert put.status_code == 200, put.text
    assert put.json()["value"] == 100.0  # the range that holds 50 V, read back
    refused = httpx.put(f"{url}/dmm/voltage_range", json={"value": 5000})
    assert refused.status_code == 502
    assert refused.json()["message"] == "instrument of dmm refused 'VOLT:DC:RANG 5000.0': -222,\"Data out of range\""
    assert httpx.get(f"{url}/dmm/voltage_range").json()["value"] == 100.0
