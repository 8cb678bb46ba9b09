"""The ``iptables-restore`` input ``natlens verify`` loads into its router namespace, built line
by line so that every line maps back to the snapshot line it came from.

Every name on the way is checked first (``kernel_names``: chain names as iptables-restore takes
them, match and target extension names libxtables can load) and every line must stay one line
(a comment holding a line feed would start a new restore command). A refusal of
iptables-restore (``Error occurred at line: N``, iptables/iptables-restore.c) is turned into one
line naming the snapshot file and line: ``iptables-save.txt:21: the kernel refuses this rule
(Couldn't load match 'geoip'): '-A DOCKER-USER -m geoip ...'``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from natlens.model import Origin, Ruleset, TargetKind
from natlens.serialize import rule_to_save
from natlens.verify.kernel_names import check_chain, check_extension, one_line, printable

__all__ = ["RestoreInput", "RestoreInputError", "restore_input"]

_FAILED_AT = (re.compile(r"Error occurred at line: (\d+)"), re.compile(r"line (\d+) failed"))
_PROGRAM = re.compile(r"^\S+ v[\d.]+ \([^)]*\):\s*")
_NO_CHAIN = re.compile(r"^Chain '(.+)' does not exist$")
"""iptables-nft-restore's refusal of a jump to a chain (or a target it cannot load, taken for a
chain): reported at the table's ``COMMIT`` line (nft_action at commit, iptables/nft.c)."""


class RestoreInputError(ValueError):
    """A value of the ruleset cannot go into restore input (message names file and line)."""


@dataclass(frozen=True, slots=True)
class RestoreInput:
    """Restore text and, per line (index 0 is line 1), where it came from."""

    text: str
    origins: tuple[Origin | None, ...]
    tables: tuple[str, ...]
    """The table of each line (``""`` before the first ``*table``)."""
    source: str

    def explain(self, stderr: str, program: str) -> str:
        """One line for a failed restore: the snapshot line it refused and iptables's reason."""
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        reason = next((ln for ln in lines if not ln.startswith(("Error occurred", "Try `"))),
                      f"{program} failed")
        reason = _PROGRAM.sub("", reason).replace("`", "'")
        reason = re.sub(r"(Couldn't load \w+ '[^']*'):No such file or directory$", r"\1", reason)
        reason = printable(reason, 160)[1:-1]
        number = next((int(m.group(1)) for pat in _FAILED_AT for ln in lines
                       if (m := pat.search(ln))), 0)
        origin = self.origins[number - 1] if 0 < number <= len(self.origins) else None
        missing = _NO_CHAIN.match(reason)
        if origin is None and missing is not None and 0 < number <= len(self.tables):
            origin = self._jumping_to(missing.group(1), number)
        if origin is not None:
            text = re.sub(r"^\[\d+:\d+\]\s*", "", origin.text)  # the counters say nothing here
            return (f"{origin.source}:{origin.line}: the kernel refuses this rule ({reason}): "
                    f"{printable(text, 160)}")
        table = self.tables[number - 1] if 0 < number <= len(self.tables) else ""
        where = f" (table {table})" if table else ""
        return f"{self.source}: the kernel refuses these rules{where}: {reason}"

    def _jumping_to(self, chain: str, number: int) -> Origin | None:
        """The first rule of the table around restore line ``number`` that jumps (``-j``/``-g``)
        to ``chain``, None when none does."""
        table = self.tables[number - 1]
        jump = re.compile(rf"(?:^|\s)-[jg] {re.escape(chain)}(?:\s|$)")
        for k in range(number):
            origin = self.origins[k]
            if origin is not None and self.tables[k] == table and jump.search(origin.text):
                return origin
        return None


def _where(origin: Origin | None, source: str) -> str:
    return f"{origin.source}:{origin.line}" if origin else source


def restore_input(ruleset: Ruleset) -> RestoreInput:
    """The ruleset as restore text without counters or comments; raises ``RestoreInputError``
    (one line naming file and line) for a name iptables would refuse or a value that would span
    lines."""
    lines: list[str] = []
    origins: list[Origin | None] = []
    tables: list[str] = []
    source = ruleset.source

    def add(text: str, origin: Origin | None, table: str) -> None:
        try:
            one_line(text)
        except ValueError as exc:
            raise RestoreInputError(f"{_where(origin, source)}: {exc}: "
                                    f"{printable(text, 160)}") from None
        lines.append(text)
        origins.append(origin)
        tables.append(table)

    for table in ruleset.tables:
        name = str(table.name.value)
        add(f"*{name}", None, name)
        for chain in table.chains:
            if chain.builtin and chain.policy is None and chain.origin is None:
                continue
            if not chain.builtin:
                _check(check_chain, chain.name, chain.origin, source)
            policy = chain.policy if chain.builtin and chain.policy else "-"
            add(f":{chain.name} {policy}", chain.origin, name)
        for chain in table.chains:
            for rule in chain.rules:
                if rule.unknown:
                    continue  # not restorable (a listing did not show all of it): left out
                for match in rule.matches:
                    _check(check_extension, match.module, rule.origin, source)
                if rule.target is not None:
                    _check(_TARGET_CHECKS[rule.target.kind], rule.target.name, rule.origin,
                           source)
                add(rule_to_save(rule, counters=False), rule.origin, name)
        add("COMMIT", None, name)
    text = "\n".join(lines) + "\n" if lines else ""
    return RestoreInput(text, tuple(origins), tuple(tables), source)


def _unknown_target(name: str) -> str:
    """A target natlens does not know: a chain name, and no path (libxtables would try to load
    ``libxt_<name>.so``)."""
    if "/" in name:
        raise ValueError(f"bad target name {printable(name)} ('/' in a target name)")
    return check_chain(name)


_TARGET_CHECKS: dict[TargetKind, Callable[[str], str]] = {
    TargetKind.VERDICT: check_extension,
    TargetKind.CHAIN: check_chain,
    TargetKind.EXTENSION: check_extension,
    TargetKind.UNKNOWN: _unknown_target,
}


def _check(check: Callable[[str], str], value: str, origin: Origin | None, source: str) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise RestoreInputError(f"{_where(origin, source)}: {exc}") from None
