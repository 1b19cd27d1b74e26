"""A stand-in DayZ dedicated server for Citadel's tests and demo.

Run it as ``dayz-sim`` or ``python -m dayzsim`` with DayZ's command line; see docs/simulator.md
for the files it writes, the RCon commands it serves and the ``DAYZSIM_*`` failure controls.
"""
