"""The README's reference of mlci's actions, rendered from their action.yml files.

The README holds this text between ``<!-- action reference: start -->`` and
``<!-- action reference: end -->``; a test fails when the two differ. After changing an action,
print the new text and paste it there:

    python tests/readme_actions.py
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The root action, then the stage actions in the order a pipeline uses them.
ORDER = ("setup", "test", "evaluate", "benchmark", "build", "sbom", "sign", "verify", "card",
         "gate", "comment", "publish")  # fmt: skip
ACTIONS = [ROOT / "action.yml"] + sorted(
    (ROOT / "actions").glob("*/action.yml"),
    key=lambda p: (ORDER.index(p.parent.name) if p.parent.name in ORDER else len(ORDER), p),
)
_PERMISSIONS = re.compile(r"\s*Permissions:\s*(.+?)\.?\s*$", re.S)


def load_action_file(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def permissions_of(action: dict[str, Any]) -> str:
    """What the action's description says it needs after 'Permissions:'."""
    found = _PERMISSIONS.search(" ".join(str(action.get("description", "")).split()))
    return found.group(1) if found else ""


def _what(action: dict[str, Any]) -> str:
    text = " ".join(str(action.get("description", "")).split())
    return _PERMISSIONS.sub("", text).strip()


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _uses(path: Path) -> str:
    if path.parent == ROOT:
        return "YOUR_ORG/mlci@SHA"
    return f"YOUR_ORG/mlci/actions/{path.parent.name}@SHA"


def action_reference() -> str:
    """The README text: a permissions table, then every action's inputs and outputs."""
    lines = ["| action | what it does | permissions |", "|---|---|---|"]
    for path in ACTIONS:
        action = load_action_file(path)
        first = _what(action).split(". ")[0].rstrip(".")
        lines.append(f"| `{_uses(path)}` | {_cell(first)} | {_cell(permissions_of(action))} |")
    for path in ACTIONS:
        action = load_action_file(path)
        lines += ["", f"#### `{_uses(path)}`", "", _what(action), ""]
        lines += ["| input | default | description |", "|---|---|---|"]
        for name, spec in (action.get("inputs") or {}).items():
            default = "required" if spec.get("required") else f"`{spec.get('default', '')}`"
            if default == "``":
                default = "empty"
            lines.append(f"| `{name}` | {default} | {_cell(spec.get('description', ''))} |")
        outputs = action.get("outputs") or {}
        if outputs:
            lines += ["", "| output | description |", "|---|---|"]
            for name, spec in outputs.items():
                lines.append(f"| `{name}` | {_cell(spec.get('description', ''))} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(action_reference(), end="")
