"""Developer tools that are not installed with the package (``python -m tools.gen_sync``)."""
