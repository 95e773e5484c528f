"""Debugging reports on disk: Evidently's HTML and JSON of one evaluation, plus what the monitor knew then.

A report is three files named by its id: `<id>.html`, `<id>.json` (Evidently) and `<id>.meta.json`
(reason, model, drift and live figures). The oldest are deleted beyond `max_reports`.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fraudops.errors import NotFoundError

REPORT_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")


class ReportView(BaseModel):
    id: str
    created_at: datetime
    reason: str
    model_name: str | None
    model_version: str | None
    url: str
    json_url: str
    summary: dict[str, Any]


class ReportStore:
    def __init__(self, directory: Path, max_reports: int) -> None:
        self.directory = directory
        self.max_reports = max_reports
        directory.mkdir(parents=True, exist_ok=True)

    def new_id(self) -> str:
        return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)

    def path_for(self, report_id: str) -> Path:
        """Where Evidently writes (suffixes added): refuses ids that are not ours, so no path escapes."""
        if not REPORT_ID.match(report_id):
            raise NotFoundError(f"no report {report_id!r}")
        return self.directory / report_id

    def save_meta(
        self, report_id: str, reason: str, model: tuple[str, str] | None, summary: dict[str, Any]
    ) -> ReportView:
        view = ReportView(
            id=report_id,
            created_at=datetime.now(UTC),
            reason=reason,
            model_name=model[0] if model else None,
            model_version=model[1] if model else None,
            url=f"/v1/reports/{report_id}",
            json_url=f"/v1/reports/{report_id}?format=json",
            summary=summary,
        )
        meta = self.path_for(report_id).with_suffix(".meta.json")
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(view.model_dump_json())
        tmp.replace(meta)
        self._prune()
        return view

    def list(self, limit: int = 50) -> list[ReportView]:
        metas = sorted(self.directory.glob("*.meta.json"), reverse=True)[:limit]
        return [ReportView.model_validate_json(p.read_text()) for p in metas]

    def get(self, report_id: str) -> ReportView:
        meta = self.path_for(report_id).with_suffix(".meta.json")
        if not meta.exists():
            raise NotFoundError(f"no report {report_id!r}")
        return ReportView.model_validate_json(meta.read_text())

    def file(self, report_id: str, kind: str) -> Path:
        self.get(report_id)
        path = self.path_for(report_id).with_suffix("." + kind)
        if not path.exists():
            raise NotFoundError(
                f"report {report_id!r} has no {kind} (no drift evaluation was possible: see its summary)"
            )
        return path

    def evidently_json(self, report_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.file(report_id, "json").read_text())
        return data

    def _prune(self) -> None:
        metas = sorted(self.directory.glob("*.meta.json"))
        for meta in metas[: max(0, len(metas) - self.max_reports)]:
            stem = meta.name.removesuffix(".meta.json")
            for suffix in (".meta.json", ".html", ".json"):
                (self.directory / (stem + suffix)).unlink(missing_ok=True)
