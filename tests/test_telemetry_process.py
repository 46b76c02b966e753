"""OpenTelemetry in processes of their own: without the package at all, and with the API's
global providers (which a process can set only once, so never in the test process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

WITHOUT_OPENTELEMETRY = textwrap.dedent(
    """
    import sys


    class NoOpenTelemetry:
        # As if opentelemetry-api were not installed.
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "opentelemetry":
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None


    sys.meta_path.insert(0, NoOpenTelemetry())

    import asyncio

    from hub_auth import HubAuth, MemoryCache
    from hub_auth import _telemetry
    from hub_auth.testing import FakeHub, FakeUser, make_token

    TOKEN = make_token("no-otel")


    async def main():
        async with FakeHub(tokens={TOKEN: FakeUser(name="ada")}) as hub:
            async with HubAuth(endpoint=hub.url, cache=MemoryCache()) as auth:
                first = (await auth.whoami(TOKEN)).unwrap().username
                second = (await auth.whoami(TOKEN)).unwrap().username
                started = (await auth.start_device_login()).is_ok()
                report = await auth.health()
        loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
        print(first, second, started, report.ready, _telemetry.on, loaded)


    asyncio.run(main())
    """
)

GLOBAL_PROVIDERS = textwrap.dedent(
    """
    import asyncio
    import json

    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hub_auth import HubAuth, MemoryCache
    from hub_auth import _telemetry
    from hub_auth.testing import FakeHub, FakeUser, make_token

    ADA, BOB = make_token("ada"), make_token("bob")


    def calls(reader):
        found = {}
        for resource in reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == _telemetry.WHOAMI_CALLS:
                        for point in metric.data.data_points:
                            found[point.attributes["cache"]] = point.value
        return found


    async def main():
        users = {ADA: FakeUser(name="ada"), BOB: FakeUser(name="bob")}
        async with FakeHub(tokens=users) as hub:
            async with HubAuth(endpoint=hub.url, cache=MemoryCache()) as auth:
                await auth.whoami(ADA)  # no provider yet: nothing recorded, gate closed
                before = _telemetry.on
                exporter = InMemorySpanExporter()
                tracer_provider = TracerProvider()
                tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(tracer_provider)
                reader = InMemoryMetricReader()
                metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
                await auth.whoami(ADA)  # a hit: the gate is looked at again at a Hub request
                await auth.whoami(BOB)  # a miss: its request opens the gate
                await auth.whoami(ADA)  # a hit, recorded
        spans = [span.name for span in exporter.get_finished_spans()]
        print(json.dumps([before, _telemetry.on, spans, calls(reader)]))


    asyncio.run(main())
    """
)


def run(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "HF_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_opentelemetry_nothing_changes(tmp_path: Path) -> None:
    done = run(WITHOUT_OPENTELEMETRY, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ada", "ada", "True", "True", "False", "[]"]


def test_providers_set_after_the_client_are_used_from_the_next_hub_request(
    tmp_path: Path,
) -> None:
    done = run(GLOBAL_PROVIDERS, tmp_path)
    assert done.returncode == 0, done.stderr
    before, after, spans, calls = json.loads(done.stdout)
    assert (before, after) == (False, True)
    assert spans == ["hub_auth.hub.request", "hub_auth.whoami"]
    assert calls == {"hit": 1}
