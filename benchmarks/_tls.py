"""The TLS variant of a case: the same measurements against the lean responder over https.

``tls_variant(case_module, ctx)`` makes a throw-away ``trustme`` CA, issues a certificate for
127.0.0.1, starts the lean responder with it in a process of its own (``python -m
benchmarks._responder TOKENS --certfile ... --keyfile ...``) and runs the case's ``run`` in a
child process (``python -m benchmarks._tls``) whose ``SSL_CERT_FILE`` names the CA. Every client
measured trusts the CA that way, through its own default TLS set-up, with no code of its own
changed: aiohttp's default context (so ``HubAuth``, ``HubAuthSync`` and raw aiohttp) reads
``SSL_CERT_FILE`` when aiohttp is imported, and huggingface_hub's ``httpx2`` client when the
client is made; so the variable must be set before the process starts, hence the child. The rows
come back as JSON, their case named ``<case>, TLS``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from benchmarks._common import TLS_SUFFIX, BenchContext, Row, Sizes, bench_env, skipped
from benchmarks._responder import ResponderProcess

__all__ = ["tls_variant"]

_CHILD_TIMEOUT = 1800.0


def tls_variant(case: ModuleType, ctx: BenchContext) -> list[Row]:
    """The rows of ``case.run`` measured again over https (in a child process)."""
    name = f"{case.CASE}{TLS_SUFFIX}"
    try:
        import trustme
    except ImportError:
        note = "trustme is not installed: pip install -e '.[test]'"
        return [skipped(name, "TLS variant", "µs/call", note)]
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="hub-auth-bench-tls-") as folder:
        cert, key, ca_file = (Path(folder) / f for f in ("cert.pem", "key.pem", "ca.pem"))
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        ca.cert_pem.write_to_path(str(ca_file))
        with ResponderProcess(1, certfile=cert, keyfile=key) as hub:
            job = {
                "module": case.__name__,
                "sizes": dataclasses.asdict(ctx.sizes),
                "hub_url": hub.url,
                "tokens": hub.tokens,
                "smoke": ctx.smoke,
            }
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks._tls"],
                input=json.dumps(job),
                stdout=subprocess.PIPE,
                text=True,
                env=bench_env(SSL_CERT_FILE=str(ca_file)),
                timeout=_CHILD_TIMEOUT,
                check=False,
            )
    if done.returncode != 0:
        raise RuntimeError(f"the TLS child of case {case.CASE!r} failed (see stderr above)")
    lines = done.stdout.strip().splitlines()
    return [dataclasses.replace(Row(**fields), case=name) for fields in json.loads(lines[-1])]


def _child() -> int:
    job = json.loads(sys.stdin.read())
    case = importlib.import_module(job["module"])
    ctx = BenchContext(
        sizes=Sizes(**job["sizes"]),
        hub_url=job["hub_url"],
        tokens=job["tokens"],
        smoke=job["smoke"],
        tls=True,
        lean_url=job["hub_url"],
    )
    if not ctx.hub_url.startswith("https://"):
        raise RuntimeError(f"the TLS responder is not https: {ctx.hub_url}")
    rows = case.run(ctx)
    print(json.dumps([dataclasses.asdict(row) for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
