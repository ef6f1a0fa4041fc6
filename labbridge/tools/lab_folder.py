"""`labbridge init DIR`: a starting point for a lab's own repository, outside the bridge's tree.

It writes config.yml (one simulated module), stage.py (that module, to copy
from), a .gitignore for what the bridge writes at run time and for secrets,
and a short README.  The bridge stays a package that `pip install -U`
upgrades; the processes import the lab's modules from the config file's folder.
Nothing is overwritten: a folder that already holds one of these files is left
as it is.  Standard library only.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "lab"
# template file -> name in the lab's folder (a dotfile is not package data everywhere, hence "gitignore").
FILES = {"config.yml": "config.yml", "stage.py": "stage.py", "gitignore": ".gitignore", "README.md": "README.md"}


class LabFolderError(Exception):
    """The folder cannot be made a lab folder (a file is there already, or it cannot be written)."""


def init_lab(folder: Path) -> list[Path]:
    """Write the lab's starting files into `folder` (created if needed); the paths written."""
    targets = {FILES[name]: folder / FILES[name] for name in FILES}
    present = [name for name, path in targets.items() if path.exists()]
    if present:
        raise LabFolderError(f"{folder} already has {', '.join(present)}: nothing was written "
                             "(choose a new folder, or remove those files)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for template, name in FILES.items():
            targets[name].write_bytes((TEMPLATE / template).read_bytes())
    except OSError as exc:
        raise LabFolderError(f"{folder}: cannot write there: {exc.strerror}") from None
    return list(targets.values())


def init_command(folder: Path, command: str = "labbridge") -> str:
    """What `labbridge init DIR` prints: the files written and what to do next, with `command` as the way to
    call the bridge again (its full path when the shell would not find it by name)."""
    written = init_lab(folder)
    names = ", ".join(path.name for path in written)
    return (f"wrote {names} in {folder}\n"
            f"next: cd {folder} && {command} demo   (then open http://localhost:8000/)\n")
