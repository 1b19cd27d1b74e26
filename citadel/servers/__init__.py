"""Game-server processes: OS process control, identity and adoption, and (later) the actors.

``process_control`` spawns, watches, stops and samples server processes; ``identity`` names a
process by pid, create time and command line so it can be re-adopted after a Citadel restart.
Linux specifics live in ``_posix``.
"""
