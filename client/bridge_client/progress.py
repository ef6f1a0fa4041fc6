"""ProgressBar: one invocation's (or run's) progress and status line as a tqdm bar, in a terminal or in Jupyter.

`wait(progress=True)` draws it.  It uses `tqdm.auto`, which draws a widget in
Jupyter (when ipywidgets is installed, as it is with JupyterLab) and a text
bar on a terminal.  The bar shows how far the action says it got, its latest
status line beside it, and ends green when the action completed, red when it
failed or was cancelled.  tqdm is an optional dependency
(`pip install "bridge-client[progress]"`).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol


class Followed(Protocol):
    """What the bar shows of an invocation (its state as last seen)."""

    @property
    def status(self) -> str: ...

    @property
    def progress(self) -> float | None: ...

    @property
    def message(self) -> str | None: ...


def require_tqdm() -> Any:
    """`tqdm.auto`, or a clear error naming the extra to install."""
    try:
        return importlib.import_module("tqdm.auto")
    except ImportError:
        raise ModuleNotFoundError('wait(progress=True) needs tqdm: pip install "bridge-client[progress]"') from None


class ProgressBar:
    """A tqdm bar from 0 to 100 % following one invocation, its status line as the bar's postfix."""

    def __init__(self, label: str) -> None:
        self._bar = require_tqdm().tqdm(total=100, desc=label, leave=True,
                                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}")

    def show(self, invocation: Followed) -> None:
        self._set(invocation)
        self._bar.refresh()

    def close(self, invocation: Followed) -> None:
        """The final state: a completed action fills the bar; otherwise its status is said in front."""
        self._set(invocation)
        if invocation.status == "completed":
            self._bar.n = 100
        elif invocation.status not in ("pending", "running"):  # cancelled, failed or lost (a run: stopped...)
            self._bar.set_description_str(f"{self._bar.desc} {invocation.status}", refresh=False)
        self._bar.close()

    def _set(self, invocation: Followed) -> None:
        if invocation.progress is not None:
            self._bar.n = round(100 * invocation.progress, 2)
        text = invocation.message or invocation.status
        if invocation.status in ("queued", "paused"):  # a run waiting: say so, whatever it last reported
            text = invocation.status + (f", {invocation.message}" if invocation.message else "")
        self._bar.set_postfix_str(text, refresh=False)
