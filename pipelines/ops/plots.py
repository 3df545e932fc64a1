"""The HTML template that makes ``dvc plots show`` and ``dvc plots diff`` render offline.

    rnnflow plots-template          # writes .dvc/plots/offline.html (needs vl-convert-python)

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline it is blank. This
template carries them inline (bundled by ``vl-convert-python``, Vega-Lite 5 as DVC's specs
ask) and leaves out DVC's ``{scripts}`` placeholder, so the page asks the network for nothing.
``.dvc/config`` names it (``plots.html_template``); the file is committed, so only someone
moving to newer Vega versions runs this again (``pip install vl-convert-python`` first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnflow.env import PROJECT_ROOT
from rnnflow.io import write_bytes

VEGA_LITE = "5.21"  # DVC's plot templates are Vega-Lite 5 specs

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC plots</title>
<!-- Vega {vega}, Vega-Lite {vega_lite}, Vega-Embed {embed} inline (vl-convert-python
     {converter}): `dvc plots show` renders offline. Written by `rnnflow plots-template`. -->
<script>
{bundle}
</script>
<style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def template() -> str:
    """The page: DVC fills ``{plot_divs}`` (and ``{refresh_tag}`` for ``--open`` refresh)."""
    try:
        import vl_convert as vlc
    except ImportError:
        raise SystemExit(
            "rnnflow plots-template: needs vl-convert-python (`pip install vl-convert-python`)"
        ) from None
    from importlib.metadata import version

    bundle = vlc.javascript_bundle(vl_version=VEGA_LITE)
    if "</script" in bundle.lower():  # would end the inline script early
        raise SystemExit("rnnflow plots-template: the Vega bundle contains '</script'")
    return PAGE.format(
        vega=vlc.get_vega_version(),
        vega_lite=VEGA_LITE,
        embed=vlc.get_vega_embed_version(),
        converter=version("vl-convert-python"),
        bundle=bundle,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rnnflow plots-template", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / ".dvc" / "plots" / "offline.html",
        help="where to write it (default: %(default)s, what .dvc/config names)",
    )
    args = parser.parse_args(argv)
    page = template()
    write_bytes(args.out, page.encode())
    print(f"{args.out}: {len(page):,} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
