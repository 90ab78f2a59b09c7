#!/usr/bin/env python3
"""``make audit``: pip-audit over the locked requirements, with an allow-list.

Fails when a locked package has a known vulnerability with a fixed version that is not on the
allow-list (``requirements/audit-allow.yaml``: id, package, reason, expires), when an allow-list
entry has expired, or when packages could not be audited at all (the vulnerability service did
not answer): an audit that saw nothing must not pass. Vulnerabilities without a fix are listed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Verdict:
    failures: list[str]
    notes: list[str]


def evaluate(reports: list[dict[str, Any]], allow: list[dict[str, Any]], today: dt.date) -> Verdict:
    """Apply the policy to pip-audit JSON reports (``{"dependencies": [...]}``)."""
    failures: list[str] = []
    notes: list[str] = []
    allowed: dict[str, dict[str, Any]] = {}
    for entry in allow:
        missing = {"id", "package", "reason", "expires"} - set(entry)
        if missing:
            failures.append(f"allow-list entry {entry} lacks {', '.join(sorted(missing))}")
            continue
        expires = dt.date.fromisoformat(str(entry["expires"]))
        if expires < today:
            failures.append(
                f"allow-list entry {entry['id']} ({entry['package']}) expired on {expires}: "
                "upgrade, or renew it with a reason"
            )
        else:
            allowed[str(entry["id"])] = entry
    skipped, audited = [], 0
    for report in reports:
        for dep in report.get("dependencies", []):
            if "skip_reason" in dep:
                skipped.append(dep["name"])
                continue
            audited += 1
            for vuln in dep.get("vulns", []):
                ids = {vuln["id"], *vuln.get("aliases", [])}
                what = f"{dep['name']} {dep.get('version', '?')}: {vuln['id']}"
                hit = next((allowed[i] for i in ids if i in allowed), None)
                if hit is not None:
                    notes.append(f"{what} allowed until {hit['expires']} ({hit['reason']})")
                elif vuln.get("fix_versions"):
                    fixes = ", ".join(vuln["fix_versions"])
                    failures.append(f"{what} is fixed in {fixes}: upgrade (make lock)")
                else:
                    notes.append(f"{what} has no fixed version yet")
    if skipped:
        failures.append(
            f"{len(skipped)} of {len(skipped) + audited} packages could not be audited (the "
            f"vulnerability service did not answer for them, e.g. {', '.join(skipped[:3])})"
        )
    return Verdict(failures, notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("requirements", nargs="+", type=Path)
    ap.add_argument("--pip-audit", default=str(REPO / ".tools" / "audit" / "bin" / "pip-audit"))
    ap.add_argument("--allow", type=Path, default=REPO / "requirements" / "audit-allow.yaml")
    args = ap.parse_args(argv)
    allow = yaml.safe_load(args.allow.read_text()) or [] if args.allow.exists() else []
    reports = []
    for req in args.requirements:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [args.pip_audit, "-r", str(req), "--no-deps", "--disable-pip", "-f", "json"]
            cmd += ["-o", out.name, "--progress-spinner", "off"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            raw = Path(out.name).read_text()
            if not raw:
                print(f"audit: pip-audit failed on {req}: {done.stderr.strip()[-400:]}")
                return 2
            reports.append(json.loads(raw))
            print(f"audit: {req}: {len(reports[-1].get('dependencies', []))} packages", flush=True)
    verdict = evaluate(reports, allow, dt.date.today())
    for note in verdict.notes:
        print(f"  note: {note}")
    for failure in verdict.failures:
        print(f"  FAIL: {failure}")
    print("audit: " + ("failed" if verdict.failures else "no unallowed fixable vulnerabilities"))
    return 1 if verdict.failures else 0


if __name__ == "__main__":
    sys.exit(main())
