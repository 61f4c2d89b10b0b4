"""Benchmark: what a budget check costs (it runs in turn_begin and before every model call), and what
counting a message's usage adds to its write, in one process with no server around it.

A fresh SQLite file (or $DATABASE_URL) holds N users with `--messages` answers each spread over the
month; the checked user has a user budget, two groups with budgets and an organization cap. Timed
(wall clock, best of several rounds):
- `budget_check`: the budgets that apply (one query) + the two counters (one query);
- the alternative it replaced, an indexed SUM over the user's and everyone's answers of the month;
- `usage_add`: the two counter updates (F() expressions) made when a message's usage is stored.

    .venv/bin/python bench/budgets.py [--users 50] [--messages 400] [--calls 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402


def best_ms(call, *, rounds: int = 5, calls: int) -> float:
    for _ in range(min(20, calls)):
        call()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - started) / calls * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages", type=int, default=400, help="answers per user this month")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    common.print_machine()
    with common.workdir() as workdir:
        env = common.base_env(workdir)
        common.prepare_database(env)
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
        os.chdir(common.ROOT)
        rows = measure(args)
    print(common.table(["what", "ms per call", "notes"], rows))


def measure(args) -> list[list]:
    import django

    django.setup()
    from datetime import datetime, timezone as dt_timezone
    from decimal import Decimal

    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from django.db.models import Sum
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from agents.models import AIAgent, Message, UserAgentSession
    from usage.models import Budget
    from usage.services import budget_check, month_start, usage_add

    agent = AIAgent.objects.create(name="Bench", slug="bench", system_prompt_text="x")
    users = [User.objects.create_user(email=f"u{n}@example.com", name=f"U{n}", password=None) for n in range(args.users)]
    with transaction.atomic():
        for user in users:
            session = UserAgentSession.objects.create(owner=user, agent=agent, title="t")
            Message.objects.bulk_create(
                Message(session=session, seq=n + 1, role="assistant", input_tokens=100, output_tokens=50,
                        cost=Decimal("0.001"))  # fmt: skip
                for n in range(args.messages)
            )
            usage_add(user_id=user.pk, usage={"input_tokens": 100 * args.messages, "output_tokens": 50 * args.messages},
                      cost=Decimal("0.001") * args.messages)  # fmt: skip
    checked = users[0]
    Budget.objects.create(user=checked, monthly_tokens=10**12)
    for name in ("a", "b"):
        group = Group.objects.create(name=name)
        checked.groups.add(group)
        Budget.objects.create(group=group, monthly_tokens=10**11)
    Budget.objects.create(monthly_tokens=10**13)

    month = month_start()
    start = datetime(month.year, month.month, 1, tzinfo=dt_timezone.utc)

    def summed() -> None:
        answers = Message.objects.filter(role="assistant", created_at__gte=start)
        answers.filter(session__owner_id=checked.pk).aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
        answers.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))

    def counted() -> None:
        with transaction.atomic():
            usage_add(user_id=checked.pk, usage={"input_tokens": 1}, cost=Decimal("0.000001"))

    with CaptureQueriesContext(connection) as queries:
        budget_check(checked.pk)
    rows = [
        ["budget_check (budgets + counters)", best_ms(lambda: budget_check(checked.pk), calls=args.calls),
         f"{len(queries)} queries"],
        [f"SUM over answers instead ({args.users * args.messages:,} rows)", best_ms(summed, calls=max(10, args.calls // 10)),
         "user + organization"],
        ["usage_add (user + organization counters)", best_ms(counted, calls=args.calls), "in its own transaction"],
    ]  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
