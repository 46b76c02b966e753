"""A shim so aioresponses 0.7.9 works with aiohttp >= 3.14 (aioresponses issue #289).

aiohttp 3.14 added a required ``stream_writer`` argument to ``ClientResponse``; aioresponses
0.7.9 does not pass it. Registering responses with ``response_class=CompatResponse`` supplies
a stand-in that reports nothing written. Remove once aioresponses ships the fix.
"""

from __future__ import annotations

from typing import Any

import aiohttp


class _NoStreamWriter:
    output_size = 0


class CompatResponse(aiohttp.ClientResponse):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NoStreamWriter())
        super().__init__(*args, **kwargs)
