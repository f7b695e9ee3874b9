"""One finding of ``whisperctl doctor``: a status, what was checked, and what to do."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    message: str

    def line(self) -> str:
        return f"[{self.status.value:>4}] {self.name}: {self.message}"
