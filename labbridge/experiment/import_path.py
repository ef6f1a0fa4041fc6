"""import_by_path: the class or function config.yml names by its import path, or a ConfigError saying why not.

Modules (`class: mylab.stage.Stage`) and procedures (`function: sweeps.voltage_sweep`) are found the same way,
and a lab's file that is missing, lacks the name, or fails while importing is a config error naming the key,
never a traceback at start.
"""

from __future__ import annotations

import importlib
from typing import Any

from labbridge.core.config import ConfigError


def import_by_path(path: str, where: str, kind: str = "") -> Any:
    """The object called `path` ("package.module.Name"); `where` is the config key, `kind` what it should be."""
    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r} ({exc})") from None
    except AttributeError:
        raise ConfigError(f"{where}: {module_name!r} has no {kind}{name!r}") from None
    except Exception as exc:  # the lab's file failed while importing
        raise ConfigError(f"{where}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
