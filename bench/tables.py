"""Plain-text tables, printed to the terminal and written as Markdown into RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Cells that yielded no figure; any of them makes the run exit non-zero.
    failures: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def fail(self, where: str, reason: str) -> None:
        self.failures.append(f"{where}: {reason}")

    def text(self) -> str:
        widths = [
            max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
            for i, c in enumerate(self.columns)
        ]
        line = "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))
        out = [self.title, "-" * len(self.title), line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in self.rows]
        out += [f"  {note}" for note in self.notes]
        out += [f"  FAILED {failure}" for failure in self.failures]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        out.append("|" + "|".join("---" for _ in self.columns) + "|")
        out += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes or self.failures:
            out += [""] + [f"- {note}" for note in self.notes]
            out += [f"- **FAILED** {failure}" for failure in self.failures]
        return "\n".join(out)
