"""Read ``iptables [-t TABLE] -L`` listings (with any of ``-n -v -x --line-numbers``).

A listing is a sequence of chains::

    Chain DOCKER (2 references)
    num  pkts bytes target prot opt in       out source    destination
    1      42  2520 DNAT   tcp  --  !docker0 *   0.0.0.0/0 0.0.0.0/0   tcp dpt:8080 to:172.17.0.4:80

The fixed columns come from ``print_header``/``print_rule_details`` in iptables' ``xshared.c``
(``iptables.c`` before 1.8): line number, counters (``xtables_print_num``: K/M/G/T suffixes,
rounded, unless ``-x``), target (``%-9s``, empty for a rule without target), ``[!]prot`` (name,
or number with ``-n`` since 1.8.9), ``opt`` (``--``, ``-f``, ``!f``), interfaces (with ``-v``;
``*``/``any`` is none), source and destination (``anywhere``, host and network names without
``-n``). What follows is ``[goto]`` and each match's ``print`` function, then the target's; their
formats are those of ``extensions/libxt_*.c`` / ``libipt_*.c`` (iptables 1.4 to 1.8.11), e.g.
``libxt_tcp.c`` ``tcp_print`` (``tcp spt:1 dpts:2:3 flags:0x17/0x02``), ``libxt_conntrack.c``
``conntrack_dump`` (``! ctstate NEW``), ``libxt_NAT.c`` (``to:ADDR``), ``libxt_MARK.c``
``mark_tg_print_v2`` (``MARK or 0x4000`` for ``--set-xmark 0x4000/0x4000``), ``libxt_LOG.c``.

Each decoded match and target is rebuilt in iptables-save's form (option names of
``natlens.parse.modules``, values through ``natlens.parse.values``, defaults that iptables-save
prints or omits restored), so a rule equals what ``parse_save`` makes of the same rule.

What a listing cannot tell is named in ``Rule.unknown``, never guessed: ``"in_interface"``,
``"out_interface"`` and ``"counters"`` without ``-v``; ``"counters"`` when rounded;
``"source"``/``"destination"`` for host names that cannot be resolved with certainty;
``"matches"`` when some text could not be decoded (kept verbatim as
``Match("?", (Option("--text", (raw,)),), known=False)``); ``"target_options"`` when the
target's options could not be read. Port and protocol names are resolved through the services
and protocols databases; ``anywhere``, ``localhost`` and the ``loopback`` network by their
standard meaning (said in ``Ruleset.notes``).

The package: ``grammar`` (lines, columns, rules; each distinct match/target text decoded once;
rules and origins built through ``natlens.parse.construct``), ``words`` (values and the cursor),
``matches`` and ``targets`` (one decoder per match or target print format).
"""

from __future__ import annotations

from natlens.parse.listing.grammar import parse_listing

__all__ = ["parse_listing"]
