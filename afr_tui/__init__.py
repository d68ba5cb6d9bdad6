"""afr's Textual cockpit: renders engine state and sends engine commands, nothing more."""
