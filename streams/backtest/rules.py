"""The project's rule files, as the backtest evaluates them: recording rules by dependency
level, alerting rules with their ``for`` and ``keep_firing_for``.

Levels: a rule whose expression names no recorded series is level 1; otherwise it is one
more than the highest level among the rules recording the names it uses. The backtest
evaluates level by level, so that every recorded series a rule reads already exists as
samples (see ``streams.backtest.evaluate``). A name is "used" when it appears in the
expression as an identifier outside string literals and comments. Cycles are refused.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from streams.backtest.errors import BacktestError

RULE_FILE_PATTERNS = ("*.rules.yml", "*.rules.yaml")
UNSUPPORTED_SERIES = ("ALERTS", "ALERTS_FOR_STATE")

_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "y": 365 * 86_400_000,
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_COMMENT = re.compile(r"#[^\n]*")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def parse_duration(text: str) -> int:
    """A Prometheus duration (``90s``, ``1h30m``, ``500ms``) in ms; ``0`` is 0."""
    text = text.strip()
    if text == "0":
        return 0
    pos, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return total


def names_used(expr: str) -> set[str]:
    """Identifiers of ``expr`` outside string literals and comments (metric names and
    also functions, keywords and label names: callers intersect with known names)."""
    bare = _COMMENT.sub(" ", _STRINGS.sub(" ", expr))
    return set(_IDENTIFIER.findall(bare))


@dataclass
class Rule:
    """One rule of a rule file; ``name`` is the recorded series or the alert name."""

    kind: Literal["record", "alert"]
    name: str
    expr: str
    group: str
    file: str
    labels: dict[str, str] = field(default_factory=dict)
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    level: int = 0

    @property
    def is_alert(self) -> bool:
        return self.kind == "alert"


@dataclass
class RuleSet:
    """Every rule of some files, levelled; ``levels[i]`` holds the rules of level i + 1."""

    files: list[Path]
    rules: list[Rule]

    @property
    def recording(self) -> list[Rule]:
        return [r for r in self.rules if not r.is_alert]

    @property
    def alerts(self) -> list[Rule]:
        return [r for r in self.rules if r.is_alert]

    @property
    def depth(self) -> int:
        return max((r.level for r in self.rules), default=0)

    def at_level(self, level: int) -> list[Rule]:
        return [r for r in self.rules if r.level == level]


def rule_files(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else its ``*.rules.yml`` files (not recursive, not
    hidden)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BacktestError(f"no rule files at {path}")
    # hidden files are other tools' scratch rules (tests write and delete them), not ours
    found = sorted(
        {f for pattern in RULE_FILE_PATTERNS for f in path.glob(pattern)} - set(path.glob(".*"))
    )
    if not found:
        raise BacktestError(f"no *.rules.yml files in {path}")
    return found


def check_with_promtool(files: Sequence[Path], promtool: str = "promtool") -> None:
    """``promtool check rules``: the files must be what Prometheus itself would load."""
    try:
        result = subprocess.run(
            [promtool, "check", "rules", *map(str, files)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except OSError as exc:
        raise BacktestError(f"cannot run {promtool}: {exc.strerror}") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise BacktestError("promtool check rules failed: " + " / ".join(lines[-4:]))


def _rule(raw: dict[str, Any], group: str, file: str) -> Rule:
    labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
    if "record" in raw:
        return Rule("record", str(raw["record"]), str(raw["expr"]), group, file, labels)
    return Rule(
        "alert",
        str(raw["alert"]),
        str(raw["expr"]),
        group,
        file,
        labels,
        for_ms=parse_duration(str(raw.get("for", "0"))),
        keep_firing_for_ms=parse_duration(str(raw.get("keep_firing_for", "0"))),
    )


def load_rules(files: Iterable[Path]) -> RuleSet:
    """Every rule of ``files`` with its level; raises :class:`BacktestError` on a cycle."""
    paths = list(files)
    rules: list[Rule] = []
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise BacktestError(f"cannot read rules from {path}: {exc}") from None
        for group in doc.get("groups") or ():
            for raw in group.get("rules") or ():
                rules.append(_rule(raw, str(group.get("name", "")), path.name))
    assign_levels(rules)
    return RuleSet(paths, rules)


def assign_levels(rules: list[Rule]) -> None:
    """Set ``level`` on every rule (see the module docstring)."""
    recorders: dict[str, list[Rule]] = {}
    for rule in rules:
        if not rule.is_alert:
            recorders.setdefault(rule.name, []).append(rule)
    deps = {id(rule): names_used(rule.expr) & recorders.keys() for rule in rules}
    for rule in rules:
        if rule.is_alert and names_used(rule.expr) & set(UNSUPPORTED_SERIES):
            raise BacktestError(f"alert {rule.name} reads ALERTS, which a backtest cannot replay")
    visiting: set[int] = set()

    def level(rule: Rule) -> int:
        if rule.level:
            return rule.level
        if id(rule) in visiting:
            raise BacktestError(f"recording rules form a cycle through {rule.name}")
        visiting.add(id(rule))
        below = [level(r) for name in deps[id(rule)] for r in recorders[name]]
        visiting.discard(id(rule))
        rule.level = 1 + max(below, default=0)
        return rule.level

    for rule in rules:
        level(rule)
