"""Model tests: declarative behavioural tests, data checks and the pytest plugin."""
