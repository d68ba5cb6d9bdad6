"""The ``afr`` command: composes the headless engine and the Textual cockpit."""

# First, before any third-party import: `python -m afr.cli` puts the working folder on sys.path,
# where a candidate could have planted a shadow module (a `psutil.py`) for the engine to import.
from engine.run.integrity import drop_untrusted_paths

drop_untrusted_paths()
