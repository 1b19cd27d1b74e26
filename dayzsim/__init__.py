"""A stand-in DayZ dedicated server for Citadel's tests and demo."""
