"""What ``parse_save`` makes of some files, as JSON lines: run once per core and compared by
tests/test_native_core.py (the compiled core of natlens.native against pure Python).

    python tests/native_digest.py LIST   # LIST: a file naming one input path per line

Per input and mode (strict, lenient) one line: the core in use, the SHA-256 of the ruleset's
``repr`` and of its JSON (``ruleset_to_dict``), every warning (category, text, the fields of a
``ParseWarning``, and the file and line it is attributed to), and the error raised (type, text,
and a ``ParseError``'s reason, source, line number, line, token and column). Any exception is
recorded, not only ``ParseError``: a compiled core failing where Python does not is a
difference too.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def digest(path: str, strict: bool) -> dict[str, Any]:
    """The record of parsing ``path`` (as UTF-8, undecodable bytes escaped) in one mode."""
    from natlens.errors import ParseError, ParseWarning
    from natlens.parse.save import parse_save
    from natlens.serialize import ruleset_to_dict

    text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    record: dict[str, Any] = {"file": path, "strict": strict}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ruleset = parse_save(text, source=path, strict=strict)
        except ParseError as exc:
            record["error"] = ["ParseError", str(exc), exc.reason, exc.source, exc.line_no,
                               exc.line, exc.token, exc.column]
        except Exception as exc:  # a crash of one core is a difference to show
            record["error"] = [type(exc).__name__, str(exc)]
        else:
            record["repr"] = _sha(repr(ruleset))
            record["json"] = _sha(json.dumps(ruleset_to_dict(ruleset), sort_keys=True))
    record["warnings"] = [
        [w.category.__name__, str(w.message), Path(w.filename).name, w.lineno,
         *((w.message.source, w.message.line_no) if isinstance(w.message, ParseWarning) else ())]
        for w in caught]
    return record


def main(argv: list[str]) -> int:
    import natlens.parse  # noqa: F401 (picks the core, natlens.native)
    from natlens import native

    print(json.dumps({"core": native.status().describe()}))
    for path in Path(argv[1]).read_text(encoding="utf-8").splitlines():
        for strict in (True, False):
            print(json.dumps(digest(path, strict)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
