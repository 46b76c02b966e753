"""The benchmark cases; each module has ``CASE`` (its label) and ``run(ctx) -> list[Row]``."""
