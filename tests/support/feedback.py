"""The feedback counter as /metrics shows it."""

from __future__ import annotations

import re


def feedback_metric(text: str, kind: str) -> float:
    match = re.search(rf'^taskpilot_feedback_total\{{kind="{kind}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0
