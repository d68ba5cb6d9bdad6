"""Bringing a task to afr: scaffold one (``afr task new``) and check it against the contract (``afr task check``)."""
