"""Ignore rules in the ``.gitignore`` language, for code snapshots (``.gitignore``,
``.rnignore``, ``extra_excludes``).

What is understood, as git does: blank lines and ``#`` comments; ``!`` re-includes what an
earlier rule excluded (``\\!`` and ``\\#`` are literal); a trailing ``/`` matches directories
only; a pattern with a ``/`` at its start or in its middle is anchored to the directory of the
file it comes from, one without matches a name at any depth; ``*`` and ``?`` never match ``/``,
``[abc]``/``[!a-z]`` are classes, ``**/`` matches any number of directories, a trailing
``/**`` everything inside. The last rule that matches decides. A directory left out is not
entered, so nothing below it can be re-included (git's rule too).
"""

import re
from typing import Iterable, List, NamedTuple, Optional, Pattern

# Used when the workspace has no .rnignore (upstream's defaults; kept in memory, the
# workspace is never written to).
DEFAULT_RNIGNORE = (".git/", ".venv/", "__pycache__/", "*.pyc", ".idea/", "node_modules/")


class Rule(NamedTuple):
    regex: Pattern[str]
    negated: bool
    dir_only: bool
    basename_only: bool
    base: str  # the directory (relative, "" for the root) the rule's file lives in


def _translate(pattern: str) -> str:
    """The regular expression (without anchors) of one glob pattern."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                at_start = i == 0 or pattern[i - 1] == "/"
                after = pattern[i + 2:i + 3]
                if at_start and after == "/":  # "**/": any number of directories
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                if at_start and i + 2 == n:  # trailing "/**" (or a lone "**"): everything
                    out.append(".*")
                    i += 2
                    continue
                out.append("[^/]*")  # "**" inside a name is a plain "*"
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_rules(lines: Iterable[str], base: str = "") -> List[Rule]:
    """The rules of an ignore file's lines; ``base`` is its directory relative to the root."""
    rules = []
    for raw in lines:
        line = raw.rstrip("\n").rstrip("\r")
        stripped = line.rstrip(" ")
        if stripped.endswith("\\") and len(line) > len(stripped):
            stripped += " "  # "\ " keeps one trailing space
        line = stripped
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        try:
            regex = re.compile(_translate(line) + r"\Z", re.DOTALL)
        except re.error:
            continue  # a broken class: git ignores the line too
        rules.append(Rule(regex, negated, dir_only, not anchored, base))
    return rules


class IgnoreMatcher:
    """Decides whether a path relative to the root is left out."""

    def __init__(self, rules: Optional[List[Rule]] = None) -> None:
        self.rules = list(rules or [])

    def add(self, rules: Iterable[Rule]) -> None:
        self.rules.extend(rules)

    def is_ignored(self, rel: str, is_dir: bool) -> bool:
        return bool(self.decide(rel, is_dir))

    def decide(self, rel: str, is_dir: bool) -> Optional[bool]:
        """True (left out), False (re-included by a ``!`` rule) or None (no rule matches)."""
        ignored = None  # type: Optional[bool]
        name = rel.rsplit("/", 1)[-1]
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.base:
                if not rel.startswith(rule.base + "/"):
                    continue
                sub = rel[len(rule.base) + 1:]
            else:
                sub = rel
            if rule.regex.match(name if rule.basename_only else sub):
                ignored = not rule.negated
        return ignored
