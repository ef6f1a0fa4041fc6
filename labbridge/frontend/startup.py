"""The frontend app built from config.yml, or exit code 2 with one line: for `python main.py` and `labbridge serve`."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from labbridge.core.config import ConfigError, config_path, load_config
from labbridge.core.private_files import keep_files_private
from labbridge.frontend.app import create_app

EXIT_CONFIG = 2


def app_or_exit(config: str | os.PathLike[str] | None = None) -> FastAPI:
    """The app for `config` (default: $EXPERIMENT_CONFIG, else ./config.yml); SystemExit(2) for a bad one."""
    keep_files_private()  # the audit log and its folder are this user's alone
    try:
        return create_app(load_config(config), config_path(config))  # load_config(None) says how it chose the file
    except ConfigError as exc:
        logging.getLogger("uvicorn.error").error("invalid configuration: %s", exc)
        raise SystemExit(EXIT_CONFIG) from None
