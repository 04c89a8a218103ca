"""Evaluating expectations against step results (lab.scenario.expect), pure."""
import pytest

from lab.scenario import load_text
from lab.scenario.expect import Expectation, Position, apply, lookup, render, same

HEAD = "name: t\ndescription: d\ntopology: {clients: 3}\nsteps:\n" \
       "  - {at: 0s, name: probe, on: clients, run: udp-measure --count 100}\n" \
       "  - {at: 0s, name: srv, on: server, run: tcp-server, background: true}\nexpect:\n"


def expectation(line):
    """The one expectation that ``line`` (a list item of expect) resolves to."""
    found = load_text(HEAD + "  - " + line + "\n", "x.yaml").expectations
    assert len(found) == 1
    return found[0]


def result(**fields):
    base = {"exit_code": 0, "elapsed": 1.0, "timed_out": False, "output": "", "error": None,
            "sent": 100, "received": 100, "delivery": 1.0, "rtt_ms": {"p99": 10.0, "max": 20.0}}
    base.update(fields)
    return base


def hosts(*results):
    return {f"client{i}": dict(r, host=f"client{i}") for i, r in enumerate(results, 1)}


# --- operators ------------------------------------------------------------------------------

def test_equality_keeps_booleans_and_numbers_apart():
    assert same(0, 0.0) and same("a", "a") and same(None, None) and same(True, True)
    assert not same(False, 0) and not same(1, True) and not same("1", 1)


@pytest.mark.parametrize("op, observed, expected, ok", [
    ("equals", 0, 0, True), ("equals", None, None, True), ("equals", "X", "Y", False),
    ("not", 1, 0, True), ("not", 0, 0, False),
    ("lt", 1, 2, True), ("lt", 2, 2, False), ("le", 2, 2, True), ("gt", 3, 2, True), ("ge", 2, 2.0, True),
    ("lt", None, 2, False), ("gt", True, 0, False),
    ("between", 0.9, (0.85, 0.95), True), ("between", 0.85, (0.85, 0.95), True),
    ("between", 0.96, (0.85, 0.95), False),
    ("one_of", None, (None, "ECONNREFUSED"), True), ("one_of", "TIMEOUT", (None, "ECONNREFUSED"), False),
    ("contains", "tcp-server listening", "listening", True), ("contains", ["A", "B"], "B", True),
    ("contains", ["A"], "B", False), ("contains", 5, "5", False),
    ("matches", "listening on 0.0.0.0:12000", r":1200\d$", True), ("matches", None, "x", False),
])
def test_operators(op, observed, expected, ok):
    assert apply(op, observed, expected)[0] is ok


def test_failure_reasons_read_well():
    assert apply("between", 0.82, (0.85, 0.95))[1] == "0.82 is not between 0.85 and 0.95"
    assert apply("lt", 450.5, 300)[1] == "450.5 is not < 300"
    assert apply("equals", "ECONNREFUSED", None)[1] == "ECONNREFUSED, expected null"
    assert apply("lt", None, 3)[1] == "null is not a number"


def test_lookup_walks_mappings_and_list_indexes():
    r = {"rtt_ms": {"p99": 3}, "replies": ["A", "B"]}
    assert lookup(r, ("rtt_ms", "p99")) == 3
    assert lookup(r, ("replies", "1")) == "B"
    assert repr(lookup(r, ("replies", "5"))) == "missing"
    assert repr(lookup(r, ("nope",))) == "missing"
    assert lookup(r, ()) is r


def test_render():
    assert render(None) == "null" and render(True) == "true" and render(0.5) == "0.5"
    assert render("ECONNREFUSED") == "ECONNREFUSED" and render("two words") == '"two words"'
    assert render([1, None]) == "[1, null]"
    assert render("x" * 100) == "x" * 77 + "..."


# --- per host and aggregates ------------------------------------------------------------------

def test_without_aggregate_every_host_must_pass():
    e = expectation("probe.delivery: {ge: 0.9}")
    ok, observed, detail = e.evaluate(hosts(result(delivery=0.95), result(delivery=0.85), result(delivery=0.99)))
    assert not ok
    assert observed == {"client1": 0.95, "client2": 0.85, "client3": 0.99}
    assert detail == "client2: 0.85 is not >= 0.9"
    ok, _, detail = e.evaluate(hosts(result(delivery=0.95), result(delivery=0.91)))
    assert ok and detail == "all 2 hosts pass (min 0.91, max 0.95)"


def test_one_host_reports_its_value():
    e = expectation("srv.output: {contains: listening}")
    assert e.evaluate({"server": {"output": "tcp-server listening on 0.0.0.0:12000"}}) == \
        (True, "tcp-server listening on 0.0.0.0:12000", '"tcp-server listening on 0.0.0.0:12000"')


def test_a_missing_field_fails_with_the_host_named():
    e = expectation("probe.rtt_ms.p99: {lt: 300}")
    ok, observed, detail = e.evaluate(hosts(result(), {"exit_code": 1}))
    assert not ok and detail == "client2: no rtt_ms.p99"
    assert observed == {"client1": 10.0, "client2": None}


def test_no_results_fail():
    assert expectation("probe.exit_code: 0").evaluate({}) == (False, None, "step 'probe' has no results")


@pytest.mark.parametrize("line, expected", [
    ("max(probe.rtt_ms.max): {gt: 25}", (True, 30.0)),
    ("min(probe.rtt_ms.max): 10", (True, 10.0)),
    ("mean(probe.delivery): {between: [0.89, 0.91]}", (True, pytest.approx(0.9))),
    ("sum(probe.received): 270", (True, 270)),
    ("count(probe): 3", (True, 3)),
    ("count(probe.timed_out): 1", (True, 1)),
    ("count(probe.error): 2", (True, 2)),
    ("all(probe.timed_out): false", (True, False)),
    ("any(probe.timed_out): true", (True, True)),
    ("all(probe.rtt_ms.max): true", (True, True)),
])
def test_aggregates(line, expected):
    results = hosts(result(received=100, delivery=1.0, rtt_ms={"max": 10.0}),
                    result(received=90, delivery=0.9, rtt_ms={"max": 30.0}, error="TIMEOUT", timed_out=True),
                    result(received=80, delivery=0.8, rtt_ms={"max": 20.0}, error="ECONNREFUSED"))
    ok, observed, _ = expectation(line).evaluate(results)
    assert (ok, observed) == expected


def test_aggregate_detail():
    ok, observed, detail = expectation("max(probe.rtt_ms.max): {gt: 4000}").evaluate(
        hosts(result(rtt_ms={"max": 12.5}), result(rtt_ms={"max": 40.0})))
    assert (ok, observed) == (False, 40.0)
    assert detail == "max over 2 hosts = 40: 40 is not > 4000"


def test_numeric_aggregates_need_every_host():
    ok, observed, detail = expectation("max(probe.rtt_ms.max): {gt: 1}").evaluate(
        hosts(result(rtt_ms={"max": 12.5}), result(rtt_ms={"max": None})))
    assert (ok, observed) == (False, None)
    assert detail == "max needs a number from every host, but client2: null"


def test_units_in_the_field_unit():
    assert expectation("probe.elapsed: {lt: 1500ms}").evaluate(hosts(result(elapsed=1.2)))[0]
    assert not expectation("probe.elapsed: {lt: 1s}").evaluate(hosts(result(elapsed=1.2)))[0]
    assert expectation("probe.rtt_ms.p99: {lt: 0.5s}").evaluate(hosts(result(rtt_ms={"p99": 499})))[0]
    assert expectation("probe.delivery: {gt: 85%}").evaluate(hosts(result(delivery=0.86)))[0]


# --- consistent_with_loss ---------------------------------------------------------------------

def test_loss_test_passes_inside_the_exact_interval():
    e = expectation("probe: {consistent_with_loss: 20%}")
    ok, observed, detail = e.evaluate(hosts(result(sent=10000, received=7896)))
    assert ok and observed == pytest.approx(0.2104)
    assert detail.endswith("20% loss allows 7896..8102 received")
    assert e.evaluate(hosts(result(sent=10000, received=8102)))[0]


def test_loss_test_fails_outside():
    e = expectation("probe: {consistent_with_loss: 20%}")
    assert not e.evaluate(hosts(result(sent=10000, received=7895)))[0]
    assert not e.evaluate(hosts(result(sent=10000, received=8103)))[0]
    ok, _, detail = e.evaluate(hosts(result(sent=10000, received=9000)))
    assert not ok and detail.startswith("received 9000 of 10000 (loss 10.00%, 99% interval ")


def test_loss_test_confidence_widens_the_interval():
    narrow = expectation("probe: {consistent_with_loss: 20%, confidence: 90%}")
    wide = expectation("probe: {consistent_with_loss: 20%, confidence: 99.9%}")
    assert narrow.confidence == pytest.approx(0.9) and wide.confidence == pytest.approx(0.999)
    results = hosts(result(sent=10000, received=7910))
    assert not narrow.evaluate(results)[0]
    assert wide.evaluate(results)[0]


def test_no_loss_means_every_reply():
    e = expectation("probe: {consistent_with_loss: 0%}")
    assert e.evaluate(hosts(result(sent=500, received=500)))[0]
    assert not e.evaluate(hosts(result(sent=500, received=499)))[0]


def test_loss_test_per_host_or_pooled():
    per_host = expectation("probe: {consistent_with_loss: 10%}")
    pooled = expectation("sum(probe): {consistent_with_loss: 10%}")
    results = hosts(result(sent=1000, received=880), result(sent=1000, received=915))
    ok, observed, detail = per_host.evaluate(results)
    assert ok and observed == {"client1": 0.12, "client2": 0.085}
    assert detail.startswith("client1: received 880 of 1000")
    ok, observed, detail = pooled.evaluate(results)
    assert ok and observed == pytest.approx(0.1025)
    assert detail.startswith("received 1795 of 2000")


def test_loss_test_needs_counts():
    e = expectation("probe: {consistent_with_loss: 10%}")
    assert e.evaluate(hosts({"exit_code": 1})) == (False, None, "client1: no sent/received counts")
    assert e.evaluate(hosts(result(sent=0, received=0)))[2] == "nothing was sent"
    assert not e.evaluate(hosts(result(sent=10, received=11)))[0]


def test_an_expectation_can_be_made_directly():
    e = Expectation(step="p", path=("delivery",), aggregate=None, op="gt", value=0.5,
                    position=Position("f.yaml", 3, 5), text="p.delivery > 0.5")
    assert e.evaluate({"h": {"delivery": 0.7}}) == (True, 0.7, "0.7")
    assert e.field == "p.delivery" and str(e.position) == "f.yaml:3:5"
    assert e.to_dict()["value"] == 0.5
