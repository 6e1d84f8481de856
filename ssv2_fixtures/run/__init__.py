"""One config in its own process: specs and events, the child, faults, sandbox, monitor, watchdog,
teardown, outcome and the record of the run."""
