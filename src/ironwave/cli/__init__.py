"""The ``ironwave`` command line (typer + rich)."""
