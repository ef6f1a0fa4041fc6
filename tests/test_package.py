"""The bridge as an installed package: a wheel, installed offline from a wheelhouse into a fresh virtual
environment, runs the demo, `labbridge init`'s lab folder and its modules, from folders outside the checkout.

One wheelhouse and one environment serve every test here (building them is most of the time: the figures
are printed with -s).  The environment has no access to the checkout: no PYTHONPATH, run from elsewhere,
and `labbridge` is imported from the environment's own site-packages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.processes import ROOT, Process, copy_repository, free_port, http_answers, wait_until

# Building the wheelhouse and the environment takes minutes on a busy machine (once per session).
pytestmark = pytest.mark.timeout(900)

BIN = "Scripts" if os.name == "nt" else "bin"


@dataclass
class Installed:
    """The fresh environment with the wheel in it."""

    venv: Path
    wheelhouse: Path

    @property
    def python(self) -> str:
        return str(self.venv / BIN / "python")

    @property
    def command(self) -> str:
        return str(self.venv / BIN / "labbridge")

    def env(self, home: Path) -> dict[str, str]:
        """The environment of a user's shell: nothing pointing into the checkout, a home of its own (the demo's
        data) and a temp folder of its own (the private socket folder: the demo's socket has a fixed name; a
        short path, as a socket's path is limited to about 100 bytes)."""
        kept = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "VIRTUAL_ENV", "EXPERIMENT_CONFIG", "CONDA_PREFIX")}
        temp = home / "tmp"
        if not temp.exists():
            temp.parent.mkdir(parents=True, exist_ok=True)
            temp.symlink_to(tempfile.mkdtemp(prefix="lb-"), target_is_directory=True)
        return {**kept, "HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "TMPDIR": str(temp.resolve())}


def _timed(what: str, command: list[str], **kwargs: object) -> None:
    start = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, timeout=900, **kwargs)  # type: ignore[call-overload]
    print(f"\n{what}: {time.monotonic() - start:.1f} s")


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """README's offline install: a wheelhouse (the requirements + the bridge's wheel), then `pip install
    --no-index --find-links` into a fresh virtual environment."""
    base = tmp_path_factory.mktemp("package")
    tree = copy_repository(base / "tree")  # pip builds in the source folder: not in the repository itself
    house = base / "wheelhouse"
    # `python -m build`, as README says: a source distribution, and the wheel built from it (so what the
    # build reads must be in the source distribution: MANIFEST.in).
    tools = base / "tools"
    _timed("create a venv with build", [sys.executable, "-m", "venv", str(tools)])
    _timed("install build", [str(tools / BIN / "python"), "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", "build>=1,<2"])
    _timed("python -m build", [str(tools / BIN / "python"), "-m", "build", "--outdir", str(house), str(tree)])
    _timed("pip download the requirements", [sys.executable, "-m", "pip", "--disable-pip-version-check", "download",
                                             "--quiet", "-d", str(house), "-r", str(tree / "requirements.txt")])
    venv = base / "venv"
    _timed("create a fresh venv", [sys.executable, "-m", "venv", str(venv)])
    _timed("install offline", [str(venv / BIN / "python"), "-m", "pip", "install", "--quiet",
                               "--disable-pip-version-check", "--no-index", "--find-links", str(house), "labbridge"])
    return Installed(venv, house)


def test_the_wheelhouse_installs_offline_and_labbridge_runs_from_the_new_environment(
        installed: Installed, tmp_path: Path) -> None:
    wheels = [p.name for p in installed.wheelhouse.iterdir()]
    assert any(name.startswith("labbridge-") and name.endswith(".whl") for name in wheels)
    assert any(name.startswith("pyzmq-") for name in wheels)  # the requirements came from the wheelhouse too
    where = subprocess.run([installed.python, "-c", "import labbridge; print(labbridge.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True, env=installed.env(tmp_path)).stdout.strip()
    assert Path(where).is_relative_to(installed.venv), where
    assert not Path(where).is_relative_to(ROOT)
    usage = subprocess.run([installed.command, "--help"], cwd=tmp_path, capture_output=True, text=True, check=True,
                           env=installed.env(tmp_path)).stdout
    for command in ("demo", "experiment", "serve", "init", "keys", "scaffold"):
        assert command in usage


@pytest.fixture()
def started() -> Iterator[list[Process]]:
    processes: list[Process] = []
    yield processes
    for process in processes:
        process.stop()


def test_without_a_config_here_labbridge_demo_takes_the_built_in_one_into_the_user_s_folder(
        installed: Installed, tmp_path: Path) -> None:
    env = installed.env(tmp_path / "home")
    shown = subprocess.run([installed.python, "-c", "from labbridge.tools.demo_folder import demo_config; "
                            "print(demo_config())"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    config = Path(shown.stdout.strip())
    assert config == tmp_path / "home" / "state" / "labbridge" / "demo" / "config.yml"
    classes = {spec["class"] for spec in yaml.safe_load(config.read_text(encoding="utf-8"))["modules"].values()}
    assert classes == {"labbridge.demo.module_a.ModuleA", "labbridge.demo.setpoint.Setpoint",
                       "labbridge.demo.psu.PowerSupply", "labbridge.demo.camera.Camera"}


def test_labbridge_demo_runs_the_packaged_demo_from_a_folder_outside_the_checkout(
        installed: Installed, tmp_path: Path, started: list[Process]) -> None:
    # The built-in demo's config.yml with free ports (its own are fixed: 8888 may be taken on a shared machine).
    env = installed.env(tmp_path / "home")
    shown = subprocess.run([installed.python, "-c", "from labbridge.demo import CONFIG; print(CONFIG)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    config = yaml.safe_load(Path(shown.stdout.strip()).read_text(encoding="utf-8"))
    config["experiment_socket"] = {"port": free_port(), "events_port": free_port()}
    config["modules"]["module_a"]["port"] = free_port()
    elsewhere = tmp_path / "anywhere"
    elsewhere.mkdir()
    (elsewhere / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    port = free_port()
    demo = Process([installed.command, "demo", "--port", str(port)], tmp_path / "demo.log", env=env, cwd=elsewhere)
    started.append(demo)
    wait_until(lambda: "ready: open" in demo.output or not demo.alive(), 90, "the demo's 'ready'")
    assert demo.alive(), demo.output
    url = f"http://127.0.0.1:{port}"
    answer = httpx.get(f"{url}/module_a/position", timeout=5)
    assert answer.status_code == 200 and answer.json()["unit"] == "mm", answer.text
    assert httpx.get(f"{url}/psu/voltage", timeout=5).json()["unit"] == "V"
    assert httpx.get(f"{url}/camera/exposure", timeout=5).status_code == 200
    assert httpx.get(f"{url}/", headers={"Accept": "text/html"}, timeout=5).status_code == 200  # the dashboard
    assert httpx.get(f"{url}/static/vendor/uplot/uPlot.iife.min.js", timeout=5).status_code == 200
    wait_until(lambda: (elsewhere / "data").is_dir(), 10, "the demo's data folder")  # beside its config.yml
    assert not list(installed.venv.rglob("history.sqlite3"))  # nothing written into the package
    demo.signal(signal.SIGTERM)
    assert demo.wait(15) == 0
    assert not http_answers(f"{url}/static/style.css")  # its frontend stopped with it


THERMOSTAT = '''"""A thermostat whose target lives in memory: the lab's second module."""
from labbridge import Attribute, BaseModule


class Thermostat(BaseModule):
    """A target temperature."""

    target: float = Attribute(unit="degC", minimum=5, maximum=30, writable=True, doc="Target temperature.")

    async def start(self) -> None:
        self.target_value = 20.0

    async def read(self, name: str) -> float:
        return self.target_value

    async def write(self, name: str, value: float) -> float:
        self.target_value = value
        return value

    async def read_many(self, names: list[str]) -> dict[str, float]:
        return {"target": self.target_value}
'''


def test_a_lab_folder_from_init_serves_its_own_modules(installed: Installed, tmp_path: Path,
                                                       started: list[Process]) -> None:
    env = installed.env(tmp_path / "home")
    made = subprocess.run([installed.command, "init", "mylab"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    lab = tmp_path / "mylab"
    assert {p.name for p in lab.iterdir()} == {"config.yml", "stage.py", ".gitignore", "README.md"}
    assert {"data/", "keys/", "logs/", "tokens.yml"} <= set((lab / ".gitignore").read_text().split())
    # A second `init` there writes nothing over the lab's files.
    again = subprocess.run([installed.command, "init", "mylab"], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=60)
    assert again.returncode == 1 and "nothing was written" in again.stderr and "Traceback" not in again.stderr
    # The lab adds a module of its own; ports are made free ones, as a lab would choose its own.
    (lab / "thermostat.py").write_text(THERMOSTAT, encoding="utf-8")
    config = yaml.safe_load((lab / "config.yml").read_text(encoding="utf-8"))
    config["experiment_socket"] = {"port": free_port(), "events_port": free_port()}
    config["modules"]["stage"]["port"] = free_port()
    config["modules"]["thermostat"] = {"class": "thermostat.Thermostat"}
    (lab / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    experiment = Process([installed.command, "experiment"], tmp_path / "experiment.log", env=env, cwd=lab)
    started.append(experiment)
    port = free_port()
    frontend = Process([installed.command, "serve", "--port", str(port)], tmp_path / "serve.log", env=env, cwd=lab)
    started.append(frontend)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_answers(f"{url}/health") or not (experiment.alive() and frontend.alive()), 60,
               "the lab's bridge")
    assert experiment.alive() and frontend.alive(), experiment.output + frontend.output
    assert httpx.put(f"{url}/thermostat/target", json={"value": 24.5}, timeout=5).json()["value"] == 24.5
    assert httpx.get(f"{url}/thermostat/target", timeout=5).json()["value"] == 24.5
    stage = httpx.get(f"{url}/stage/position", timeout=5)
    assert stage.status_code == 200 and stage.json()["unit"] == "mm", stage.text
    # The lab's data stay in its folder; nothing of the lab's is in the bridge's tree.
    wait_until(lambda: (lab / "data").is_dir(), 10, "the lab's data folder")
    site = Path(subprocess.run([installed.python, "-c", "import labbridge; print(labbridge.__file__)"], env=env,
                               cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()).parent
    assert not list(site.rglob("thermostat*")) and not (site / "data").exists()
