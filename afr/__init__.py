"""The ``afr`` command: composes the headless engine and the Textual cockpit."""
