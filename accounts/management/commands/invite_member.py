from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator, validate_email

from accounts.invitations import LOCAL_ORIGIN, invite


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in error.message_dict.items())


class Command(BaseCommand):
    help = (
        "Make a one-time sign-in link for a member (created if missing, without a password): "
        "following it, they choose a password. The link is the last line of output."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", help="Username; created if it does not exist.")
        parser.add_argument("--email", default="", help="The member's email address, recorded on their account.")
        parser.add_argument(
            "--base-url", default="", help="The gateway's address as members reach it (default: PUBLIC_BASE_URL)."
        )

    def handle(self, *args, username: str, email: str, base_url: str, **options) -> None:
        origin = self._origin(base_url)
        member = self._member(username, email)
        if not member.is_active:
            raise CommandError(f"{member.username} is disabled: enable the account in the admin first.")
        link = invite(member, origin)
        self.stderr.write(
            f"One-time sign-in link for {member.username}, valid until {link.expires_at:%Y-%m-%d %H:%M} UTC; "
            "their older links no longer work. Send it to them, it is shown only once:"
        )
        self.stdout.write(link.url)

    def _origin(self, base_url: str) -> str:
        origin = base_url.strip().rstrip("/") or settings.PUBLIC_BASE_URL
        if not origin:
            self.stderr.write(f"PUBLIC_BASE_URL is not set: the link assumes {LOCAL_ORIGIN} (--base-url to change).")
            return LOCAL_ORIGIN
        try:
            URLValidator(schemes=["http", "https"])(origin)
        except ValidationError:
            raise CommandError(
                f"--base-url: {origin!r} is not an http(s) URL like https://gemini.example.com"
            ) from None
        return origin

    def _member(self, username: str, email: str):
        user_model = get_user_model()
        member = user_model.objects.filter(username=username).first() if "\x00" not in username else None
        if member is None:
            member = user_model(username=username, email=email)
            try:
                member.full_clean(exclude=["password"])
            except ValidationError as exc:
                raise CommandError(_problems(exc)) from None
            member.set_unusable_password()
            member.save()
            self.stderr.write(f"Created {member.username}, without a password.")
        elif email and email != member.email:
            try:
                validate_email(email)
            except ValidationError as exc:
                raise CommandError(f"email: {' '.join(exc.messages)}") from None
            member.email = email
            member.save(update_fields=["email"])
            self.stderr.write(f"Recorded {email} as the email of {member.username}.")
        return member
