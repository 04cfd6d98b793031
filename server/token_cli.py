"""``stirfried-token``: mint a client token for development and tests.

    stirfried-token --config config/production.yaml --subject alice --tasks add,count_to --ttl 3600

prints an HS256 JWT signed with the config's ``stirfried_auth_secret`` (or
``STIRFRIED_AUTH_SECRET``). Production web backends mint their own tokens with
any JWT library and the same secret: see the README.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stirfried.config import config_path_from_environment, load_config
from stirfried.server.caller import Authenticator
from stirfried.settings import ConfigError


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stirfried-token", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=config_path_from_environment(), help="the gateway's YAML file")
    parser.add_argument("--subject", required=True, help="who the token is for (the 'sub' claim)")
    parser.add_argument(
        "--tasks", type=_names, default=[], help="task names it may schedule, comma-separated; * for any"
    )
    parser.add_argument("--follow", type=_names, default=[], help="task ids it may follow, comma-separated")
    parser.add_argument(
        "--tags", type=_names, default=[], help="tags for the tasks it schedules, comma-separated"
    )
    parser.add_argument(
        "--follow-tags", type=_names, default=[], help="it may follow tasks with these tags, comma-separated"
    )
    parser.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires (default 3600)")
    arguments = parser.parse_args(argv)
    if not arguments.config:
        parser.error("--config (or STIRFRIED_CONFIG) is required")
    try:
        settings = load_config(arguments.config).stirfried
    except ConfigError as error:
        print(f"stirfried-token: configuration error: {error}", file=sys.stderr)
        return 2
    if not settings.auth_secret:
        print("stirfried-token: the configuration has no stirfried_auth_secret", file=sys.stderr)
        return 2
    authenticator = Authenticator(settings.auth_secret, anonymous=False)
    print(
        authenticator.mint(
            arguments.subject,
            arguments.tasks,
            arguments.follow,
            arguments.ttl,
            tags=arguments.tags,
            follow_tags=arguments.follow_tags,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
