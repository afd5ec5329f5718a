"""The orchestrator: signals → gate → orders → routing → fills → reconciliation → results.

core.py       EngineCore: records in, commands out; reads no clock and no venue
decisions.py  its signals: built-in scanner, external signals, dispatch-time gate, sizing
decide.py     the gate and sizing as one compiled call; the Python path of decisions.py the reference
hedging.py    its hedged positions: symmetry, completion, isolation, unwind, timed checks
fees.py       base a venue kept as fees once its fee asset ran out, bought back by policy
maker.py      the maker_taker style: post-only quotes repriced with the books, each fill hedged at once
allowance.py  a clustered engine's share of the shared limits, spent on the decision path
operator.py   its operator commands (halt, resume, flatten, cancel-all, pause a venue, set a limit)
parts.py      what core.py and its two mixins share through `self`, declared once
actions.py    what the engine does for each action a state table names: one dispatch per machine
market.py     books, marks, volatility (numba kernel state), one compiled step per batch
orders.py     our orders by client order id, each with its ORDER state machine
positions.py  hedged positions (opportunities), each with its HEDGE state machine
venues.py     venue health (VENUE machines) and the failure-mode responses
policy.py     the execution policy (hedge window, fill-ratio thresholds, limits ...)
signals.py    external signals from a JSON-lines file, as records
io.py         VenueIO: venues in, records out; commands out through the Cython router
runner.py     one run in one process: io, core, journal, ledger, reconciliation
supervisor.py the run's tasks, watched: the first to fail stops the run with its error
control.py    the operator's control socket (RUN_DIR/ctl.sock) that `basis ctl` talks to
alerts.py     the [alerts] hook: HALTED, PROTECTIVE, mismatches, venue DOWN, rate-limited
clustered.py  `basis run` with [cluster]: the run's side of the NATS link (basis_core/cluster/)
procs.py      the pinned io process + engine process (+ standby) joined by rings
build.py      a config into the engine's policy, instrument rules and fixed marks
scenario.py   what `basis run` does: a scenario's world, the runner, the run directory
stopping.py   SIGINT / SIGTERM during `basis run`: settle and report, or a second one: stop at once
replay.py     re-deciding a run from its journal
resume.py     `basis run --resume`: an unfinished run directory taken up after its processes died
checkpoint.py the engine's state on disk every N journaled records; a restart starts from it
report.py     the end of a run: report.json, results.sqlite, report.html
styles.py     one scenario under each execution style, side by side (`basis styles`)
"""
