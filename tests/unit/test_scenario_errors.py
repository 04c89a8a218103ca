"""Every kind of scenario problem, with its exact FILE:LINE:COL: path: message."""
import textwrap

import pytest

from lab.scenario import load_text
from lab.programs.shared.problems import ScenarioError

HEAD = "name: t\ndescription: d\n"   # lines 1-2 of every scenario below


def problems(body):
    with pytest.raises(ScenarioError) as info:
        load_text(HEAD + textwrap.dedent(body), "scenarios/x.yaml")
    return info.value.lines


def one(body):
    found = problems(body)
    assert len(found) == 1, found
    return found[0]


# --- top level and topology -------------------------------------------------------------

def test_unknown_top_level_key_has_a_did_you_mean():
    assert one("step: []\n") == "scenarios/x.yaml:3:1: step: unknown key for a scenario (did you mean 'steps'?)"


def test_extension_keys_are_free_for_anchors():
    load_text(HEAD + "x-probe: &p {on: clients}\n", "x.yaml")


def test_missing_description():
    with pytest.raises(ScenarioError) as info:
        load_text("name: t\n", "x.yaml")
    assert info.value.lines == ["x.yaml:1:1: missing required key 'description'"]


def test_empty_description():
    with pytest.raises(ScenarioError) as info:
        load_text("name: t\ndescription: '  '\n", "x.yaml")
    assert info.value.lines == ["x.yaml:2:14: description: must not be empty"]


def test_version_other_than_1():
    assert one("version: 2\n") == "scenarios/x.yaml:3:10: version: 2 is over the maximum of 1"


def test_clients_above_max():
    assert one("topology: {clients: 101}\n") == \
        "scenarios/x.yaml:3:21: topology.clients: 101 is over the maximum of 100"


def test_clients_negative_and_wrong_type():
    assert one("topology: {clients: -1}\n").endswith("topology.clients: -1 is below the minimum of 0")
    assert one("topology: {clients: three}\n").endswith(
        "topology.clients: expected a whole number or a {count, image, command, ready} mapping, "
        "got the string 'three'")
    assert one("topology: {clients: true}\n").endswith(
        "topology.clients: expected a whole number or a {count, image, command, ready} mapping, "
        "got the boolean true")


def test_unknown_topology_key():
    assert one("topology:\n  client: 3\n") == \
        "scenarios/x.yaml:4:3: topology.client: unknown key for the topology (did you mean 'clients'?)"


def test_server_choice_did_you_mean():
    assert one("topology: {server: upper}\n") == \
        "scenarios/x.yaml:3:20: topology.server: 'upper' is not one of: uppercase, idle (did you mean 'uppercase'?)"


def test_tcp_mode_with_an_idle_server():
    assert one("topology: {server: idle, tcp_mode: iterative}\n") == \
        "scenarios/x.yaml:3:36: topology.tcp_mode: tcp_mode is for server: uppercase (an idle server runs nothing)"


def test_yes_is_not_a_boolean():
    assert one("topology: {capture: yes}\n").endswith(
        "topology.capture: expected true or false, got the string 'yes'")


def test_extra_networks_reserved_and_twice():
    assert problems("topology: {networks: [servers, dmz, dmz]}\n") == [
        "scenarios/x.yaml:3:23: topology.networks[0]: 'servers' is always there: list only extra networks",
        "scenarios/x.yaml:3:37: topology.networks[2]: 'dmz' is listed twice",
    ]


def test_bad_network_name():
    assert one("topology: {networks: [DMZ]}\n").startswith(
        "scenarios/x.yaml:3:23: topology.networks[0]: 'DMZ' is not a valid network name")


def test_extra_host_reserved_names():
    found = problems("topology:\n  hosts:\n    router: {network: servers}\n    client7: {network: servers}\n")
    assert found == [
        "scenarios/x.yaml:5:5: topology.hosts.router: 'router' is one of the lab's own names "
        "(router, server, clients, client1..clientN)",
        "scenarios/x.yaml:6:5: topology.hosts.client7: 'client7' is one of the lab's own names "
        "(router, server, clients, client1..clientN)",
    ]


def test_extra_host_on_unknown_network():
    assert one("topology:\n  networks: [dmz]\n  hosts:\n    web: {network: dzm}\n") == \
        "scenarios/x.yaml:6:20: topology.hosts.web.network: unknown network 'dzm' (did you mean 'dmz'?); " \
        "networks: clients, servers, dmz"


def test_extra_host_needs_a_network():
    assert one("topology:\n  hosts:\n    web: {}\n") == \
        "scenarios/x.yaml:5:10: topology.hosts.web: missing required key 'network'"


def test_bad_extra_host_name_is_reported_at_the_key():
    assert one("topology:\n  hosts:\n    Web: {network: servers}\n").startswith(
        "scenarios/x.yaml:5:5: topology.hosts.Web: 'Web' is not a valid host name")


# --- impairments ------------------------------------------------------------------------

def test_loss_over_100_percent():
    assert one("impairments:\n  - link: clients -> servers\n    loss: 120%\n") == \
        "scenarios/x.yaml:5:11: impairments[0].loss: 120% is over 100%"


def test_plain_number_loss_over_100():
    assert one("impairments:\n  - {link: clients -> servers, loss: 150}\n").endswith(
        "impairments[0].loss: 150% is over 100%")


def test_negative_delay():
    assert one("impairments:\n  - link: clients -> servers\n    delay: -5ms\n") == \
        "scenarios/x.yaml:5:12: impairments[0].delay: '-5ms' is negative"


def test_delay_without_unit():
    assert one("impairments:\n  - link: clients -> servers\n    delay: 50\n") == \
        "scenarios/x.yaml:5:12: impairments[0].delay: 50 has no unit: write 50ms or 50s"


def test_unparseable_units():
    assert problems("impairments:\n  - link: clients -> servers\n    loss: lots\n    delay: 5 fortnights\n"
                    "    rate: 1mbps\n") == [
        "scenarios/x.yaml:5:11: impairments[0].loss: 'lots' is not a percentage (like 10% or 0.5%)",
        "scenarios/x.yaml:6:12: impairments[0].delay: '5 fortnights': unknown time unit 'fortnights' "
        "(use us, ms, s, m or h)",
        "scenarios/x.yaml:7:11: impairments[0].rate: '1mbps': write rates in bits per second (1mbit); "
        "'mbps' is ambiguous (tc reads it as bytes per second)",
    ]


def test_unknown_impairment_key():
    assert one("impairments:\n  - link: clients -> servers\n    latency: 5ms\n") == \
        "scenarios/x.yaml:5:5: impairments[0].latency: unknown key for an impairment; expected one of: " \
        "link, loss, loss_correlation, gemodel, delay, jitter, duplicate, corrupt, reorder, rate, queue, " \
            "segment, gap, reset_after, blackhole_after, hold_fin, connections, mtu"


def test_misspelt_impairment_key():
    assert one("impairments:\n  - link: clients -> servers\n    dealy: 5ms\n") == \
        "scenarios/x.yaml:5:5: impairments[0].dealy: unknown key for an impairment (did you mean 'delay'?)"


def test_link_is_required():
    assert one("impairments:\n  - loss: 1%\n") == \
        "scenarios/x.yaml:4:5: impairments[0]: missing required key 'link'"


def test_link_syntax():
    assert one("impairments:\n  - link: clients => servers\n").startswith(
        "scenarios/x.yaml:4:11: impairments[0].link: 'clients => servers' is not a link")


def test_link_naming_an_unknown_network():
    assert one("impairments:\n  - {link: clients -> dmz, loss: 1%}\n") == \
        "scenarios/x.yaml:4:12: impairments[0].link: unknown network 'dmz'; networks: clients, servers"


def test_link_to_itself():
    assert one("impairments:\n  - {link: clients -> clients}\n").endswith(
        "impairments[0].link: 'clients -> clients': a link joins two different networks")


def test_same_link_twice_at_the_start():
    assert one("impairments:\n  - {link: clients -> servers, loss: 1%}\n"
               "  - {link: servers <-> clients, loss: 2%}\n") == \
        "scenarios/x.yaml:5:12: impairments[1].link: clients->servers is already set by impairments[0]"


@pytest.mark.parametrize("fields, where, message", [
    ("loss_correlation: 25%", "loss_correlation", "loss_correlation needs loss"),
    ("loss: 1%, gemodel: {p: 1%}", "loss", "give either loss (random) or gemodel (bursty), not both"),
    ("jitter: 5ms", "jitter", "jitter needs delay (jitter varies the delay around it)"),
    ("reorder: 5%", "reorder", "reorder needs delay: reordered packets are the ones not delayed"),
    ("queue: 10", "queue", "queue bounds the rate limiter's queue, so it needs rate"),
    ("rate: 4kbit", "rate", "rate below 8 kbit/s cannot pass one full-size packet a second"),
])
def test_combinations_the_impairment_model_rejects_are_positioned(fields, where, message):
    line = "  - {link: clients -> servers, " + fields + "}"
    found = one("impairments:\n" + line + "\n")
    column = line.index(where + ": ") + len(where + ": ") + 1      # the value's first character
    assert found == f"scenarios/x.yaml:4:{column}: impairments[0].{where}: {message}"


def test_gemodel_checks():
    assert one("impairments:\n  - {link: clients -> servers, gemodel: {r: 5%}}\n").endswith(
        "impairments[0].gemodel: missing required key 'p'")
    assert one("impairments:\n  - {link: clients -> servers, gemodel: {p: 1%, h: 5%}}\n").endswith(
        "impairments[0].gemodel.h: unknown key; expected one of: p, r, one_minus_h, one_minus_k")


def test_null_is_not_a_value():
    assert one("impairments:\n  - {link: clients -> servers, loss: }\n").endswith(
        "impairments[0].loss: expected a percentage like 10%, got nothing (null)")


# --- steps ---------------------------------------------------------------------------------

def test_a_step_needs_an_action():
    assert one("steps:\n  - at: 0s\n    on: server\n") == \
        "scenarios/x.yaml:4:5: steps[0]: a step needs one of: run, impair, partition, heal, stop, kill, " \
        "restart, host, wait"


def test_a_misspelt_action_has_a_did_you_mean():
    assert one("steps:\n  - at: 0s\n    rnu: echo\n") == \
        "scenarios/x.yaml:5:5: steps[0].rnu: unknown key (did you mean 'run'?)"


def test_a_step_does_one_thing():
    assert one("steps:\n  - at: 0s\n    run: echo\n    on: server\n    wait: 1s\n") == \
        "scenarios/x.yaml:7:5: steps[0].wait: a step does one thing, and this one has both 'run' and " \
        "'wait': make them two steps"


def test_a_key_of_another_kind_of_step():
    assert one("steps:\n  - {at: 0s, wait: 1s, stagger: 1s}\n") == \
        "scenarios/x.yaml:4:24: steps[0].stagger: 'stagger' belongs to run steps, not to wait steps"


def test_unknown_run_step_key():
    assert one("steps:\n  - {at: 0s, on: server, run: echo, backgruond: true}\n") == \
        "scenarios/x.yaml:4:37: steps[0].backgruond: unknown key for a run step (did you mean 'background'?)"


def test_at_is_required():
    assert one("steps:\n  - {wait: 1s}\n") == "scenarios/x.yaml:4:5: steps[0]: missing required key 'at'"


def test_negative_at():
    assert one("steps:\n  - {at: -1s, wait: 1s}\n") == "scenarios/x.yaml:4:10: steps[0].at: '-1s' is negative"


def test_steps_in_time_order():
    assert one("steps:\n  - {at: 2s, wait: 1s}\n  - {at: 1500ms, wait: 1s}\n") == \
        "scenarios/x.yaml:5:10: steps[1].at: 1.5s is before the previous step's 2s: list steps in time order"


def test_run_on_an_unknown_host():
    assert one("steps:\n  - at: 0s\n    on: sever\n    run: echo\n") == \
        "scenarios/x.yaml:5:9: steps[0].on: unknown host 'sever' (did you mean 'server'?); " \
        "hosts: router, server, client1 (or clients for every client)"


def test_run_on_a_client_beyond_the_count():
    assert one("topology: {clients: 2}\nsteps:\n  - {at: 0s, on: [client1, client3], run: echo}\n") == \
        "scenarios/x.yaml:5:28: steps[0].on[1]: unknown host 'client3' (did you mean 'client2'?); " \
        "hosts: router, server, client1, client2 (or clients for every client)"


def test_run_on_clients_without_clients():
    assert one("topology: {clients: 0}\nsteps:\n  - {at: 0s, on: clients, run: echo}\n") == \
        "scenarios/x.yaml:5:18: steps[0].on: there are no clients (topology.clients is 0)"


def test_run_on_a_host_twice():
    assert one("topology: {clients: 2}\nsteps:\n  - {at: 0s, on: [clients, client2], run: echo}\n") == \
        "scenarios/x.yaml:5:28: steps[0].on[1]: client2 is named twice"


def test_run_needs_a_command_and_hosts():
    assert problems("steps:\n  - {at: 0s, run: ''}\n") == [
        "scenarios/x.yaml:4:5: steps[0]: missing required key 'on'",
        "scenarios/x.yaml:4:19: steps[0].run: must not be empty",
    ]


def test_timeout_must_be_positive():
    assert one("steps:\n  - {at: 0s, on: server, run: echo, timeout: 0s}\n").endswith(
        "steps[0].timeout: must be longer than 0")


def test_ready_timeout_without_ready():
    assert one("steps:\n  - {at: 0s, on: server, run: echo, ready_timeout: 5s}\n") == \
        "scenarios/x.yaml:4:37: steps[0].ready_timeout: ready_timeout goes with ready"


def test_duplicate_step_names():
    assert one("steps:\n  - {at: 0s, name: a, wait: 1s}\n  - {at: 1s, name: a, wait: 1s}\n") == \
        "scenarios/x.yaml:5:20: steps[1].name: step name 'a' is already used by steps[0]"


def test_a_name_that_clashes_with_a_default_name():
    assert one("steps:\n  - {at: 0s, wait: 1s}\n  - {at: 1s, name: step-0, wait: 1s}\n") == \
        "scenarios/x.yaml:5:20: steps[1].name: step name 'step-0' is already used by steps[0]"


def test_bad_step_name():
    assert one("steps:\n  - {at: 0s, name: My Step, wait: 1s}\n").startswith(
        "scenarios/x.yaml:4:20: steps[0].name: 'My Step' is not a valid step name")


def test_stop_an_unknown_step():
    assert one("steps:\n  - {at: 0s, name: srv, on: server, run: x, background: true}\n"
               "  - {at: 1s, stop: sv}\n") == \
        "scenarios/x.yaml:5:20: steps[1].stop: no step is named 'sv' (did you mean 'srv'?)"


def test_stop_a_later_step():
    assert one("steps:\n  - {at: 0s, stop: srv}\n  - {at: 1s, name: srv, on: server, run: x}\n") == \
        "scenarios/x.yaml:4:20: steps[0].stop: 'srv' (steps[1]) is not earlier than this step"


def test_stop_a_step_that_is_not_a_run_step():
    assert one("steps:\n  - {at: 0s, name: w, wait: 1s}\n  - {at: 1s, kill: [w]}\n") == \
        "scenarios/x.yaml:5:21: steps[1].kill[0]: 'w' (steps[0]) is a wait step: only run steps have processes"


def test_restart_a_step_whose_host_is_stopped():
    assert one("steps:\n  - {at: 0s, name: srv, on: server, run: x, background: true}\n"
               "  - {at: 1s, host: {stop: server}}\n  - {at: 2s, restart: srv}\n") == \
        "scenarios/x.yaml:6:23: steps[2].restart: cannot run 'srv' again: server is stopped"


def test_run_on_a_stopped_host():
    assert one("steps:\n  - {at: 0s, host: {stop: server}}\n  - {at: 1s, on: server, run: x}\n") == \
        "scenarios/x.yaml:5:18: steps[1].on: server is stopped at this time (by steps[0])"


def test_host_steps_follow_the_hosts_state():
    assert problems("steps:\n  - {at: 0s, host: {start: server}}\n  - {at: 1s, host: {stop: server}}\n"
                    "  - {at: 2s, host: {restart: server}}\n  - {at: 3s, host: {stop: server}}\n") == [
        "scenarios/x.yaml:4:28: steps[0].host.start: server is running at this time: start is for a host "
        "a step stopped",
        "scenarios/x.yaml:6:30: steps[2].host.restart: server is already stopped (by steps[1]); use start",
        "scenarios/x.yaml:7:27: steps[3].host.stop: server is already stopped (by steps[1])",
    ]


def test_host_steps_on_the_router_are_refused():
    assert one("steps:\n  - {at: 0s, host: {restart: router}}\n").endswith(
        "steps[0].host.restart: the router carries the impairments and cannot be stopped or restarted; "
        "to cut networks apart use partition")


def test_host_step_needs_one_action():
    assert one("steps:\n  - {at: 0s, host: {reboot: server}}\n") == \
        "scenarios/x.yaml:4:20: steps[0].host: a host action needs one of: stop, start, restart"
    assert one("steps:\n  - {at: 0s, host: {stop: server, start: server}}\n") == \
        "scenarios/x.yaml:4:35: steps[0].host.start: a host action does one thing, and this one has both " \
        "'stop' and 'start': make them two host actions"


def test_partition_of_an_unknown_network():
    assert one("steps:\n  - {at: 0s, partition: [clients, dmz]}\n") == \
        "scenarios/x.yaml:4:35: steps[0].partition[1]: unknown network 'dmz'; networks: clients, servers"


def test_partition_needs_two_networks():
    assert one("steps:\n  - {at: 0s, partition: [clients]}\n") == \
        "scenarios/x.yaml:4:25: steps[0].partition: expected a list of exactly 2 items, got 1"


def test_partition_twice_and_heal_without_partition():
    assert problems("steps:\n  - {at: 0s, partition: 'clients -> servers'}\n"
                    "  - {at: 1s, partition: 'clients -> servers'}\n  - {at: 2s, heal: [clients, servers]}\n"
                    "  - {at: 3s, heal: [clients, servers]}\n") == [
        "scenarios/x.yaml:5:25: steps[1].partition: clients->servers (by steps[0]) is already partitioned",
        "scenarios/x.yaml:7:20: steps[3].heal: clients->servers and servers->clients are not partitioned "
        "at this time",
    ]


def test_a_pair_acts_on_whichever_direction_needs_it():
    from lab.programs.shared.impairment import Link
    s = load_text(HEAD + "steps:\n  - {at: 0s, partition: 'clients -> servers'}\n"
                  "  - {at: 1s, partition: [clients, servers]}\n  - {at: 2s, heal: [clients, servers]}\n",
                  "x.yaml")
    assert s.steps[1].links == (Link("servers", "clients"),)
    assert s.steps[2].links == (Link("clients", "servers"), Link("servers", "clients"))


def test_impair_step_checks_like_the_initial_impairments():
    assert problems("steps:\n  - at: 1s\n    impair: {link: clients -> servrs, loss: 101%}\n") == [
        "scenarios/x.yaml:5:20: steps[0].impair.link: unknown network 'servrs' (did you mean 'servers'?); "
        "networks: clients, servers",
        "scenarios/x.yaml:5:45: steps[0].impair.loss: 101% is over 100%",
    ]


def test_wait_needs_a_positive_duration():
    assert one("steps:\n  - {at: 0s, wait: 0s}\n").endswith("steps[0].wait: must be longer than 0")


def test_steps_must_be_a_list():
    assert one("steps: {at: 0s}\n") == \
        "scenarios/x.yaml:3:8: steps: expected a list, got a mapping"


# --- expectations ------------------------------------------------------------------------

PROBE = "steps:\n  - {at: 0s, name: probe, on: clients, run: udp-measure --count 100}\n"


def test_expectation_naming_an_unknown_step():
    assert one(PROBE + "expect:\n  - prbe.delivery: 1\n") == \
        "scenarios/x.yaml:6:5: expect[0]['prbe.delivery']: no step is named 'prbe' (did you mean 'probe'?)"


def test_expectation_naming_a_step_without_results():
    assert one(PROBE + "  - {at: 1s, name: cut, partition: [clients, servers]}\nexpect:\n  - cut.x: 1\n") == \
        "scenarios/x.yaml:7:5: expect[0]['cut.x']: 'cut' (steps[1]) is a partition step: only run steps have results"


def test_expectation_on_an_unknown_field_of_a_known_program():
    assert one(PROBE + "expect:\n  - probe.rtt_ms.p95: {lt: 5}\n") == \
        "scenarios/x.yaml:6:5: expect[0]['probe.rtt_ms.p95']: rtt_ms has no field 'p95' (did you mean 'p99'?)"


def test_unknown_fields_of_other_commands_are_not_checked():
    load_text(HEAD + "steps:\n  - {at: 0s, name: mine, on: client1, run: python3 /work/mine.py}\n"
              "expect:\n  - mine.anything.at.all: 1\n", "x.yaml")


def test_expectation_key_syntax():
    assert one(PROBE + "expect:\n  - 'probe..delivery': 1\n").endswith(
        "expect[0]['probe..delivery']: 'probe..delivery' is not STEP.FIELD.PATH (optionally inside an "
        "aggregate like max(...))")


def test_unknown_aggregate():
    assert one(PROBE + "expect:\n  - avg(probe.delivery): {gt: 0.5}\n") == \
        "scenarios/x.yaml:6:5: expect[0]['avg(probe.delivery)']: unknown aggregate 'avg' (did you mean " \
        "'mean'?); aggregates: max, min, mean, sum, count, all, any, spread"


def test_unknown_operator():
    assert one(PROBE + "expect:\n  - probe.delivery: {betwen: [0.8, 0.9]}\n") == \
        "scenarios/x.yaml:6:22: expect[0]['probe.delivery'].betwen: unknown key (did you mean 'between'?)"


def test_operator_mapping_needs_an_operator():
    assert one(PROBE + "expect:\n  - probe.delivery: {}\n").endswith(
        "expect[0]['probe.delivery']: needs an operator: equals, not, lt, le, gt, ge, between, one_of, "
        "contains, matches, consistent_with_loss")


def test_two_expectations_in_one_item():
    assert one(PROBE + "expect:\n  - probe.delivery: 1\n    probe.error: null\n") == \
        "scenarios/x.yaml:6:5: expect[0]: an expectation is one 'step.field: test' pair, this has 2: " \
        "start each one with its own '- '"


def test_a_list_value_needs_one_of():
    assert one(PROBE + "expect:\n  - probe.error: [ECONNREFUSED, TIMEOUT]\n").endswith(
        "expect[0]['probe.error']: expected a value or an {operator: value} mapping; to allow several "
        "values use {one_of: [...]}")


def test_between_needs_low_then_high():
    assert one(PROBE + "expect:\n  - probe.delivery: {between: [0.9, 0.8]}\n") == \
        "scenarios/x.yaml:6:31: expect[0]['probe.delivery'].between: between [0.9, 0.8]: the low end comes first"
    assert one(PROBE + "expect:\n  - probe.delivery: {between: [0.9]}\n").endswith(
        "between: expected a list of exactly 2 items, got 1")


def test_units_must_fit_the_field():
    assert problems(PROBE + "expect:\n  - probe.delivery: {gt: 5ms}\n  - probe.rtt_ms.p99: {lt: 50%}\n") == [
        "scenarios/x.yaml:6:26: expect[0]['probe.delivery'].gt: a duration needs a field in milliseconds "
        "(*_ms) or seconds (*_s, elapsed); delivery has no time unit",
        "scenarios/x.yaml:7:28: expect[1]['probe.rtt_ms.p99'].lt: rtt_ms.p99 is in milliseconds, not a "
        "fraction: compare it with a duration or a number",
    ]


def test_ordering_needs_a_number_or_unit():
    assert one(PROBE + "expect:\n  - probe.delivery: {gt: high}\n").endswith(
        "expect[0]['probe.delivery'].gt: 'high' is not a number, duration (300ms, 5s) or percentage (90%)")


def test_misspelt_error_name():
    assert one(PROBE + "expect:\n  - probe.error: ECONREFUSED\n") == \
        "scenarios/x.yaml:6:18: expect[0]['probe.error']: 'ECONREFUSED' is not an error name the programs " \
        "report (did you mean 'ECONNREFUSED'?)"


def test_bad_regex():
    assert one(PROBE + "expect:\n  - probe.output: {matches: '(open'}\n").startswith(
        "scenarios/x.yaml:6:29: expect[0]['probe.output'].matches: '(open' is not a valid regular expression")


def test_a_field_is_needed_except_for_loss_and_count():
    assert one(PROBE + "expect:\n  - probe: {lt: 3}\n").endswith(
        "expect[0].probe: name a field to test: probe.FIELD (for example probe.exit_code)")
    load_text(HEAD + PROBE + "expect:\n  - count(probe): 1\n  - probe: {consistent_with_loss: 1%}\n", "x.yaml")


def test_loss_test_aggregates_and_confidence():
    assert one(PROBE + "expect:\n  - max(probe): {consistent_with_loss: 1%}\n").endswith(
        "consistent_with_loss works per host, or on pooled counts with sum(...), not with max")
    assert one(PROBE + "expect:\n  - probe: {consistent_with_loss: 1%, confidence: 0.99}\n") == \
        "scenarios/x.yaml:6:51: expect[0].probe.confidence: 0.99% is below 50%"
    assert one(PROBE + "expect:\n  - probe.delivery: {gt: 0.5, confidence: 99%}\n") == \
        "scenarios/x.yaml:6:31: expect[0]['probe.delivery'].confidence: confidence goes with consistent_with_loss"


def test_all_and_any_compare_with_equals():
    assert one(PROBE + "expect:\n  - all(probe.timed_out): {lt: 1}\n").endswith(
        "expect[0]['all(probe.timed_out)'].lt: all(...) is true or false: compare it with equals")


def test_problems_in_many_places_are_all_reported():
    found = problems("topology: {clients: 500}\nimpairments:\n  - {link: a -> b, loss: 200%}\n"
                     "steps:\n  - {at: 0s, on: nobody, run: x}\nexpect:\n  - nostep.x: 1\n")
    assert [line.split(": ")[0] for line in found] == [
        "scenarios/x.yaml:3:21", "scenarios/x.yaml:5:12", "scenarios/x.yaml:5:12",
        "scenarios/x.yaml:5:26", "scenarios/x.yaml:7:18", "scenarios/x.yaml:9:5"]


@pytest.mark.parametrize("line, message", [
    ("segment: 0", "impairments[0].segment: 0 is below the minimum of 1"),
    ("reset_after: 5", "impairments[0].reset_after: 5 has no unit: write it as 5B or 5KiB"),
    ("blackhole_after: '5'", "impairments[0].blackhole_after: '5' has no unit: write it as 5B or 5KiB"),
    ("reset_after: lots", "impairments[0].reset_after: 'lots' is not a size (like 100B, 1KiB, 500kB)"),
    ("blackhole_after: -1KiB", "impairments[0].blackhole_after: '-1KiB' is negative"),
    ("mtu: 40", "impairments[0].mtu: 40 is below the minimum of 68"),
    ("gap: 50ms", "gap needs segment"),
    ("blackhole_after: 1KiB\n    connections: 120%", "impairments[0].connections: 120% is over 100%"),
    ("reset_after: 1KiB\n    segment: -2", "impairments[0].segment: -2 is below the minimum of 1"),
])
def test_stream_fault_values_are_refused_naming_the_key(line, message):
    found = one(f"impairments:\n  - link: clients -> servers\n    {line}\n")
    assert found.startswith("scenarios/x.yaml:") and message in found, found
