"""A real NVFlare deployment on localhost for the prod tests: provisioned, started, stopped.

``nvflare provision`` makes the startup kits of a server, ``site-1``..``site-k`` and an
admin from a project.yml written here (free port); each participant is started from its
kit's ``startup/sub_start.sh --once``, as an operator would, with its own data folder
(``AFR_SITE_DATA``). Every process carries a marker variable so that ``stop`` finds all of
them (the clients start job processes of their own) and the test can prove none is left.

A site machine has no afr installed, so it imports the task code the job ships. This
machine's Python has afr's checkout on its import path (an editable install), which would
shadow the job's code: the site processes drop those entries at start-up (a
``sitecustomize`` module given through ``PYTHONPATH``), before NVFlare adds the job's folder.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MARK_VAR = "AFR_PROD_TEST_MARK"
HIDE_VAR = "AFR_PROD_TEST_HIDE"
ADMIN = "admin@afr.test"
SITECUSTOMIZE = f"""import os, sys
hidden = {{os.path.realpath(p) for p in os.environ.get("{HIDE_VAR}", "").split(os.pathsep) if p}}
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") not in hidden]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def project_yaml(port: int, sites: int) -> str:
    clients = "".join(f"  - name: site-{i}\n    type: client\n    org: afr\n" for i in range(1, sites + 1))
    return (
        "api_version: 3\nname: afrprod\ndescription: afr prod test\nparticipants:\n"
        f"  - name: localhost\n    type: server\n    org: afr\n    fed_learn_port: {port}\n"
        f"{clients}"
        f"  - name: {ADMIN}\n    type: admin\n    org: afr\n    role: project_admin\n"
        "builders:\n"
        "  - path: nvflare.lighter.impl.workspace.WorkspaceBuilder\n"
        "    args:\n      template_file:\n        - master_template.yml\n"
        "  - path: nvflare.lighter.impl.static_file.StaticFileBuilder\n    args:\n      config_folder: config\n"
        "  - path: nvflare.lighter.impl.cert.CertBuilder\n"
        "  - path: nvflare.lighter.impl.signature.SignatureBuilder\n"
    )


def checkout_paths() -> list[str]:
    """Entries of this interpreter's import path that hold an afr checkout (its ``tasks`` package)."""
    return [p for p in sys.path if p and (Path(p) / "tasks" / "shared" / "holdout.py").is_file()]


@dataclass
class LocalDeployment:
    root: Path
    sites: int = 2
    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    kits: Path | None = None
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def admin_kit(self) -> Path:
        return self.kits / ADMIN

    def site_workspace(self, site: str) -> Path:
        return self.kits / site

    def provision(self) -> None:
        (self.root / "project.yml").write_text(project_yaml(free_port(), self.sites))
        nvflare = Path(sys.executable).with_name("nvflare")
        done = subprocess.run(
            [str(nvflare), "provision", "-p", "project.yml", "-w", "provisioned", "--force"],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        self.kits = self.root / "provisioned" / "afrprod" / "prod_00"

    def launch(self, site_data: dict[str, Path]) -> None:
        """Start the server and every client from its kit, without waiting for them.

        A site reads its data folder only when a job runs, so the folders may still be filled
        while the participants start (``wait_joined`` then waits for them).
        """
        hooks = self.root / "site-python"
        hooks.mkdir(exist_ok=True)
        (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
        base = {
            **os.environ,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONPATH": str(hooks),
            HIDE_VAR: os.pathsep.join(checkout_paths()),
            MARK_VAR: self.mark,
        }
        base.pop("AFR_SITE_DATA", None)
        for name in ["localhost", *(f"site-{i}" for i in range(1, self.sites + 1))]:
            env = dict(base)
            if name in site_data:
                env["AFR_SITE_DATA"] = str(site_data[name])
            self.logs[name] = self.root / f"{name}.log"
            with open(self.logs[name], "w") as log:
                subprocess.Popen(
                    ["bash", str(self.kits / name / "startup" / "sub_start.sh"), "--once"],
                    cwd=self.kits / name,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def wait_joined(self, timeout: float = 180.0) -> None:
        """Wait until every client has joined the server."""
        deadline = time.monotonic() + timeout
        joined = f"Total clients: {self.sites}"
        while joined not in self.logs["localhost"].read_text(errors="replace"):
            assert time.monotonic() < deadline, self.logs["localhost"].read_text()[-3000:]
            time.sleep(1)

    def processes(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                if process.environ().get(MARK_VAR) == self.mark:
                    found.append(process)
        return found

    def stop(self) -> list[psutil.Process]:
        """SIGTERM every process of the deployment, then SIGKILL; the ones still alive after that."""
        family = self.processes()
        for process in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(family, timeout=10)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=5)
        return self.processes()
