"""API and worker processes freeze what start-up built, so full collections skip it."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import asyncio, gc, json
from backend.main import create_app
from worker.settings import WorkerSettings

def seen():
    return {"frozen": gc.get_freeze_count(), "oldest": len(gc.get_objects(2))}

async def main():
    report = {}
    app = create_app()
    async with app.router.lifespan_context(app):
        report["api_running"] = seen()
    report["api_stopped"] = seen()
    await WorkerSettings.on_startup({})
    report["worker_running"] = seen()
    await WorkerSettings.on_shutdown({})
    report["worker_stopped"] = seen()
    print(json.dumps(report))

asyncio.run(main())
"""


def test_start_up_objects_are_frozen_while_running_and_given_back_at_shutdown() -> None:
    done = subprocess.run(  # noqa: S603 (fixed argv)
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for process in ("api", "worker"):
        running, stopped = report[f"{process}_running"], report[f"{process}_stopped"]
        # The framework, the SDKs' models and the routes: well over 100,000 objects, which a
        # full collection no longer walks.
        assert running["frozen"] > 100_000, report
        assert running["oldest"] < running["frozen"] / 10, report
        assert stopped["frozen"] == 0, report
        assert stopped["oldest"] > 100_000, report
