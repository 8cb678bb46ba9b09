"""``natlens.netfilter.fastcopy``: the walk's faster constructors and copies behave exactly as
the dataclass ones they replace."""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
from dataclasses import dataclass

import pytest

from natlens.exposure import ExposureMap
from natlens.netfilter.fastcopy import fast_init, replace
from natlens.netfilter.flow import Flow
from natlens.netfilter.matches import Evaluation
from natlens.netfilter.packet import Packet
from natlens.netfilter.trace import Step, StepKind
from natlens.netfilter.walkstate import Active, WalkPath

FLOW = Flow.from_packet(Packet(in_interface="eth0", src="198.51.100.7", dst="192.0.2.2",
                               sport=40000, dport=8080))


def _plain_init_signature(cls: type) -> inspect.Signature:
    """The signature ``@dataclass`` itself would give ``cls``."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for f in dataclasses.fields(cls):
        default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=default))
    return inspect.Signature(params)


@pytest.mark.parametrize("cls", [Step, WalkPath, Flow, Active, Evaluation])
def test_fast_init_keeps_the_signature(cls: type) -> None:
    assert inspect.signature(cls.__dict__["__init__"]) == _plain_init_signature(cls)


@pytest.mark.parametrize(("value", "changes"), [
    (FLOW, {"out_iface": "docker0", "out_known": False}),
    (FLOW, {"dst": ipaddress.ip_address("172.17.0.2"), "dport": 80, "dnat": True}),
    (WalkPath(FLOW), {"kind": None, "nat_dst_done": True}),
    (Step("PREROUTING", "nat", "DOCKER", 3, "DNAT", "-A DOCKER -j DNAT"), {"detail": "x"}),
])
def test_replace_matches_dataclasses_replace(value: object, changes: dict[str, object]) -> None:
    fast = replace(value, **changes)
    slow = dataclasses.replace(value, **changes)  # type: ignore[type-var]
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert type(fast) is type(slow)
    assert fast is not value
    assert all(getattr(fast, k) == v for k, v in changes.items())


def test_replace_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError, match="no field bogus"):
        replace(FLOW, bogus=1)


def test_fast_init_builds_what_the_dataclass_would() -> None:
    step = Step("INPUT", "filter", "INPUT", None, "DROP", "policy DROP", kind=StepKind.POLICY,
                position=4)
    assert (step.hook, step.rule, step.detail, step.kind, step.position, step.where) == (
        "INPUT", None, "", StepKind.POLICY, 4, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.hook = "OUTPUT"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Step("INPUT")  # type: ignore[call-arg]


def test_fast_init_leaves_classes_it_cannot_copy() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    before = Checked.__init__
    assert fast_init(Checked) is Checked
    assert Checked.__init__ is before
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)
    # a map's private row index is not a constructor argument
    assert "_by_row" not in inspect.signature(ExposureMap).parameters
