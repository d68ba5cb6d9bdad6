"""afr's headless campaign engine. It never imports Textual: the cockpit is a client of it."""

__version__ = "0.1.0"
