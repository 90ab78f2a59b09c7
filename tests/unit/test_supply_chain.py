"""The audit policy of scripts/audit.py, on pip-audit's JSON report format."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 12, 1)


def audit_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit", REPO / "scripts" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def report(*deps: dict) -> dict:
    return {"dependencies": list(deps), "fixes": []}


VULN = {"id": "PYSEC-2026-1", "aliases": ["CVE-2026-0001"], "fix_versions": ["2.0.1"]}


def test_fixable_vulnerabilities_fail_unless_allowed_until_a_date() -> None:
    audit = audit_module()
    dep = {"name": "somepkg", "version": "2.0.0", "vulns": [VULN]}
    failed = audit.evaluate([report(dep)], [], TODAY)
    assert failed.failures == ["somepkg 2.0.0: PYSEC-2026-1 is fixed in 2.0.1: upgrade (make lock)"]
    allow = [{"id": "CVE-2026-0001", "package": "somepkg", "reason": "r", "expires": "2027-01-01"}]
    allowed = audit.evaluate([report(dep)], allow, TODAY)
    assert allowed.failures == [] and "allowed until 2027-01-01" in allowed.notes[0]
    expired = [dict(allow[0], expires="2026-11-30")]
    lapsed = audit.evaluate([report(dep)], expired, TODAY)
    assert any("expired on 2026-11-30" in f for f in lapsed.failures)
    assert any("is fixed in 2.0.1" in f for f in lapsed.failures)
    unfixed = dict(dep, vulns=[dict(VULN, fix_versions=[])])
    noted = audit.evaluate([report(unfixed)], [], TODAY)
    assert noted.failures == [] and "no fixed version yet" in noted.notes[0]


def test_an_audit_that_could_not_look_fails() -> None:
    audit = audit_module()
    clean = {"name": "ok", "version": "1", "vulns": []}
    skipped = {"name": "x", "skip_reason": "Dependency not found on PyPI"}
    verdict = audit.evaluate([report(clean, skipped)], [], TODAY)
    assert verdict.failures == [
        "1 of 2 packages could not be audited (the vulnerability service did not answer for "
        "them, e.g. x)"
    ]
    assert audit.evaluate([report(clean)], [], TODAY).failures == []
