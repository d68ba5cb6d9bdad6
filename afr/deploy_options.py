"""``--env`` and the real-deployment options shared by ``afr run``, ``repeat`` and ``heldout``."""

from __future__ import annotations

import argparse

from afr.common import UsageError
from engine.run.deployment import DEFAULT_USERNAME, Deployment, DeploymentError, parse_sites

ENVS = ("sim", "poc", "prod")


def add_deployment_arguments(parser: argparse.ArgumentParser, default_env: str | None = "sim") -> None:
    """``--env`` plus ``--startup-kit``, ``--username`` and ``--sites`` for ``--env prod``."""
    parser.add_argument(
        "--env",
        choices=ENVS,
        default=default_env,
        help="NVFlare environment: simulator, POC on localhost, or a real deployment (prod)"
        + ("" if default_env else " (default: the campaign's)"),
    )
    parser.add_argument(
        "--startup-kit", default=None, metavar="DIR", help="prod: the admin's NVFlare startup kit folder"
    )
    parser.add_argument(
        "--username", default=None, help=f"prod: the kit's admin user (default: {DEFAULT_USERNAME})"
    )
    parser.add_argument(
        "--sites",
        default=None,
        help="prod: the deployment's clients, site-1..site-k (default: all of the profile's sites)",
    )


def deployment_from_args(args: argparse.Namespace) -> dict | None:
    """The deployment ``--env prod`` names, as stored in the campaign options; None for sim/poc."""
    if args.env != "prod":
        if args.startup_kit or args.username or args.sites:
            raise UsageError("--startup-kit, --username and --sites go with --env prod")
        return None
    if not args.startup_kit:
        raise UsageError("--env prod needs --startup-kit DIR (the admin's NVFlare startup kit)")
    from pathlib import Path

    deployment = Deployment(
        str(Path(args.startup_kit).expanduser().resolve()),
        args.username or DEFAULT_USERNAME,
        parse_sites(args.sites),
    )
    try:
        deployment.check()
    except DeploymentError as error:
        raise UsageError(str(error)) from None
    return deployment.to_dict()
