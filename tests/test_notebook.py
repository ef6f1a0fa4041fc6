"""examples/move_and_plot.ipynb runs headless (nbclient + ipykernel) against the real stack and saves its figure."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.processes import ROOT, running_stack, write_config

NOTEBOOK = ROOT / "examples" / "move_and_plot.ipynb"


def test_the_example_notebook_moves_the_actuator_and_saves_the_trace_plot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}})
    with running_stack(config, tmp_path) as (_, _, url):
        monkeypatch.setenv("BRIDGE_URL", url)  # the kernel inherits it; the notebook connects there
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(notebook, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs)
    assert "position 80.0 mm" in printed
    assert "refused: position must be 0 to 100 mm; got 120" in printed
    assert "100000 samples, peak" in printed and "saved force_trace.png" in printed
    figure = tmp_path / "force_trace.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
