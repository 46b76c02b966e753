"""benchmarks/mcp.py still measures what it claims, at tiny sizes."""

from __future__ import annotations

from benchmarks.mcp import count_requests, run


def test_hub_requests_per_verifier() -> None:
    rows = {name: (calls, requests) for name, calls, requests in count_requests(2, 3)}
    anchor_calls, anchor_requests = rows["FastMCP HuggingFaceTokenVerifier"]
    # FastMCP's verifier asks the Hub (userinfo, then whoami) on every HTTP request.
    assert anchor_requests >= 2 * anchor_calls
    # hub_auth: one whoami per user, whatever the number of calls.
    assert rows["hub_auth.mcp (official SDK)"] == (6, 2)
    assert rows["hub_auth.mcp.fastmcp (FastMCP)"] == (6, 2)


def test_the_report_has_both_tables() -> None:
    report = run(users=1, calls=2, latency_calls=5)
    assert "| FastMCP HuggingFaceTokenVerifier | 2 |" in report
    assert "| official SDK |" in report
    assert "| FastMCP |" in report
