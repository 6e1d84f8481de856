"""What the markers do, callable without pytest: plans, limits search, budget, verdicts, the training
config, the campaign and the session."""
