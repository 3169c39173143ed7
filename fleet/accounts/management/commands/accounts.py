"""``manage.py accounts``: users with a role, and API tokens (shown once)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from fleet.accounts import services
from fleet.accounts.models import ApiToken
from fleet.accounts.roles import Role
from fleet.core.commands import FleetCommand


class Command(FleetCommand):
    help = "Manage users, roles and API tokens."

    def add_command_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        user = sub.add_parser("create-user", help="create a user with a role")
        user.add_argument("username")
        user.add_argument("--role", required=True, choices=[r.group_name for r in Role])
        user.add_argument("--password", help="default: generated and printed once")
        token = sub.add_parser("create-token", help="issue an API token for a user")
        token.add_argument("username")
        token.add_argument("--name", default="cli")
        revoke = sub.add_parser("revoke-token", help="revoke a token by its key")
        revoke.add_argument("key")

    def handle(self, *args, **options) -> None:
        getattr(self, options["subcommand"].replace("-", "_"))(options)

    def create_user(self, options) -> None:
        try:
            user, password = services.create_user(options["username"], Role.parse(options["role"]),
                                                  options["password"])
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        self.stdout.write(f"created {user} ({options['role']})")
        if not options["password"]:
            self.stdout.write(f"password: {password}")

    def create_token(self, options) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise self.fail(f"no user {options['username']!r}")
        _, plaintext = services.issue_token(user, options["name"])
        self.stdout.write(plaintext)

    def revoke_token(self, options) -> None:
        token = ApiToken.objects.filter(key=options["key"]).first()
        if token is None:
            raise self.fail(f"no token with key {options['key']!r}")
        services.revoke_token(token)
        self.stdout.write(f"revoked {token}")
