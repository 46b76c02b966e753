"""Benchmarks: hub_auth beside raw aiohttp and huggingface_hub (``python -m benchmarks``)."""
