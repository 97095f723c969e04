"""The process helpers the tests that start real services use: one copy, in the library
(:mod:`lakescore.local.processes`), shared with the local deployment and the benchmarks."""

from lakescore.local.processes import (
    free_port,
    free_ports,
    group_alive,
    kill_group,
    live_groups,
    signal_group,
    stop_groups,
    wait_until,
)

__all__ = [
    "free_port",
    "free_ports",
    "group_alive",
    "kill_group",
    "live_groups",
    "signal_group",
    "stop_groups",
    "wait_until",
]
