"""The campaign: its state machine and slots, the typed candidate and its record, review, status."""
