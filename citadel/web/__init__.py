"""The REST API (Litestar) and its wiring to the actors: auth, users, roles, servers, audit."""
