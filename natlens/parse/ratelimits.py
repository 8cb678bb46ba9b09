"""What the kernel's rate-limit checks refuse when a ``limit`` or ``hashlimit`` rule is
committed, and the final check of libxt_hashlimit.c.

``iptables-restore --test`` takes these rules; the kernel refuses them when the rule is
committed ("Numerical result out of range", "Invalid argument"):

- ``-m limit``: net/netfilter/xt_limit.c ``limit_mt_check`` refuses a burst of 0 and a burst
  whose credits (``user2credits(avg * burst)``, 32-bit arithmetic that wraps) come out below
  one packet's (``--limit 1/day`` with the default burst 5). Only the **legacy** backend runs
  it: iptables-nft 1.8.9 turns ``-m limit`` into the nf_tables ``limit`` expression, which takes
  every rate libxt_limit.c reads (``legacy_limit_refusal``; natlens.parse.save refuses such a
  rule in a legacy dump and warns where the text names no backend).
- ``-m hashlimit`` (both backends: iptables-nft runs the same xt match through nft_compat):
  net/netfilter/xt_hashlimit.c ``hashlimit_mt_check_common`` refuses a packet rate whose
  ``user2credits(avg * burst)`` (64-bit, wrapping) is below ``user2credits(avg)``
  (``--hashlimit-upto 1/day``), a byte rate costing at most one credit (``user2credits_byte``
  0: above ~32 GB/s), with ``--hashlimit-rate-match`` a rate of 0 per unit once libxt divides
  it by the unit, and a garbage-collection interval or expiry of 0. libxt_hashlimit.c
  ``hashlimit_mt_check`` (userspace, both backends) refuses a byte-rate burst below one
  interval's bytes ("burst cannot be smaller than 1024b") and a packet burst above 10^6 once
  its ``k``/``m`` suffix is applied (``hashlimit_refusal``).

Credits depend on the kernel's tick rate ``HZ``: the constants here are HZ 250's, which HZ
1000 shares (``HZ * CREDITS_PER_JIFFY`` is 32000 for xt_limit, 137438953 per 10^6 for
xt_hashlimit with both); kernels built with HZ 100 or 300 draw the line elsewhere for rates
whose ``avg * burst`` overflows (tests/test_parse_ratelimits.py checks these constants against
the running kernel).
"""

from __future__ import annotations

from collections.abc import Sequence

from natlens.model import Option
from natlens.parse.values import c_atoi, c_strtoul_prefix, rate_parts, rate_text

__all__ = ["HZ", "hashlimit_refusal", "hashlimit_saved", "legacy_limit_refusal",
           "limit_credits_refused"]

HZ = 250
"""The kernel tick rate the credit constants are computed for (1000 gives the same ones)."""

_U32 = 2**32 - 1
_U64 = 2**64 - 1


def _pow2_below(value: int) -> int:
    """``POW2_BELOW32``/``POW2_BELOW64`` of xt_limit.c/xt_hashlimit.c: the largest power of
    two not above ``value``."""
    return 1 << (value.bit_length() - 1)


_LIMIT_SCALE = 10000  # XT_LIMIT_SCALE
_LIMIT_HZ_CPJ = HZ * _pow2_below(_U32 // (HZ * 86400))  # HZ * CREDITS_PER_JIFFY = 32000
_LIMIT_DEFAULT_AVG = _LIMIT_SCALE * 3600 // 3  # libxt_limit.c: 3/hour
_LIMIT_DEFAULT_BURST = 5

_HL_SCALE = 1_000_000  # XT_HASHLIMIT_SCALE_v2 (revision 3)
_HL_HZ_CPJ = HZ * _pow2_below(_U64 // (HZ * 86400))  # HZ * CREDITS_PER_JIFFY (64-bit)
_HL_BYTES_HZ_CPJ = HZ * _pow2_below(_U32 // HZ)  # HZ * CREDITS_PER_JIFFY_BYTES
_HL_BYTE_SHIFT = 4  # XT_HASHLIMIT_BYTE_SHIFT
_HL_BYTE_EXPIRE = 15  # XT_HASHLIMIT_BYTE_EXPIRE, seconds
_HL_BURST = 5  # XT_HASHLIMIT_BURST
_HL_BURST_MAX = 1_000_000  # XT_HASHLIMIT_BURST_MAX
_FACTORS = {"m": 1024 * 1024, "k": 1024}  # libxt_hashlimit.c get_factor


def _limit_credits(user: int) -> int:
    """xt_limit.c ``user2credits`` in its u32 arithmetic."""
    if user > _U32 // _LIMIT_HZ_CPJ:
        return (user // _LIMIT_SCALE * _LIMIT_HZ_CPJ) & _U32
    return (user * _LIMIT_HZ_CPJ & _U32) // _LIMIT_SCALE


def limit_credits_refused(avg: int, burst: int) -> bool:
    """Whether xt_limit.c ``limit_mt_check`` refuses ``avg`` (the period in 1/10000 s) with
    ``burst``.

    >>> limit_credits_refused(864_000_000, 5), limit_credits_refused(864_000_000, 1)
    (True, False)
    """
    return burst == 0 or _limit_credits(avg * burst & _U32) < _limit_credits(avg)


def legacy_limit_refusal(options: Sequence[Option]) -> tuple[str, str | None] | None:
    """(reason, option to point at) when the legacy backend's kernel refuses a ``-m limit``
    with ``options`` (checked and canonical: ``--limit N/unit``, a decimal burst), else
    None."""
    avg, burst, rate = _LIMIT_DEFAULT_AVG, _LIMIT_DEFAULT_BURST, None
    for opt in options:
        if opt.name == "--limit" and opt.args:
            parts = rate_parts(opt.args[0])
            if parts is None:
                return None  # refused already by the value check
            avg, rate = _LIMIT_SCALE * parts[1] // parts[0], opt.args[0]
        elif opt.name == "--limit-burst" and opt.args and opt.args[0].isdecimal():
            burst = int(opt.args[0])
    if not limit_credits_refused(avg, burst):
        return None
    what = ("--limit-burst 0" if burst == 0 else
            f"--limit {rate or '3/hour'} with --limit-burst {burst} overflows the credits")
    return (f"limit: {what} (xt_limit: the legacy backend refuses it at commit; nf_tables "
            "takes it)", "--limit-burst" if burst == 0 or rate is None else "--limit")


def _hl_credits(user: int) -> int:
    """xt_hashlimit.c ``user2credits`` (revision 3) in its u64 arithmetic."""
    if _HL_SCALE >= _HL_HZ_CPJ:
        return user // (_HL_SCALE // _HL_HZ_CPJ)
    return user * (_HL_HZ_CPJ // _HL_SCALE) & _U64


def _atoll(text: str) -> int:
    """C ``atoll`` stored in a ``uint64_t``."""
    return max(-(2**63), min(c_atoi(text), 2**63 - 1)) & _U64


def _hl_rate(text: str) -> tuple[bool, int, int] | None:
    """(byte rate, ``cfg.avg``, the unit in seconds) as libxt_hashlimit.c ``parse_bytes`` /
    ``parse_rate`` store ``text``; None where they refuse it (or divide by zero)."""
    mode = text.find("b/s")
    count = _atoll(text)
    if mode > 0 and count:
        total = count * _FACTORS.get(text[mode - 1], 1) & _U64
        chunks = (total >> _HL_BYTE_SHIFT) & _U32  # bytes_to_cost: uint32_t r
        if chunks == _U32:
            return None  # UINT32_MAX / (r + 1): a division by zero
        cost = _U32 // (chunks + 1)
        return (True, cost, _HL_BYTE_EXPIRE) if cost else None
    parts = rate_parts(text, 64)
    if parts is None or _HL_SCALE * parts[1] // parts[0] == 0:
        return None
    return False, _HL_SCALE * parts[1] // parts[0], parts[1]


def _hl_burst(text: str) -> int | None:
    """libxt_hashlimit.c ``parse_burst``: the number times its ``k``/``m`` suffix, wrapped to
    64 bits."""
    found = c_strtoul_prefix(text)
    if found is None:
        return None
    return found[0] * _FACTORS.get(found[1][:1], 1) & _U64


def _cost_to_bytes(cost: int) -> int:
    """libxt_hashlimit.c ``cost_to_bytes``."""
    return ((_U32 // cost if cost else _U32) - 1) << _HL_BYTE_SHIFT & _U64


def hashlimit_refusal(options: Sequence[Option]) -> tuple[str, str | None] | None:
    """(reason, option to point at) when libxt_hashlimit.c's final check or the kernel's
    ``hashlimit_mt_check_common`` refuses a ``-m hashlimit`` with ``options`` (each value
    checked already: natlens.parse.values), else None."""
    values = {o.name: (o.args[0] if o.args else "") for o in options}
    rate_name = next((n for n in ("--hashlimit-upto", "--hashlimit-above") if n in values), None)
    if rate_name is None:
        return None  # "must be specified": natlens.parse.checks
    rate = _hl_rate(values[rate_name])
    if rate is None:  # what the value check takes and parse_bytes divides by zero
        return (f"hashlimit: bad rate {values[rate_name]!r} (libxt_hashlimit divides by zero "
                "reading it)", rate_name)
    burst_text = values.get("--hashlimit-burst")
    burst = _HL_BURST if burst_text is None else _hl_burst(burst_text)
    if burst is None:
        return None  # refused by the value check
    in_bytes, avg, unit = rate
    if in_bytes:
        if burst_text is not None and _cost_to_bytes(avg) == 0:  # below 16 b/s
            return (f"hashlimit: a burst with {rate_name} {values[rate_name]} (libxt_hashlimit "
                    "divides by zero reading it)", "--hashlimit-burst")
        if burst_text is not None and burst < _cost_to_bytes(avg):
            return (f"hashlimit: burst cannot be smaller than {_cost_to_bytes(avg)}b",
                    "--hashlimit-burst")
    elif burst > _HL_BURST_MAX:
        return (f'hashlimit: bad value for option "--hashlimit-burst", or out of range '
                f"(1-{_HL_BURST_MAX})", "--hashlimit-burst")
    for name in ("--hashlimit-htable-gcinterval", "--hashlimit-htable-expire"):
        if values.get(name) == "0":
            return f"hashlimit: {name} 0 (the kernel refuses it)", name
    if "--hashlimit-rate-match" in values:
        if not in_bytes and avg // unit == 0:
            return (f"hashlimit: {rate_name} {values[rate_name]} is below one per second "
                    "for --hashlimit-rate-match (the kernel refuses it)", rate_name)
        return None
    if in_bytes:
        if (avg * _HL_BYTES_HZ_CPJ & _U64) >> 32 == 0:  # user2credits_byte
            return (f"hashlimit: {rate_name} {values[rate_name]} is too high (the kernel "
                    "refuses it)", rate_name)
        return None
    if _hl_credits(avg * burst & _U64) < _hl_credits(avg):
        return (f"hashlimit: {rate_name} {values[rate_name]} with burst {burst} overflows the "
                "kernel's credits (the kernel refuses it)",
                rate_name if burst_text is None else "--hashlimit-burst")
    return None


def _bytes_to_cost(total: int) -> int:
    """libxt_hashlimit.c ``bytes_to_cost``."""
    return _U32 // ((((total >> _HL_BYTE_SHIFT) & _U32) + 1) & _U32 or 1)


_BYTE_UNITS = (("m", 1024 * 1024), ("k", 1024))


def _print_bytes(avg: int, burst: int) -> tuple[str, str | None, int]:
    """libxt_hashlimit.c ``print_bytes``: (the rate, the burst or None, the expiry in ms it
    implies)."""
    total = _cost_to_bytes(avg)
    name, unit = next(((n, t) for n, t in _BYTE_UNITS
                       if total >= t and _bytes_to_cost(total & (~(t - 1) & _U32)) == avg),
                      ("", 1))  # ~(thresh - 1) is a uint32_t: it clears the high 32 bits too
    rate = f"{total // unit}{name}b/s"
    if burst == 0:
        return rate, None, _HL_BYTE_EXPIRE * 1000
    total *= burst
    name, unit = next(((n, t) for n, t in _BYTE_UNITS if total >= t), ("", 1))
    return rate, f"{total // unit}{name}b", 60_000  # XT_HASHLIMIT_BYTE_EXPIRE_BURST


def hashlimit_saved(options: Sequence[Option]) -> list[Option] | None:
    """The rate, burst, expiry and rate interval of a ``-m hashlimit`` (revision 3, values
    checked) as ``hashlimit_mt_save`` prints what libxt_hashlimit.c stored: ``! --hashlimit-upto``
    is ``--hashlimit-above``; a packet rate by ``print_rate`` (with ``--hashlimit-rate-match``
    the rate per second, its unit becoming the interval), its burst times its ``k``/``m``
    suffix, in decimal; a byte rate and burst by ``print_bytes`` (``1500b/s`` is ``1488b/s``,
    burst 1500 at 1kb/s is ``2kb``); the expiry unless it is the printed rate's unit, the
    interval unless 1. The other options are given back as they are; None when the rate is
    not one libxt_hashlimit reads (kept as written)."""
    rate_opt = next((o for o in options if o.name in ("--hashlimit-upto", "--hashlimit-above")
                     and o.args), None)
    if rate_opt is None:
        return None
    rate = _hl_rate(rate_opt.args[0])
    values = {o.name: (o.args[0] if o.args else "") for o in options}
    burst_text = values.get("--hashlimit-burst")
    given_burst = None if burst_text is None else _hl_burst(burst_text)
    if rate is None or (burst_text is not None and given_burst is None):
        return None
    in_bytes, avg, mult = rate
    rate_match = "--hashlimit-rate-match" in values
    if in_bytes:
        burst = 0
        if given_burst is not None:
            per = _cost_to_bytes(avg)
            if per == 0:
                return None  # refused: hashlimit_refusal
            burst = ((given_burst & _U32) // per + (1 if given_burst % per else 0)) & _U32
        text, burst_out, quantum = _print_bytes(avg, burst)
        expire = 60_000 if given_burst is not None else _HL_BYTE_EXPIRE * 1000
        interval = 1
    else:
        if rate_match:
            avg //= mult
        if avg == 0:
            return None
        text, unit = rate_text(avg, _HL_SCALE)  # print_rate
        quantum = unit // _HL_SCALE * 1000
        burst_out = str(_HL_BURST if given_burst is None else given_burst)
        expire, interval = mult * 1000, mult
    if "--hashlimit-htable-expire" in values:
        expire = int(values["--hashlimit-htable-expire"])
    if "--hashlimit-rate-interval" in values:
        interval = int(values["--hashlimit-rate-interval"])
    above = (rate_opt.name == "--hashlimit-above") != rate_opt.negated
    out = [Option("--hashlimit-above" if above else "--hashlimit-upto", (text,))]
    if burst_out is not None:
        out.append(Option("--hashlimit-burst", (burst_out,)))
    out.extend(o for o in options if o.name not in _SAVED_HERE)
    if expire != quantum:
        out.append(Option("--hashlimit-htable-expire", (str(expire),)))
    if rate_match and interval != 1:
        out.append(Option("--hashlimit-rate-interval", (str(interval),)))
    return out


_SAVED_HERE = frozenset({"--hashlimit-upto", "--hashlimit-above", "--hashlimit-burst",
                         "--hashlimit-htable-expire", "--hashlimit-rate-interval"})
