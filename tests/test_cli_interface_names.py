"""Every option that takes an interface name refuses a name the kernel would refuse
(``dev_valid_name``, net/core/dev.c: 1-15 bytes, IFNAMSIZ - 1) with the usual one-line error
naming the option and the value, exit 2: never a message about an internal JSON path."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hostile_input import assert_one_error, run_command, run_in_process

from natlens.cli import build_parser
from natlens.cli_options import INTERFACE_OPTIONS

SNAP = str(REPO_ROOT / "fixtures" / "default-bridge-8080")
PACKET = ["--src", "198.51.100.7", "--dst", "172.17.0.2", "--dport", "80"]


def _interface_options() -> list[tuple[str, str]]:
    """(command, option) of every option of every command that takes an interface name: by
    destination (what the CLI checks) or by a metavar that says so (an option added later
    and not checked fails ``test_every_interface_option_is_checked``)."""
    found = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                for option in sub._actions:
                    metavar = str(option.metavar or "")
                    if option.dest in INTERFACE_OPTIONS or "IFACE" in metavar \
                            or metavar.startswith("NAME="):
                        found.append((command, option.option_strings[-1]))
    return found


OPTIONS = _interface_options()


def test_every_interface_option_is_checked() -> None:
    assert set(OPTIONS) >= {("trace", "--in"), ("trace", "--iface"), ("graph", "--in"),
                            ("graph", "--iface"), ("report", "--iface"),
                            ("exposure", "--iface")}
    assert {option for _, option in OPTIONS} <= set(INTERFACE_OPTIONS.values())


def _args(command: str, option: str, name: str) -> list[str]:
    value = f"{name}=192.0.2.10/24" if option == "--iface" else name
    args = [command, SNAP, option, value]
    if command in ("trace", "graph") and option != "--in":
        args += ["--in", "eth0"]
    if command == "trace":
        args += PACKET
    if command == "graph" and option == "--in":
        args += ["--trace", *PACKET]
    return args


@pytest.mark.parametrize(("command", "option"), OPTIONS)
def test_too_long_name_is_one_line_naming_option_and_value(command: str, option: str) -> None:
    name = "veth0123456789ab"  # 16 bytes: one more than the kernel takes
    args = _args(command, option, name)
    line = assert_one_error(run_command(args), f"{option} '{args[3]}'",
                            "16 bytes long: the kernel allows at most 15 (IFNAMSIZ - 1)")
    assert "JSON" not in line
    assert "$[" not in line


@pytest.mark.parametrize(("name", "reason"), [
    ("é" * 8, "16 bytes long"),  # 8 characters, but the kernel counts bytes
    ("a b", "no blanks"),
    ("eth0/1", "no '/'"),
    ("eth0:1", "no ':'"),
    ("..", "'..' is not an interface name"),
])
@pytest.mark.parametrize(("command", "option"), [("trace", "--in"), ("exposure", "--iface")])
def test_other_refused_names(capsys: pytest.CaptureFixture[str], command: str, option: str,
                             name: str, reason: str) -> None:
    args = _args(command, option, name)
    assert_one_error(run_in_process(args, capsys), f"{option} ", reason)


@pytest.mark.parametrize("name", ["veth0123456789a", "eth+", "wg-home.1"])
def test_names_the_kernel_takes_are_accepted(capsys: pytest.CaptureFixture[str],
                                            name: str) -> None:
    run = run_in_process(_args("trace", "--in", name), capsys)
    assert run.status in (0, 1), run.err
    run = run_in_process(_args("exposure", "--iface", name), capsys)
    assert run.status == 0, run.err


def test_packet_file_in_field_names_file_and_line(tmp_path: Path) -> None:
    packets = tmp_path / "p.csv"
    packets.write_text("in,src,dst\neth0,198.51.100.7,172.17.0.2\n"
                       "veth0123456789ab,198.51.100.7,172.17.0.2\n")
    assert_one_error(run_command(["trace", SNAP, "--packets", str(packets)]),
                     f"{packets}:3: in 'veth0123456789ab': interface name is 16 bytes long")
