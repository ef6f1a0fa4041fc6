"""examples/move_and_plot.ipynb runs headless (nbclient + ipykernel) against the real stack and saves its figure.

The notebook moves the actuator with the `move` action, waiting with a progress
bar: in a kernel with ipywidgets, tqdm draws it as a widget, whose final state
nbclient keeps in the notebook's metadata, as Jupyter would show it.  Then it
queues a run of the shipped `force_curve` procedure, waits for it with a bar
too, and plots its data.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.processes import ROOT, running_stack, shipped_procedures, write_config

NOTEBOOK = ROOT / "examples" / "move_and_plot.ipynb"


def test_the_example_notebook_moves_the_actuator_and_saves_the_trace_plot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path / "config.yml", {"module_a": {"class": "module_a.ModuleA", "simulate": True}},
                          procedures={"force_curve": shipped_procedures()["force_curve"]})
    with running_stack(config, tmp_path) as (_, _, url):
        monkeypatch.setenv("BRIDGE_URL", url)  # the kernel inherits it; the notebook connects there
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(notebook, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs)
    assert "completed: arrived at 80 mm; position 80.0 mm" in printed
    assert "refused: to must be 0 to 100 mm; got 120" in printed
    assert "100000 samples, peak" in printed and "saved force_trace.png" in printed
    assert re.search(r"completed: 6 points, force -?\d+\.\d\d to -?\d+\.\d\d N; saved force_curve.png", printed), printed
    for figure in (tmp_path / "force_trace.png", tmp_path / "force_curve.png"):
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000

    # Each wait(progress=True) drew a widget bar that ended full and green, with the action's last status line.
    bars = [progress_bar(notebook, output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"])
            for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
            if "application/vnd.jupyter.widget-view+json" in output.get("data", {})]
    assert [(b["FloatProgressModel"]["value"], b["FloatProgressModel"]["bar_style"]) for b in bars] == [
        (100.0, "success"), (100.0, "success"), (100.0, "success")]
    assert "arrived at 0 mm" in bars[0]["text"] and "arrived at 80 mm" in bars[1]["text"]
    assert "force_curve" in bars[2]["text"] and "50 mm" in bars[2]["text"]  # the run's bar, its last message


def progress_bar(notebook: Any, model_id: str) -> dict[str, Any]:
    """The state of one tqdm widget (an HBox of text, progress, text) as saved in the notebook's metadata."""
    models = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    children = [models[child.removeprefix("IPY_MODEL_")] for child in models[model_id]["state"]["children"]]
    found: dict[str, Any] = {child["model_name"]: child["state"] for child in children}
    text = " ".join(child["state"]["value"] for child in children if child["model_name"] == "HTMLModel")
    found["text"] = text.replace("\u2007", " ")  # tqdm keeps its columns with figure spaces
    return found
