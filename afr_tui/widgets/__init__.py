"""The cockpit's widgets, one feature per module."""
