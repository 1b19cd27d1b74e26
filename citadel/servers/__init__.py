"""Game servers: OS process control, identity and adoption, and the per-server actors.

The OS layer, one concept a module (the actors decide *when*; these do the OS work):
``output`` splits console output into bounded lines; ``handles`` watches a spawned or adopted
process through a pidfd; ``spawn`` starts a server, or adopts one by its ``identity`` (pid,
create time, and command line or run marker, so it can be re-adopted after a Citadel
restart); ``ladder`` stops it step by step and ``cleanup`` leaves no descendant behind;
``sampler`` measures its CPU and RAM from a shared ``/proc`` table. Linux specifics live in
``_posix``.

The actors of one server (``process``, ``logs``, ``rcon``, ``metrics``, ``map``) share a
``runtime``; the ``fleet`` supervises them. The ``process`` actor is the lifecycle state
machine; its collaborators are ``process_status`` (state changes and what they publish),
``process_restarts`` (automatic-restart budget and timer), ``process_run`` (watching, timing,
stopping and cleaning up the current run), ``process_memory`` (what survives the actor's
crashes) and ``run_files``; its decisions are pure functions in ``policy``, its records go
through ``persistence``.
"""
