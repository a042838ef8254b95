"""What each event mails: a template per kind, rendered to a subject and a plain-text body."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from string import Template

from bmt_common.events import OrderConfirmed, OtpRequested, UserRegistered

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Mail:
    template: str
    recipient: str
    subject: str
    text: str

    def html(self) -> str:
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in self.text.split("\n\n"))
        return f'<html><body style="font-family: sans-serif">{paragraphs}</body></html>'


def render(template: str, recipient: str, **values: str) -> Mail:
    source = (TEMPLATES / f"{template}.txt").read_text()
    first, _, body = Template(source).substitute(values).partition("\n\n")
    return Mail(template, recipient, first.removeprefix("Subject: ").strip(), body.strip())


def otp_mail(event: OtpRequested) -> Mail:
    return render(
        f"otp_{event.purpose}",
        event.email,
        otp=event.otp,
        expires=event.expires_at.strftime("%Y-%m-%d %H:%M"),
    )


def welcome_mail(event: UserRegistered) -> Mail:
    return render("welcome", event.email, name=event.name)


def tickets_mail(event: OrderConfirmed) -> Mail:
    return render(
        "tickets",
        event.email,
        order_id=str(event.order_id),
        cinema=event.cinema_name,
        hall=event.hall_name,
        starts=event.starts_at.strftime("%Y-%m-%d %H:%M"),
        tickets="\n".join(f"    seat {t.seat_label}: {t.code}" for t in event.tickets),
        total=f"{event.total:,}",
    )
