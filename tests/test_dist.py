"""`make dist` builds what the README tells people to install, and it installs: the wheel
(built from the sdist) goes into a fresh virtual environment and serves a chat through its
`aisdk-bridge` script; the transport's npm tarball goes into a fresh npm project and, imported
by its package name, gets that chat's answer.

The fresh environment gets the wheel alone (`--no-deps`); its dependencies are read from the
development environment (a path entry), which keeps this test to seconds instead of minutes
of downloads. `make dist-check` installs the wheel with its dependencies from the package
index instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.node_harness import node_binary
from tests.support.bridge_process import bridge_environment
from tests.support.ports import free_port

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 60.0


def run(argv: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=600, **kwargs
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{argv}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    node = node_binary()
    env = bridge_environment(DIST_DIR=str(out))
    env["PATH"] = f"{Path(node).parent}:{env['PATH']}"
    run(["bash", ROOT / "scripts" / "dist.sh", sys.executable], env=env)
    return out


def one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, f"{pattern}: {found}"
    return found[0]


def test_dist_builds_the_sdist_wheel_and_npm_package(artifacts: Path) -> None:
    with tarfile.open(one(artifacts, "aisdk_bridge-*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "bridge/__main__.py", "protocol/chunks.py"} <= names
    with zipfile.ZipFile(one(artifacts, "aisdk_bridge-*-py3-none-any.whl")) as wheel:
        files = set(wheel.namelist())
    assert "bridge/app.py" in files and "protocol/sse.py" in files
    assert not any(name.startswith("tests/") for name in files)
    with tarfile.open(one(artifacts, "aisdk-bridge-resilient-transport-*.tgz")) as package:
        packed = set(package.getnames())
        manifest = json.load(package.extractfile("package/package.json"))  # type: ignore[arg-type]
    assert {"package/dist/index.js", "package/dist/index.d.ts", "package/README.md"} <= packed
    assert manifest["name"] == "@aisdk-bridge/resilient-transport"
    assert manifest["types"] == "./dist/index.d.ts"


def test_dist_artifacts_install_and_answer_a_chat(artifacts: Path, tmp_path: Path) -> None:
    # The wheel, in a virtual environment of its own.
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    wheel = one(artifacts, "aisdk_bridge-*-py3-none-any.whl")
    lock = ROOT / "requirements.lock"
    if os.environ.get("DIST_FULL_INSTALL") == "1":  # make dist-check: from the index
        run([sys.executable, "-m", "venv", venv])
        run([python, "-m", "pip", "install", "-q", "-c", lock, f"{wheel}[otel]"])
    else:
        run([sys.executable, "-m", "venv", "--without-pip", venv])
        run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel])
    site = Path(run([python, "-c", "import site; print(site.getsitepackages()[0])"]).stdout.strip())
    if os.environ.get("DIST_FULL_INSTALL") != "1":
        (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = run([python, "-c", "import bridge, protocol; print(bridge.__file__)"], cwd=tmp_path)
    assert where.stdout.strip().startswith(str(site)), where.stdout

    port = free_port()
    env = bridge_environment(BRIDGE_STORE="memory", BRIDGE_DEMO_TOKEN_DELAY_MS="0")
    env.pop("PYTHONPATH")  # only what was installed
    server = subprocess.Popen(
        [venv / "bin" / "aisdk-bridge", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:  # a condition with a deadline: the installed server answers
            assert server.poll() is None, server.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the installed bridge did not start"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)

        # The npm package, in a project of its own, imported by its name.
        project = tmp_path / "app"
        project.mkdir()
        (project / "package.json").write_text('{"name": "app", "private": true, "type": "module"}')
        node = node_binary()
        env_node = {**env, "PATH": f"{Path(node).parent}:{env['PATH']}", "BRIDGE_URL": url}
        tarball = one(artifacts, "aisdk-bridge-resilient-transport-*.tgz")
        # `ai` is a peer dependency for the types only: the package runs without it.
        install = ["npm", "install", "--offline", "--legacy-peer-deps", "--no-audit", "--no-fund"]
        run([*install, tarball], cwd=project, env=env_node)
        smoke = project / "smoke.mjs"
        smoke.write_text((ROOT / "frontend-demo/transport/test/pack-smoke.mjs").read_text())
        answer = json.loads(run([node, smoke], cwd=project, env=env_node).stdout)
    finally:
        server.kill()
        server.wait(30)
    assert answer["ok"] is True, answer
    assert answer["types"][0] == "start" and answer["types"][-1] == "finish"
    assert "Demo model" in answer["text"]
