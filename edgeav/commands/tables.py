"""Printing rich tables for people: at their full width, never cut to the terminal's columns.

A table cut at 80 columns (a narrow terminal, or no terminal at all: a pipe, a service's journal)
loses the figures people came for; rich then prints ``…`` in their place. Wider is better.
"""

from __future__ import annotations

from typing import Any


class TablePrinter:
    """Prints rich tables (and other renderables) to stdout, each at least as wide as it needs."""

    def __init__(self) -> None:
        from rich.console import Console  # noqa: PLC0415

        self._console = Console()

    def print(self, renderable: Any, **kwargs: Any) -> None:
        from rich.console import Console  # noqa: PLC0415

        wide = self._console.options.update_width(10_000)
        needed = self._console.measure(renderable, options=wide).maximum
        console = self._console
        if needed > console.width:
            console = Console(width=needed, force_terminal=console.is_terminal)
        console.print(renderable, **kwargs)
