"""cfn-lint over the template, in-process (sam validate --lint and checkov: test_tools.py, slow)."""

from __future__ import annotations

import json
from typing import Any

from cfnlint.api import ManualArgs, lint, lint_file

from tests.template.conftest import REGION, TEMPLATE_PATH


def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(TEMPLATE_PATH, config=ManualArgs(regions=[REGION]))
    assert [str(match) for match in matches] == []


def test_cfn_lint_reports_nothing_on_what_sam_deploys(translated: dict[str, Any]) -> None:
    """SAM resources are checked against SAM's schema only; the translation is plain CloudFormation.

    Left out: what SAM itself generates (DependsOn next to a Ref, a Sub it already resolved, the
    quota parameter it inlines into the usage plan), none of which is in template.yaml.
    """
    sam_artefacts = {"W2001", "W3005", "W1020"}
    matches = [m for m in lint(json.dumps(translated), regions=[REGION]) if m.rule.id not in sam_artefacts]
    assert [str(match) for match in matches] == []


def test_every_checkov_skip_says_why(template: dict[str, Any]) -> None:
    skips = [
        (logical_id, skip)
        for logical_id, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for logical_id, skip in skips:
        assert skip["id"].startswith(("CKV_", "CKV2_")), logical_id
        assert len(skip.get("comment", "")) >= 30, f"{logical_id} skips {skip['id']} without a reason"
