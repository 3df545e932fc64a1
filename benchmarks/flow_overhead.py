"""Per-stage Prefect overhead: one shared server for the session vs a temporary server per stage.

    python benchmarks/flow_overhead.py [--repeats 3] [--out benchmarks/results/flow_overhead.json]

A training or evaluation stage is a fresh ``python`` process that runs one flow. This times
such a process whose flow does nothing (``@flow def noop(): pass``), so all of its time is
overhead, three ways, each ``--repeats`` times in a throw-away ``PREFECT_HOME``:

* ``temporary``: no ``PREFECT_API_URL`` — Prefect starts (and stops) a temporary server inside
  the stage, as ``dvc repro`` did before issue #10;
* ``shared``: ``PREFECT_API_URL`` pointing at one server started once by
  ``pipelines.ops.prefect_session.prefect_server`` (its start-up is timed apart, paid once);
* ``no_flow``: the same process importing prefect but running no flow (the floor).

It writes the wall times, their medians, the overhead per stage (``median - no_flow``) and the
projected saving for ``--stages`` flow stages as JSON. Numbers from a shared 2-core machine are
sizes, not promises.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
# the project root, for a checkout that is not pip-installed (e.g. the GPU machine)
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

NOOP_FLOW = """\
import sys
from prefect import flow

@flow(name="flow-overhead-noop")
def noop() -> None:
    pass

if sys.argv[1:] != ["--no-flow"]:
    noop()
"""


def _env(home: Path, api: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT__") and k not in ("PREFECT_API_URL", "PREFECT_API_KEY")
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        }
    )
    if api:
        env["PREFECT_API_URL"] = api
    return env


def time_stage(script: Path, env: dict[str, str], *args: str) -> float:
    """Wall seconds of one stage process (``python script args``); it must exit 0."""
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        cwd=script.parent,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"stage exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds


def summary(times: list[float]) -> dict[str, object]:
    return {
        "runs_s": [round(t, 2) for t in times],
        "median_s": round(statistics.median(times), 2),
        "min_s": round(min(times), 2),
        "max_s": round(max(times), 2),
    }


def measure(repeats: int, stages: int, log=print) -> dict[str, object]:
    from pipelines.ops.prefect_session import prefect_server

    with tempfile.TemporaryDirectory(prefix="flow_overhead_") as tmp:
        tmp = Path(tmp)
        script = tmp / "noop_flow.py"
        script.write_text(NOOP_FLOW)
        home = tmp / "prefect_home"
        home.mkdir()
        results: dict[str, object] = {}

        # Warm the interpreter's file cache once, so the first timed run is not penalised.
        time_stage(script, _env(home, None), "--no-flow")
        results["no_flow"] = summary(
            [time_stage(script, _env(home, None), "--no-flow") for _ in range(repeats)]
        )
        log(f"no_flow   (import prefect, no flow): {results['no_flow']}")

        temporary = []
        for i in range(repeats):
            temporary.append(time_stage(script, _env(home, None)))
            log(f"temporary server run {i + 1}/{repeats}: {temporary[-1]:.2f} s")
        results["temporary"] = summary(temporary)

        saved = os.environ.pop("PREFECT_API_URL", None)
        try:
            began = time.perf_counter()
            with prefect_server(home / "shared", quiet=True) as api:
                startup = time.perf_counter() - began
                log(f"shared server healthy in {startup:.2f} s at {api}")
                shared = []
                for i in range(repeats):
                    shared.append(time_stage(script, _env(home, api)))
                    log(f"shared server run {i + 1}/{repeats}: {shared[-1]:.2f} s")
                stop_began = time.perf_counter()
            stop = time.perf_counter() - stop_began
        finally:
            if saved is not None:
                os.environ["PREFECT_API_URL"] = saved
        results["shared"] = summary(shared)
        results["shared_server_startup_s"] = round(startup, 2)
        results["shared_server_stop_s"] = round(stop, 2)

    floor = results["no_flow"]["median_s"]
    tmp_over = round(results["temporary"]["median_s"] - floor, 2)
    shared_over = round(results["shared"]["median_s"] - floor, 2)
    once = results["shared_server_startup_s"] + results["shared_server_stop_s"]
    results["overhead_per_stage_s"] = {"temporary": tmp_over, "shared": shared_over}
    results["saved_per_stage_s"] = round(tmp_over - shared_over, 2)
    results["projection"] = {
        "stages": stages,
        "temporary_total_s": round(stages * tmp_over, 1),
        "shared_total_s": round(stages * shared_over + once, 1),
        "note": "shared_total includes starting and stopping the one server once",
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/flow_overhead.py",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed stage runs per way (default: %(default)s)"
    )
    parser.add_argument(
        "--stages",
        type=int,
        default=23,
        help="flow stages in the DAG, for the projection (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=_HERE / "results" / "flow_overhead.json",
        help="JSON output (default: benchmarks/results/flow_overhead.json)",
    )
    args = parser.parse_args(argv)

    import prefect

    import rnnflow  # noqa: F401  offline/telemetry defaults first

    results = {
        "benchmark": "flow_overhead",
        "what": "wall seconds of one stage process running a no-op Prefect flow",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "prefect": prefect.__version__,
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "repeats": args.repeats,
        **measure(args.repeats, args.stages),
    }
    results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    o, p = results["overhead_per_stage_s"], results["projection"]
    print(
        f"overhead per stage: temporary server {o['temporary']} s, shared server "
        f"{o['shared']} s (saved {results['saved_per_stage_s']} s a stage); "
        f"{p['stages']} stages: {p['temporary_total_s']} s vs {p['shared_total_s']} s"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
