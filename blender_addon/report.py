"""The panel's report of the last action, as structured lines: pure Python, no bpy.

An error keeps its type and code on the way to the panel (``backend.errors``): the operators write
``ReportLine``s carrying them, the panel (``ui.draw_report``) draws those fields, and nothing is parsed back
out of text. ``Report.text`` joins the lines for scripts (``scene.expgest.last_report``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backend.errors import ExpGestError


@dataclass(frozen=True)
class ReportLine:
    """One line of the panel's report, structured: the panel draws these fields and never parses text.

    Attributes:
        text: the sentence(s) for the user (Blender wording).
        level: ``INFO``, ``WARNING`` or ``ERROR``.
        code: the error's protocol code (``backend.errors``) when the line is an error that has one.
        title: the error class's title ("audio error"), shown with the code.
        details: lines that belong to the error (``error.details``: missing files ...).
    """

    text: str
    level: str = "INFO"
    code: int | None = None
    title: str = ""
    details: tuple[str, ...] = ()

    @classmethod
    def for_error(cls, text: str, error: BaseException | None) -> ReportLine:
        """An ``ERROR`` line carrying ``error``'s code, title and details when it is an ``ExpGestError``."""
        if isinstance(error, ExpGestError):
            return cls(text, "ERROR", error.code, error.title, tuple(error.details))
        return cls(text, "ERROR")


@dataclass
class Report:
    """The last action's result for the panel: in memory only (never saved in the .blend), replaced by the
    next action and cleared when a file is loaded."""

    lines: list[ReportLine] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The lines as one string, for scripts (``scene.expgest.last_report``); the panel uses ``lines``."""
        return " | ".join(line.text for line in self.lines)

    @property
    def is_error(self) -> bool:
        """Whether any line is an error."""
        return any(line.level == "ERROR" for line in self.lines)

    @property
    def codes(self) -> list[int]:
        """The codes of the error lines that have one."""
        return [line.code for line in self.lines if line.code is not None]
