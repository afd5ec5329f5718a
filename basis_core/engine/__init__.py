"""The orchestrator: signals → gate → orders → routing → fills → reconciliation → results.

policy.py        the execution policy (hedge window, fill-ratio thresholds, limits ...)
orders.py        our orders by client order id, each with its ORDER state machine
positions.py     hedged positions (opportunities), each with its HEDGE state machine
venues.py        venue health (VENUE machines) and the failure-mode responses
orchestrator.py  the loop that ties them to the venues, the kernels and the journal
"""
