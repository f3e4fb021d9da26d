"""The Dagster UI, driven by a real headless Chromium: open the asset graph, launch one partition's
materialisation from the asset page, wait for the run to succeed, and keep a screenshot."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from selection_assets.orchestration.runs import ORCHESTRATOR_TAG
from selection_assets_tests.conftest import REPO, SMALL_ENV_METHODS, experiment_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {seconds}s")


@pytest.fixture
def dagster_dev(small_env, tmp_path):
    """`dagster dev` (webserver + daemon) on 127.0.0.1 over a copy of the small demo's instance, with a
    second budget so that a partition of the grid is still unmaterialised."""
    home, env = small_env
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    port = _free_port()
    env = experiment_env(copy, (80, 160), (20, 40), SMALL_ENV_METHODS, training={"seeds": [0]})
    process = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-m", "selection_assets.definitions",
                                "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=REPO, start_new_session=True,
                               stdout=open(tmp_path / "dagster_dev.log", "w"), stderr=subprocess.STDOUT)
    try:
        _wait_for(f"http://127.0.0.1:{port}/server_info", 180)
        yield f"http://127.0.0.1:{port}", copy
    finally:
        os.killpg(process.pid, signal.SIGINT)  # dagster dev's children (code server, daemon) too
        try:  # the daemon stops at once; the webserver can linger a minute, which no test needs
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (setup.sh installs Debian's)")
def test_launch_one_partition_from_the_ui(dagster_dev, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    url, home = dagster_dev
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/asset-groups")  # the global asset lineage, one node per stage group
        _skip_community_dialog(page)
        for group in ("sources", "pool", "embeddings", "scores", "selections", "training", "reports"):
            page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=tmp_path / "asset_graph.png")

        page.goto(f"{url}/assets/random/selection")
        page.get_by_role("button", name="Materialize…").click(timeout=60_000)
        dialog = page.get_by_role("dialog")
        for value in ("20", "160"):  # budget, then pool_size: the one unmaterialised cell
            dialog.get_by_text("Select a partition or create one").first.click(timeout=60_000)
            page.keyboard.type(value)
            option = page.get_by_role("menuitem").filter(has_not_text="Select all").filter(has_text=value).first
            option.locator("label").click(timeout=60_000)  # waits until the list is filtered to the value
            page.keyboard.press("Escape")
        dialog.get_by_role("button", name="Launch 1 run").click(timeout=60_000)

        run = _wait_for_run(home, "budget", "20", 300)
        assert run.status.value == "SUCCESS"
        # orchestrated, and leased, by the run worker the UI's launcher started (runs.py)
        assert run.tags[ORCHESTRATOR_TAG].endswith(f" on {socket.gethostname()}")
        assert run.tags[ORCHESTRATOR_TAG] != f"pid {os.getpid()} on {socket.gethostname()}"
        page.goto(f"{url}/runs")
        page.get_by_text(re.compile("Success", re.I)).first.wait_for(timeout=60_000)
        page.screenshot(path=tmp_path / "run_succeeded.png")
        browser.close()
    assert (home / "storage" / "selections" / "random" / "160" / "20.parquet").exists()
    print(f"screenshots: {tmp_path / 'asset_graph.png'}, {tmp_path / 'run_succeeded.png'}")


def _skip_community_dialog(page) -> None:
    """A first visit may show a 'Join the Dagster community' dialog; its Skip button dismisses it."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=5_000)
    except Exception:  # no dialog this time
        pass


def _wait_for_run(home: Path, dimension: str, value: str, seconds: float):
    """The finished run of the partition whose `dimension` is `value`."""
    deadline = time.monotonic() + seconds
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        while time.monotonic() < deadline:
            runs = [r for r in instance.get_runs() if r.tags.get(f"dagster/partition/{dimension}") == value]
            if runs and runs[0].is_finished:
                return runs[0]
            time.sleep(2)
    raise TimeoutError("the run launched from the UI did not finish")
