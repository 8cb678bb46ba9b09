"""``nft list ruleset`` text → ``nft -j list ruleset`` JSON, with the host's own ``nft``.

natlens reads nftables as JSON (libnftables-json(5)); text has variables, includes, priority
names that depend on the nft version and, in iptables-nft tables, xtables translations that look
native. Rather than parse it, the text is loaded into a throwaway network namespace
(``ip netns add nlv-<pid>-<random>-nftconv``, recorded first as ``natlens verify`` records its
namespaces; ``nft -f FILE`` inside it; ``nft -j list ruleset``) and the namespace is deleted on
every way out (errors, Ctrl-C, SIGTERM, SIGHUP, SIGQUIT; after a SIGKILL, ``natlens verify
--cleanup`` or the next verify run removes it). The host's own rules are never touched: the
namespace starts empty and nothing runs outside it. Needs root and the ``nft`` and ``ip``
commands; without them the text is refused with a one-line error saying to capture with
``nft -j list ruleset``.

The text is passed as a file (never through a shell); ``include`` statements are refused, since
they would read other files of this host.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from natlens.errors import SnapshotError, excerpt
from natlens.parse.tokens import split_lines

__all__ = ["looks_like_nft_text", "nft_text_to_json"]

_TIMEOUT = 60
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_NFT_START = re.compile(
    r"^(table\s+(ip|ip6|inet|arp|bridge|netdev)\s|flush\s+ruleset\b|add\s+(table|chain|rule)\s|"
    r"#!\S*nft\b)")
_INCLUDE = re.compile(r'"[^"\n]*"|#[^\n]*|(?<![\w$@-])include(?![\w-])')
"""A quoted string, a comment, or the keyword ``include``: nft's scanner (scanner.l) takes
``include`` as a word of its own wherever it stands, with anything nft skips between it and
its file name (blanks, a ``\\`` line continuation, a comment), so the keyword is looked for
as a word outside strings and comments, not as ``include "``."""


def looks_like_nft_text(text: str) -> bool:
    """Whether ``text`` reads as ``nft list ruleset`` output or an ``nft -f`` script (its
    first meaningful line opens a table, flushes the ruleset, adds a table/chain/rule, or is an
    ``nft`` shebang).

    >>> looks_like_nft_text("table inet filter {\\n}\\n")
    True
    >>> looks_like_nft_text("*filter\\n:INPUT ACCEPT [0:0]\\nCOMMIT\\n")
    False
    """
    for raw in split_lines(text):  # at "\n" only: a comment may hold \x1c, U+2028...
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#") and not line.startswith("#!"):
            continue
        return _NFT_START.match(line) is not None
    return False


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", os.defpath)
    extra = [d for d in _SBIN if d not in path.split(os.pathsep)]
    return shutil.which(name, path=os.pathsep.join([path, *extra]))


def _refuse(source: str, why: str) -> SnapshotError:
    return SnapshotError(f"{source}: nft text ({why}); capture the ruleset as JSON with "
                         "'nft -j list ruleset' and give that file")


def _run(argv: list[str], source: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False, env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise _refuse(source, f"{argv[0]} gave no answer within {_TIMEOUT}s") from None
    except OSError as exc:
        raise _refuse(source, f"cannot run {argv[0]}: {exc.strerror}") from None


def nft_text_to_json(text: str, source: str) -> str:
    """The ``nft -j list ruleset`` JSON of ruleset text ``text`` (named ``source`` in errors).

    Raises ``SnapshotError`` (one line) when no ``nft`` or ``ip`` command is here, when not
    root, when the text has ``include`` statements, or when ``nft -f`` refuses it (its first
    error line, with the line number nft gives).
    """
    if any(m.group() == "include" for m in _INCLUDE.finditer(text)):
        raise _refuse(source, "'include' statements would read other files of this host")
    nft, ip = _which("nft"), _which("ip")
    if nft is None:
        raise _refuse(source, "no nft command here to convert it")
    if ip is None:
        raise _refuse(source, "no ip command here to make a scratch network namespace")
    if os.geteuid() != 0:
        raise _refuse(source, "converting it needs root for a scratch network namespace")
    # the namespace is recorded as a verify run's (``natlens.verify.runs``): removed here on
    # every way out, and by ``natlens verify --cleanup`` (or the next verify) after a SIGKILL
    from natlens.verify.runs import Run  # noqa: PLC0415  (verify imports the loader)
    from natlens.verify.signals import interruptible  # noqa: PLC0415

    run = Run.new()
    ns = f"{run.prefix}nftconv"
    with interruptible(), tempfile.TemporaryDirectory(prefix="natlens-nft-") as tmp:
        rules = Path(tmp) / "ruleset.nft"
        rules.write_text(text, encoding="utf-8")
        try:
            run.record([ns])
        except OSError as exc:
            raise _refuse(source, f"cannot record the scratch namespace: {exc.strerror}") \
                from None
        try:
            made = _run([ip, "netns", "add", ns], source)
            if made.returncode != 0:
                raise _refuse(source, f"ip netns add failed: {_first(made.stderr)}")
            loaded = _run([ip, "netns", "exec", ns, nft, "-f", str(rules)], source)
            if loaded.returncode != 0:
                raise SnapshotError(f"{source}: nft -f refuses it: "
                                    f"{_nft_error(loaded.stderr, str(rules), source)}")
            listed = _run([ip, "netns", "exec", ns, nft, "-j", "list", "ruleset"], source)
            if listed.returncode != 0:
                raise _refuse(source, f"nft -j list ruleset failed: {_first(listed.stderr)} "
                                      "(nft built without JSON?)")
            return listed.stdout
        finally:
            run.remove()


def _first(text: str) -> str:
    return excerpt(next((ln.strip() for ln in text.splitlines() if ln.strip()), "no message"))


def _nft_error(stderr: str, scratch: str, source: str) -> str:
    """nft's first error line, naming ``source`` instead of the scratch file."""
    line = next((ln.strip() for ln in stderr.splitlines() if "Error" in ln),
                next((ln.strip() for ln in stderr.splitlines() if ln.strip()), "no message"))
    return excerpt(line.replace(scratch, source), 300).strip("'\"")
