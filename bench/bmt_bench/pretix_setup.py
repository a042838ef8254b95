"""The pretix side of the peer benchmark; runs INSIDE pretix's own virtualenv, never BMT's.

    PRETIX_CONFIG_FILE=.../pretix.cfg DJANGO_SETTINGS_MODULE=pretix.settings \\
        <pretix venv>/bin/python pretix_setup.py setup [--seats 2000] [--out setup.json]
    ... pretix_setup.py reset [--seats 2000]

`setup` creates, idempotently, what the storm needs: an organizer, a team with every permission
and its API token, a live event, one admission product (90,000 VND) on an unlimited quota (the
seats are the limit), a seating plan of `--seats` seats in rows of 50 whose one category maps to
the product, and the event's seats generated from it (what pretix's own event API does). It
prints (or writes to --out) JSON: token, slugs, event id, item id and every seat GUID.

`reset` deletes the event's orders (and their log entries and carts) so every seat is free again.

pretix and Django are imported only inside the functions, after django.setup(). BMT's mypy (which
checks this file too) does not know them: the inline setting below makes them `Any`.
"""
# mypy: disable-error-code="import-not-found"

from __future__ import annotations

import argparse
import datetime as dt
import json
import string
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

ORGANIZER = "bmt-bench"
CATEGORY = "Standard"
PER_ROW = 50
PRICE = Decimal("90000")


def event_slug(seats: int) -> str:
    return f"storm-{seats}"


def row_labels(count: int) -> list[str]:
    letters = string.ascii_uppercase
    return (list(letters) + [a + b for a in letters for b in letters])[:count]


def layout(seats: int) -> dict[str, Any]:
    """A plan in pretix's format (static/seating/seating-plan.schema.json): one zone, rows of 50."""
    rows = []
    labels = row_labels((seats + PER_ROW - 1) // PER_ROW)
    for r, label in enumerate(labels):
        count = min(PER_ROW, seats - r * PER_ROW)
        rows.append(
            {
                "row_number": label,
                "row_label": f"Row {label}",
                "seat_label": "Seat %s",
                "position": {"x": 0, "y": 30 * r},
                "seats": [
                    {
                        "seat_guid": f"{label}-{n}",
                        "seat_number": str(n),
                        "position": {"x": 30 * n, "y": 0},
                        "category": CATEGORY,
                    }
                    for n in range(1, count + 1)
                ],
            }
        )
    return {
        "name": f"BMT bench hall, {seats} seats",
        "categories": [{"name": CATEGORY, "color": "#3b7dd8"}],
        "zones": [{"name": "Hall", "position": {"x": 0, "y": 0}, "rows": rows}],
        "size": {"width": 30 * (PER_ROW + 2), "height": 30 * (len(rows) + 1)},
    }


def setup(seats: int) -> dict[str, Any]:
    from django.conf import settings
    from django.db import transaction
    from django.utils.timezone import now
    from django_scopes import scopes_disabled
    from i18nfield.strings import LazyI18nString
    from pretix.base.models import (
        Event,
        Organizer,
        SeatCategoryMapping,
        SeatingPlan,
        Team,
    )
    from pretix.base.models.seating import (
        SeatingPlanLayoutValidator,
    )
    from pretix.base.services.seating import generate_seats

    with scopes_disabled(), transaction.atomic():
        organizer, _ = Organizer.objects.get_or_create(
            slug=ORGANIZER, defaults={"name": "BMT bench"}
        )
        team, _ = Team.objects.get_or_create(
            organizer=organizer,
            name="BMT bench API",
            defaults={
                "all_events": True,
                "all_event_permissions": True,
                "all_organizer_permissions": True,
            },
        )
        token = team.tokens.filter(active=True).first() or team.tokens.create(name="bench")

        event = organizer.events.filter(slug=event_slug(seats)).first()
        if event is None:
            event = Event.objects.create(
                organizer=organizer,
                slug=event_slug(seats),
                name=LazyI18nString({"en": f"BMT storm, {seats} seats"}),
                currency="VND",
                date_from=now() + dt.timedelta(days=30),
                live=False,
            )
            event.set_defaults()
            event.set_active_plugins(settings.PRETIX_PLUGINS_DEFAULT.split(","))
            event.save()

        item = event.items.first()
        if item is None:
            item = event.items.create(
                name=LazyI18nString({"en": "Admission"}),
                default_price=PRICE,
                admission=True,
                active=True,
            )
        quota = event.quotas.first()
        if quota is None:
            # Unlimited: the seats cap the sales, and pretix skips its quota lock (its best case).
            quota = event.quotas.create(name="Seats", size=None)
        quota.items.add(item)

        plan_name = f"BMT bench hall, {seats} seats"
        plan = organizer.seating_plans.filter(name=plan_name).first()
        if plan is None:
            data = layout(seats)
            SeatingPlanLayoutValidator()(data)
            plan = SeatingPlan.objects.create(
                organizer=organizer, name=plan_name, layout=json.dumps(data)
            )
        if event.seating_plan_id != plan.pk:
            event.seating_plan = plan
            event.save()
        SeatCategoryMapping.objects.update_or_create(
            event=event, subevent=None, layout_category=CATEGORY, defaults={"product": item}
        )
        if event.seats.filter(subevent=None).count() != seats:
            generate_seats(event, None, plan, {CATEGORY: item})
        if not event.live:
            event.live = True
            event.save()

        guids = list(
            event.seats.filter(subevent=None, product=item)
            .order_by("sorting_rank")
            .values_list("seat_guid", flat=True)
        )
    assert len(guids) == seats, f"{len(guids)} seats generated, {seats} expected"
    return {
        "token": token.token,
        "organizer": organizer.slug,
        "event": event.slug,
        "event_id": event.pk,
        "item": item.pk,
        "seats": guids,
    }


def reset(seats: int) -> dict[str, Any]:
    """Delete the event's orders the way pretix deletes test-mode ones (gracefully_delete_bulk).

    pretix deletes only test-mode orders itself; the bench's are real, so the same steps are taken
    here directly: positions (add-ons first), fees, transactions, refunds, payments, invoices,
    the orders, and their log entries.
    """
    from django.db import transaction
    from django_scopes import scopes_disabled
    from pretix.base.models import (
        CartPosition,
        Event,
        Invoice,
        LogEntry,
        Order,
        OrderFee,
        OrderPayment,
        OrderPosition,
        OrderRefund,
        Transaction,
    )
    from pretix.base.services.locking import lock_objects

    with scopes_disabled(), transaction.atomic():
        event = Event.objects.filter(organizer__slug=ORGANIZER, slug=event_slug(seats)).first()
        if event is None:
            return {"orders_deleted": 0}
        # Every order creation holds a shared lock on its event: the exclusive one waits for those
        # in flight and holds new ones back until this transaction ends.
        lock_objects([event])
        orders = Order.objects.filter(pk__in=list(event.orders.values_list("pk", flat=True)))
        count = orders.count()
        CartPosition.objects.filter(event=event).delete()
        OrderPosition.all.filter(order__in=orders, addon_to__isnull=False).delete()
        OrderPosition.all.filter(order__in=orders).delete()
        OrderFee.all.filter(order__in=orders).delete()
        Transaction.objects.filter(order__in=orders).delete()
        OrderRefund.objects.filter(order__in=orders).delete()
        OrderPayment.objects.filter(order__in=orders).delete()
        Invoice.objects.filter(order__in=orders).delete()
        LogEntry.objects.filter(event=event, action_type__startswith="pretix.event.order").delete()
        orders.delete()
    return {"orders_deleted": count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pretix_setup.py")
    parser.add_argument("mode", choices=("setup", "reset"))
    parser.add_argument("--seats", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)

    import django

    django.setup()
    result = setup(args.seats) if args.mode == "setup" else reset(args.seats)
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
