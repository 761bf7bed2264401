"""Inject SPECs (superres.standin.faults.rules): what parses, what is refused and why, and how several rules
combine for one request. Pure logic; the HTTP side is tests/integration/test_standin_adversary_interface.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from superres.standin.asgi import RequestView
from superres.standin.faults import InjectRule, RuleSet, parse_inject, parse_inject_lines


def _view(method: str = "GET", key: str = "uploads/a.jpg", ci: bool = False) -> RequestView:
    return RequestView(method=method, bucket="photos-1250000000", key=key, path="/" + key, subresources=(), ci=ci)


def test_a_full_spec_parses_into_every_field():
    rule = parse_inject(" op=CI, prefix=uploads/, latency=0.05-0.3, share=0.5, count=3, seed=7, late=6 ")
    assert rule == InjectRule(text="op=CI, prefix=uploads/, latency=0.05-0.3, share=0.5, count=3, seed=7, late=6",
                              op="ci", prefix="uploads/", latency=(0.05, 0.3), share=0.5, count=3, seed=7, late_s=6.0)


def test_fixed_latency_is_a_range_of_one_point_and_defaults_apply():
    rule = parse_inject("latency=0.2")
    assert (rule.op, rule.prefix, rule.latency, rule.share, rule.count) == ("any", "", (0.2, 0.2), 1.0, None)


def test_error_code_defaults_for_common_statuses_and_is_kept_when_given():
    assert parse_inject("error=503").error == (503, "ServiceUnavailable")
    assert parse_inject("error=500").error == (500, "InternalError")
    assert parse_inject("error=503:SlowDown").error == (503, "SlowDown")


def test_prefix_is_percent_decoded_so_a_comma_can_be_given():
    assert parse_inject("prefix=a%2Cb/,error=500").prefix == "a,b/"


@pytest.mark.parametrize(("spec", "says"), [
    ("", "empty inject spec"),
    ("op=ci", "it does nothing"),
    ("op=patch,latency=1", "op must be one of"),
    ("latency=fast", "latency must be seconds"),
    ("latency=0.3-0.1", "runs backwards"),
    ("latency=-1", "latency must be seconds"),
    ("latency=inf", "non-negative number"),
    ("error=200", "status of 400-599"),
    ("error=418", "give the COS code for status 418"),
    ("error=503:Slow Down", "must be a COS code"),
    ("share=1.5,latency=1", "share must be a probability"),
    ("count=0,latency=1", "count must be a whole number >= 1"),
    ("late=6", "late= applies to CI calls only"),
    ("op=ci,late=0", "positive number of seconds"),
    ("op=ci,late=6,error=500", "not both"),
    ("latency=1,latency=2", "latency is given twice"),
    ("delay=1", "unknown key 'delay'"),
    ("latency", "is not key=value"),
])
def test_a_bad_spec_is_refused_naming_the_spec_and_the_fault(spec: str, says: str):
    with pytest.raises(ValueError, match="inject spec|empty") as info:
        parse_inject(spec)
    assert says in str(info.value)


def test_inject_lines_skip_comments_and_name_the_bad_line():
    rules = parse_inject_lines("# claims are slow\nop=delete,latency=0.1  # jitter\n\nop=ci,error=503\n")
    assert [r.text for r in rules] == ["op=delete,latency=0.1", "op=ci,error=503"]
    with pytest.raises(ValueError, match=r"rules.txt, line 2: inject spec 'op=x,latency=1'"):
        parse_inject_lines("latency=1\nop=x,latency=1\n", "rules.txt")


def test_a_request_is_one_op_ci_or_its_method():
    rule = parse_inject("op=post,error=500")
    assert rule.matches(_view("POST", ci=False))
    assert not rule.matches(_view("POST", ci=True))  # a CI call is op=ci, not op=post
    assert parse_inject("op=ci,error=500").matches(_view("PUT", ci=True))
    assert parse_inject("op=any,error=500").matches(_view("OPTIONS"))
    assert not parse_inject("prefix=superres/,error=500").matches(_view(key="uploads/a.jpg"))


def test_latencies_add_up_and_the_first_error_wins():
    rules = RuleSet()
    rules.set_rules(["op=get,latency=0.1", "error=503:SlowDown", "latency=0.2", "error=500"])
    decision = rules.decide(_view("GET"))
    assert decision is not None
    assert decision.latency_s == pytest.approx(0.3)
    assert decision.error == (503, "SlowDown")
    assert decision.rules == ["op=get,latency=0.1", "error=503:SlowDown", "latency=0.2"]  # error=500 shadowed


def test_count_spends_the_rule_and_a_shadowed_rule_keeps_its_count():
    rules = RuleSet()
    rules.set_rules(["op=head,error=503,count=1", "op=head,error=500,count=1"])
    outcomes = [d.error if (d := rules.decide(_view("HEAD"))) else None for _ in range(3)]
    assert outcomes == [(503, "ServiceUnavailable"), (500, "InternalError"), None]


def test_share_draws_are_repeatable_with_a_seed():
    def draws() -> list[bool]:
        rules = RuleSet()
        rules.set_rules(["share=0.5,seed=11,error=500"])
        return [rules.decide(_view()) is not None for _ in range(200)]

    first = draws()
    assert first == draws()
    assert 60 < sum(first) < 140


def test_latency_range_draws_stay_within_the_range():
    rules = RuleSet()
    rules.set_rules(["latency=0.05-0.3,seed=3"])
    drawn = [rules.decide(_view()).latency_s for _ in range(200)]  # type: ignore[union-attr]
    assert all(0.05 <= d <= 0.3 for d in drawn)
    assert len(set(drawn)) > 100


def test_a_bad_spec_in_a_set_changes_nothing():
    rules = RuleSet()
    rules.set_rules(["error=500"])
    with pytest.raises(ValueError):
        rules.set_rules(["error=503", "op=nope,latency=1"])
    assert rules.decide(_view()).error == (500, "InternalError")  # type: ignore[union-attr]


def test_the_inject_file_is_re_read_when_it_changes_and_a_bad_edit_keeps_the_rules(tmp_path: Path):
    path = tmp_path / "rules.txt"
    path.write_text("op=get,error=500\n")
    rules = RuleSet()
    rules.set_file(path)
    assert rules.decide(_view("GET")).error == (500, "InternalError")  # type: ignore[union-attr]
    path.write_text("op=get,error=503:SlowDown  # now this\n")
    assert rules.decide(_view("GET")).error == (503, "SlowDown")  # type: ignore[union-attr]
    path.write_text("op=get,error=nonsense\n")
    assert rules.decide(_view("GET")).error == (503, "SlowDown")  # type: ignore[union-attr]
    path.unlink()
    assert rules.decide(_view("GET")) is None
