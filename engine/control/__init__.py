"""Typed events and commands, the control socket and journal follower, host and GPU telemetry."""
