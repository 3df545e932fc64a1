"""``dvc plots show`` renders offline: the committed template (``.dvc/config``
``plots.html_template``) carries Vega inline, so the page draws every plot in Chromium with
the network cut off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rnnflow.env import PROJECT_ROOT
from tests.conftest import chromium

DVC = Path(sys.executable).parent / "dvc"


def test_the_template_asks_the_network_for_nothing() -> None:
    page = (PROJECT_ROOT / ".dvc" / "plots" / "offline.html").read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN scripts go nowhere
    assert "window.vegaEmbed=" in page
    assert "plots/offline.html" in (PROJECT_ROOT / ".dvc" / "config").read_text()


def test_dvc_plots_show_draws_every_plot_offline(tmp_path: Path) -> None:
    out = tmp_path / "plots"
    proc = subprocess.run(
        [str(DVC), "plots", "show", "-o", str(out), "dvclive/mnist_cnn", "plots/mnist_cnn"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    blocked: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith(("file://", "data:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with chromium(tmp_path / "chromium-profile") as browser:
        page = browser.new_page()
        page.route("**/*", route)
        page.goto((out / "index.html").as_uri(), wait_until="load", timeout=60_000)
        divs = page.eval_on_selector_all("body > div[id]", "els => els.length")
        page.wait_for_function(
            "n => document.querySelectorAll('body > div[id] svg, body > div[id] canvas')"
            ".length >= n",
            arg=divs,
            timeout=60_000,
        )
        page.screenshot(path=str(tmp_path / "dvc-plots.png"), full_page=True)
    assert divs >= 5, divs  # mnist_cnn: its curves (one per metric) and confusion matrix
    assert blocked == []
