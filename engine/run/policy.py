"""A profile's sandbox policy: ``[run] sandbox = "required"`` refuses to run without one.

``afr run``, ``afr resume``, ``afr repeat`` and ``afr heldout`` (and a ``--match`` control,
which is an ``afr run``) call ``require_sandbox`` before anything is written or started.
"""

from __future__ import annotations

import os
import shutil

from engine.profile import Profile
from engine.run.sandbox import BWRAP, FORCE_VAR, detect_sandbox


class SandboxRequired(ValueError):
    """A profile requires a sandbox and none works here; the message is one line."""


def why_no_sandbox() -> str:
    """Why ``detect_sandbox()`` says none, in a few words."""
    if os.environ.get(FORCE_VAR, "").lower() == "none":
        return f"{FORCE_VAR}=none is set"
    if not (os.access(BWRAP, os.X_OK) or shutil.which("bwrap")):
        return "bubblewrap (bwrap) is not installed"
    return "bubblewrap is installed but cannot build the sandbox here (user namespaces refused?)"


def require_sandbox(profile: Profile) -> str:
    """The sandbox runs will use ("bwrap" or "none"); raises ``SandboxRequired`` when the profile
    requires one and none works."""
    sandbox = detect_sandbox()
    if sandbox == "none" and profile.run.sandbox == "required":
        raise SandboxRequired(
            f"profile {profile.name} requires a sandbox ([run] sandbox = \"required\") but none works here: "
            f"{why_no_sandbox()}; install bubblewrap (apt-get install bubblewrap) or set sandbox = \"preferred\""
        )
    return sandbox
