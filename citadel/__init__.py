"""Citadel: a host supervisor for dedicated game servers."""
