"""A real NVFlare deployment a candidate's job can be submitted to (``--env prod``).

afr talks to a deployment only through its admin startup kit (made by ``nvflare provision``):
the kit's certificates log in to the server's admin port, submit the job and download its
result. The deployment's clients are named like the profile's sites (``site-1``..``site-N``);
a deployment may federate only the first ``k`` of them (``--sites site-1,site-2``), and then
the job runs on and is scored at exactly those sites.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from engine.profile import Profile

DEFAULT_USERNAME = "admin@nvidia.com"  # NVFlare's own default admin name


class DeploymentError(ValueError):
    """A deployment that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Deployment:
    startup_kit: str  # the admin's startup kit folder (it holds startup/fed_admin.json)
    username: str = DEFAULT_USERNAME
    sites: tuple[str, ...] = ()  # the deployment's clients; empty: all of the profile's sites
    login_timeout: float = 30.0  # seconds; a loaded machine takes tens of seconds to log in

    @classmethod
    def of(cls, value: Deployment | dict | None) -> Deployment:
        """From a ``Deployment`` or its dict (as ``campaign.json`` stores it); None is an error."""
        if isinstance(value, Deployment):
            return value
        if not value or not value.get("startup_kit"):
            raise DeploymentError("--env prod needs --startup-kit DIR (the admin's startup kit)")
        return cls(
            str(value["startup_kit"]),
            str(value.get("username") or DEFAULT_USERNAME),
            tuple(value.get("sites") or ()),
            float(value.get("login_timeout", 30.0)),
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sites"] = list(self.sites)
        return data

    def check(self) -> None:
        """Refuse a folder that is not an admin startup kit, in one line."""
        kit = Path(self.startup_kit)
        if not (kit / "startup" / "fed_admin.json").is_file():
            raise DeploymentError(f"{kit} is not an NVFlare admin startup kit (no startup/fed_admin.json)")

    def profile_for(self, profile: Profile) -> Profile:
        """``profile`` with the deployment's clients: ``n_clients`` and the final-evaluation sites."""
        if not self.sites:
            return profile
        count = len(self.sites)
        expected = tuple(f"site-{i}" for i in range(1, count + 1))
        if self.sites != expected or count > profile.budget.n_clients:
            raise DeploymentError(
                f"--sites {','.join(self.sites)}: a deployment's clients are site-1..site-k "
                f"with k <= {profile.budget.n_clients} ({profile.name}'s sites)"
            )
        scored = profile.budget.final_eval_clients
        chosen = list(self.sites) if scored == "all" else [s for s in scored if s in self.sites]
        if not chosen:
            raise DeploymentError(f"--sites {','.join(self.sites)} holds none of the profile's scored sites")
        budget = profile.budget.model_copy(update={"n_clients": count, "final_eval_clients": chosen})
        return profile.model_copy(update={"budget": budget})


def parse_sites(text: str | None) -> tuple[str, ...]:
    """``site-1,site-2`` as a tuple; None or empty: ()."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())
