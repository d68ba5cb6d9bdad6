"""The run sandbox (bubblewrap): what candidate code can and cannot do from inside it.

Each test runs a real command through ``engine.run.sandbox.wrap`` and tries, as a hostile
candidate would, to read ``$HOME``, a hidden raw-data folder or a secret variable, to write
outside its worktree and run directory, to leave a daemon behind, to reach the network
beyond loopback or to undo the read-only mounts. Where the attempt succeeds without a
sandbox, the test shows that too: those are the classes only the sandbox stops.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from engine.run.sandbox import (
    SANDBOX_HOME,
    SandboxSpec,
    allowed_name,
    bwrap_argv,
    detect_sandbox,
    sandbox_environment,
    wrap,
)

needs_bwrap = pytest.mark.skipif(detect_sandbox() != "bwrap", reason="bubblewrap is not usable here")


def run_python(
    code: str, spec: SandboxSpec, sandbox: str = "bwrap", timeout: float = 60
) -> subprocess.CompletedProcess:
    command = wrap([sys.executable, "-c", code], spec, sandbox)
    return subprocess.run(
        command.argv, env=command.env, cwd=command.cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture()
def box(tmp_path) -> SandboxSpec:
    worktree, run_dir = tmp_path / "worktree", tmp_path / "run"
    (worktree / "data").mkdir(parents=True)
    (worktree / "data" / "raw.csv").write_text("age,label\n63,1\n")
    (worktree / "model.py").write_text("x = 1\n")
    run_dir.mkdir()
    return SandboxSpec(
        workdir=worktree,
        writable=(worktree, run_dir),
        hidden=(worktree / "data",),
        env={"AFR_RUN_TOKEN": "t"},
    )


def test_detect_sandbox_finds_bwrap_and_honours_the_override(monkeypatch):
    assert detect_sandbox() in ("bwrap", "none")
    if Path("/usr/bin/bwrap").exists():
        assert detect_sandbox() == "bwrap"
    detect_sandbox.cache_clear()
    monkeypatch.setenv("AFR_SANDBOX", "none")
    try:
        assert detect_sandbox() == "none"
    finally:
        monkeypatch.delenv("AFR_SANDBOX")
        detect_sandbox.cache_clear()


def test_environment_is_allow_listed():
    source = {
        "PATH": "/usr/bin",
        "LC_ALL": "C",
        "OPENAI_API_KEY": "sk-x",
        "NVIDIA_API_KEY": "nv-x",
        "NVIDIA_VISIBLE_DEVICES": "0",
        "AWS_SECRET_ACCESS_KEY": "a",
        "PYTHONPATH": "/evil",
        "HOME": "/root",
        "SSH_AUTH_SOCK": "/tmp/agent",
    }
    env = sandbox_environment(source, {"PYTHONPATH": "/wt", "AFR_EVAL_SUBSET": "validation"})
    assert env["LC_ALL"] == "C" and env["NVIDIA_VISIBLE_DEVICES"] == "0"
    assert env["PYTHONPATH"] == "/wt" and env["HOME"] == SANDBOX_HOME
    for name in ("OPENAI_API_KEY", "NVIDIA_API_KEY", "AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK"):
        assert name not in env
    assert allowed_name("AFR_RUN_TOKEN") and not allowed_name("NVIDIA_API_KEY")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        sandbox_environment(source, {"OPENAI_API_KEY": "sk-x"})


def test_gpu_devices_are_passed_through_after_the_minimal_dev():
    argv = bwrap_argv(
        ["true"], SandboxSpec(workdir=Path("/")), {}, devices=["/dev/nvidia0", "/dev/nvidiactl"]
    )
    dev = argv.index("/dev")
    assert argv[dev - 1] == "--dev"
    bound = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--dev-bind-try"]
    assert bound == ["/dev/nvidia0", "/dev/nvidiactl"] and argv.index("--dev-bind-try") > dev


@needs_bwrap
def test_secret_variables_never_reach_the_command(box, monkeypatch):
    sentinel = "sk-afr-sentinel-" + uuid.uuid4().hex
    monkeypatch.setenv("OPENAI_API_KEY", sentinel)
    code = "import os; print(sorted(os.environ)); print(open('/proc/self/environ').read())"
    for sandbox in ("bwrap", "none"):
        done = run_python(code, box, sandbox)
        assert done.returncode == 0, done.stderr
        assert sentinel not in done.stdout and "OPENAI_API_KEY" not in done.stdout
    assert sentinel not in " ".join(wrap(["true"], box, "bwrap").argv)


@needs_bwrap
def test_home_and_other_host_files_are_out_of_reach(box, tmp_path):
    secret = Path.home() / f".afr-sandbox-test-{uuid.uuid4().hex}"
    outside = tmp_path / "campaign" / "results.tsv"
    outside.parent.mkdir()
    outside.write_text("baseline 0.62\n")
    secret.write_text("private")
    try:
        code = (
            "import os\n"
            "print(os.path.expanduser('~'), os.listdir(os.path.expanduser('~')))\n"
            f"for path in [{str(secret)!r}, {str(outside)!r}, '/etc/shadow']:\n"
            "    try:\n"
            "        print(path, 'READ', open(path).read()[:20])\n"
            "    except OSError as error:\n"
            "        print(path, 'DENIED', type(error).__name__)\n"
        )
        inside = run_python(code, box)
        assert inside.returncode == 0, inside.stderr
        assert f"{SANDBOX_HOME} []" in inside.stdout
        assert "READ" not in inside.stdout
        assert inside.stdout.count("DENIED") == 3
        unsandboxed = run_python(code, box, "none")
        assert f"{secret} READ private" in unsandboxed.stdout  # only the sandbox stops this
    finally:
        secret.unlink()


@needs_bwrap
def test_hidden_raw_data_is_an_empty_folder(box):
    code = (
        "import os\n"
        "print('LISTING', os.listdir('data'))\n"
        "try:\n"
        "    open('data/raw.csv').read(); print('READ')\n"
        "except OSError:\n"
        "    print('DENIED')\n"
        "try:\n"
        "    open('data/planted.csv', 'w').write('x'); print('WROTE')\n"
        "except OSError:\n"
        "    print('NOWRITE')\n"
    )
    done = run_python(code, box)
    assert done.returncode == 0, done.stderr
    assert "LISTING []" in done.stdout and "DENIED" in done.stdout and "NOWRITE" in done.stdout
    assert (box.workdir / "data" / "raw.csv").read_text().startswith("age")
    assert run_python(code, box, "none").stdout.count("READ") == 1  # only the sandbox stops this


@needs_bwrap
def test_writes_land_only_in_the_worktree_and_run_dir(box, tmp_path):
    outside = tmp_path / "outside.txt"
    host_tmp = Path("/tmp") / f"afr-sandbox-{uuid.uuid4().hex}"
    targets = {
        "worktree": box.workdir / "note.txt",
        "run": box.writable[1] / "note.txt",
        "outside": outside,
        "prefix": Path(sys.prefix) / f"planted-{uuid.uuid4().hex}.pth",
        "etc": Path("/etc") / f"planted-{uuid.uuid4().hex}",
        "tmp": host_tmp,
    }
    code = (
        "import json, sys\n"
        f"targets = {{k: v for k, v in {dict((k, str(v)) for k, v in targets.items())!r}.items()}}\n"
        "result = {}\n"
        "for name, path in targets.items():\n"
        "    try:\n"
        "        open(path, 'w').write('x'); result[name] = 'wrote'\n"
        "    except OSError as error:\n"
        "        result[name] = type(error).__name__\n"
        "print(json.dumps(result))\n"
    )
    done = run_python(code, box)
    assert done.returncode == 0, done.stderr
    assert targets["worktree"].is_file() and targets["run"].is_file()
    for name in ("outside", "prefix", "etc", "tmp"):
        assert not targets[name].exists(), name  # /tmp inside is private: nothing reaches the host's


@needs_bwrap
def test_read_only_mounts_cannot_be_remounted(box):
    code = (
        "import subprocess, sys\n"
        "try:\n"
        "    done = subprocess.run(['mount', '-o', 'remount,rw,bind', sys.prefix], capture_output=True)\n"
        "    print('REMOUNT', done.returncode)\n"
        "except OSError:\n"
        "    print('NOMOUNT')\n"
        "try:\n"
        "    open(sys.prefix + '/x', 'w'); print('WROTE')\n"
        "except OSError:\n"
        "    print('NOWRITE')\n"
    )
    done = run_python(code, box)
    assert "REMOUNT 0" not in done.stdout and "NOWRITE" in done.stdout, done.stdout + done.stderr


def _marked(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


DAEMON = (
    # Double fork, new session, clean environment: what a candidate would do to outlive its run.
    "import os, sys\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        os.execve('/bin/sleep', ['/bin/sleep', sys.argv[1]], {})\n"
    "    os._exit(0)\n"
    "os.wait()\n"
)


@needs_bwrap
def test_a_daemon_dies_with_its_sandbox(box):
    seconds = f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000}"
    command = wrap([sys.executable, "-c", DAEMON, seconds], box, "bwrap")
    done = subprocess.run(
        command.argv, env=command.env, cwd=command.cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    time.sleep(0.5)
    assert _marked(f"/bin/sleep {seconds}") == []
    # Without the sandbox the same daemon survives: only the PID namespace ends it.
    command = wrap([sys.executable, "-c", DAEMON, seconds], box, "none")
    subprocess.run(command.argv, env=command.env, cwd=command.cwd, timeout=60)
    time.sleep(0.5)
    survivors = _marked(f"/bin/sleep {seconds}")
    for process in survivors:
        process.kill()
    assert survivors


@needs_bwrap
def test_killing_the_sandbox_ends_every_process_in_it(box):
    seconds = f"{400 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000}"
    code = f"import subprocess, time\nsubprocess.Popen(['/bin/sleep', '{seconds}'], start_new_session=True)\ntime.sleep(600)\n"
    command = wrap([sys.executable, "-c", code], box, "bwrap")
    process = subprocess.Popen(command.argv, env=command.env, cwd=command.cwd, start_new_session=True)
    deadline = time.monotonic() + 30
    while not _marked(f"/bin/sleep {seconds}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _marked(f"/bin/sleep {seconds}")
    process.kill()  # what the runner's timeout does to the bwrap process
    process.wait(timeout=10)
    time.sleep(0.5)
    assert _marked(f"/bin/sleep {seconds}") == []


def _host_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


@needs_bwrap
def test_network_is_loopback_only(box):
    host = _host_address()
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    port = server.getsockname()[1]
    code = (
        "import socket, threading\n"
        "def attempt(host, port):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=3).close(); return 'connected'\n"
        "    except OSError as error:\n"
        "        return type(error).__name__\n"
        "inner = socket.socket(); inner.bind(('127.0.0.1', 0)); inner.listen()\n"
        "threading.Thread(target=inner.accept, daemon=True).start()\n"
        "print('inner', attempt('127.0.0.1', inner.getsockname()[1]))\n"
        f"print('host-loopback', attempt('127.0.0.1', {port}))\n"
        f"print('host-address', attempt({host!r}, {port}) if {host!r} else 'none')\n"
        "print('outside', attempt('1.1.1.1', 53))\n"
    )
    try:
        done = run_python(code, box)
        unsandboxed = run_python(code, box, "none") if host else None
    finally:
        server.close()
    assert "inner connected" in done.stdout, done.stdout + done.stderr  # NVFlare's loopback sockets work
    assert "host-loopback connected" not in done.stdout  # the engine's own local services are unreachable
    assert "host-address connected" not in done.stdout
    assert "outside connected" not in done.stdout
    if unsandboxed is not None:
        assert "host-address connected" in unsandboxed.stdout  # only the sandbox stops this


@needs_bwrap
def test_host_processes_are_invisible(box):
    code = "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))\nos.kill(1, 0)\n"
    done = run_python(code, box)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[0]) < 5  # bwrap's init, the command, nothing of the host
    assert os.getpid() > 0


HOSTILE_MODEL_IMPORT = """
import os as _os, subprocess as _subprocess
try:
    open({leak!r}, "w").write(_os.environ.get("OPENAI_API_KEY", "no key"))
except OSError:
    pass
_subprocess.Popen(["/bin/sleep", {seconds!r}], start_new_session=True, env={{}}, stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)
"""


@needs_bwrap
def test_the_architecture_probe_runs_sandboxed(tmp_path, monkeypatch):
    import shutil

    from engine.guard.validate import check_models
    from engine.profile import load_profile
    from engine.run.jobbox import raw_data_paths

    root = Path(__file__).resolve().parents[1]
    worktree = tmp_path / "worktree"
    shutil.copytree(root / "tasks", worktree / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    profile = load_profile(root, "fed_heart_disease")
    sentinel = "sk-afr-SENTINEL-" + uuid.uuid4().hex
    monkeypatch.setenv("OPENAI_API_KEY", sentinel)
    model = worktree / profile.task_dir / "model.py"
    original = model.read_text()
    assert raw_data_paths(worktree, profile.surface.protected)  # what the probe's default spec hides
    for sandboxed in (True, False):
        if not sandboxed:  # the same probe where no sandbox works
            monkeypatch.setenv("AFR_SANDBOX", "none")
        detect_sandbox.cache_clear()
        leak = tmp_path / f"leak-{sandboxed}.txt"
        seconds = f"{500 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000}"
        model.write_text(original + HOSTILE_MODEL_IMPORT.format(leak=str(leak), seconds=seconds))
        verdicts = check_models(worktree, profile, ["logreg", "mlp32"])  # the guard's own default
        assert verdicts == {"logreg": "ok", "mlp32": "ok"}  # 13*32+32+33 = 481 parameters, under 2000
        time.sleep(0.5)
        daemons = _marked(f"/bin/sleep {seconds}")
        for process in daemons:
            process.kill()
        if sandboxed:
            assert not leak.exists() and daemons == []
        else:  # the key is scrubbed from the environment anyway; only the sandbox stops the daemon
            assert leak.read_text() == "no key" and daemons
    monkeypatch.delenv("AFR_SANDBOX")
    detect_sandbox.cache_clear()


SLEEPER_JOB = """
import os, sys, time
# A job that leaves a clean-environment daemon (no run token to be found by) and then hangs.
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execve("/bin/sleep", ["/bin/sleep", {seconds!r}], {{}})
    os._exit(0)
os.wait()
print("hanging", flush=True)
time.sleep(600)
"""


@needs_bwrap
def test_a_timed_out_sandboxed_job_leaves_nothing_behind(tmp_path):
    from engine.profile import load_profile
    from engine.run.jobbox import job_spec
    from engine.run.runner import run_job

    root = Path(__file__).resolve().parents[1]
    profile = load_profile(root, "fed_heart_disease")
    workspace = tmp_path / "workspace"
    job = workspace / profile.task_dir / profile.job
    job.parent.mkdir(parents=True)
    for sandboxed in (True, False):
        seconds = f"{600 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000}"
        job.write_text(SLEEPER_JOB.format(seconds=seconds))
        run_dir = tmp_path / f"run-{sandboxed}"
        run_dir.mkdir()
        spec = job_spec(workspace, run_dir, None, profile.surface.protected, {}) if sandboxed else None
        result = run_job(workspace, profile, {}, run_dir, timeout=8, stall_seconds=0, sandbox_spec=spec)
        assert result.status == "timeout" and "hanging" in Path(result.log_path).read_text()
        time.sleep(0.5)
        survivors = _marked(f"/bin/sleep {seconds}")
        for process in survivors:
            process.kill()
        if sandboxed:
            assert survivors == []
        else:
            assert survivors  # only the sandbox stops this: the runner's token search misses it
