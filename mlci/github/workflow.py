"""GitHub Actions workflow commands and files, written safely.

* Workflow commands (``::error file=F,line=L,title=T::message``) escape their message (``%``,
  CR, LF) and property values (also ``:`` and ``,``) the way the Actions runner unescapes them,
  so a message cannot end the command early or inject another one.
* ``GITHUB_OUTPUT`` and ``GITHUB_ENV`` get every value in the multi-line form
  ``name<<DELIMITER`` ... ``DELIMITER`` with a random delimiter that is checked not to occur in
  the value, so no value can smuggle in another output or variable.
* ``GITHUB_STEP_SUMMARY`` gets Markdown appended.

Outside Actions (the variables unset) the file functions do nothing and return False.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from mlci.errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
LEVELS = ("debug", "notice", "warning", "error")


def escape_data(value: object) -> str:
    """Escape a workflow command's message."""
    return str(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: object) -> str:
    """Escape a workflow command's property value (``file=``, ``title=``...)."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: object = "", **properties: object) -> str:
    """One workflow command line, e.g. ``::error file=a.py,line=3::bad``."""
    if not _NAME.match(name):
        raise ValueError(f"not a workflow command name: {name!r}")
    props = ",".join(
        f"{key}={escape_property(value)}"
        for key, value in properties.items()
        if value is not None and value != ""
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def annotation(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    end_line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    """An annotation command (``notice``, ``warning`` or ``error``)."""
    if level not in LEVELS:
        raise ValueError(f"not an annotation level: {level!r}")
    return command(level, message, file=file, line=line, endLine=end_line, col=col, title=title)


def delimiter_for(value: str) -> str:
    """A random heredoc delimiter that does not occur in ``value``."""
    while True:
        candidate = f"ghadelimiter_{secrets.token_hex(16)}"
        if candidate not in value:
            return candidate


def _entry(name: str, value: object) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"not a valid output or variable name: {name!r}",
            tip="use letters, digits, '_', '-' and '.', starting with a letter or '_'",
        )
    text = "" if value is None else str(value)
    delimiter = delimiter_for(text)
    return f"{name}<<{delimiter}\n{text}\n{delimiter}\n"


def _append(variable: str, text: str, env: Mapping[str, str] | None) -> bool:
    env = os.environ if env is None else env
    target = env.get(variable)
    if not target:
        return False
    with Path(target).open("a", encoding="utf-8") as handle:
        handle.write(text)
    return True


def set_outputs(values: Mapping[str, object], env: Mapping[str, str] | None = None) -> bool:
    """Append step outputs to ``GITHUB_OUTPUT``; False outside Actions."""
    return _append("GITHUB_OUTPUT", "".join(_entry(k, v) for k, v in values.items()), env)


def set_env(values: Mapping[str, object], env: Mapping[str, str] | None = None) -> bool:
    """Append environment variables for later steps to ``GITHUB_ENV``; False outside Actions."""
    return _append("GITHUB_ENV", "".join(_entry(k, v) for k, v in values.items()), env)


def append_summary(markdown: str, env: Mapping[str, str] | None = None) -> bool:
    """Append Markdown to the job summary (``GITHUB_STEP_SUMMARY``); False outside Actions."""
    if not markdown.endswith("\n"):
        markdown += "\n"
    return _append("GITHUB_STEP_SUMMARY", markdown, env)


def parse_file_commands(text: str) -> dict[str, str]:
    """Read back a ``GITHUB_OUTPUT``/``GITHUB_ENV`` file the way the runner does (for tests)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body: list[str] = []
            while index < len(lines) and lines[index] != delimiter:
                body.append(lines[index])
                index += 1
            if index >= len(lines):
                raise ValueError(f"unterminated value for {name!r}")
            index += 1
            values[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values
