"""``nas storage check``: connect, name the backend, read the schema version and the studies."""

from __future__ import annotations

import argparse
from typing import Any

from nas.cli._common import command, group, storage_help

EXIT_SCHEMA = 1  # the storage answers but this Optuna cannot use its schema as it is


def register(commands: Any) -> None:
    sub = group(
        commands,
        "storage",
        "check a study storage",
        "storage_command",
        ["nas storage check sqlite:///nas.db"],
    )
    check = command(
        sub,
        "check",
        help="connect, show the backend, the schema version and the studies",
        description="Connect to a storage without changing it: the backend and its version, "
        "Optuna's schema version (and how to upgrade an old one), the studies and their "
        "trials. Exit 0 when nas can use it, 1 when the schema needs an upgrade, 2 when it "
        "cannot be reached.",
        examples=[
            "nas storage check",
            "nas storage check postgresql+psycopg://nas@db:5432/nas",
            "nas storage check journal:study.log",
        ],
    )
    check.add_argument("url", nargs="?", metavar="URL", help=storage_help())
    check.set_defaults(run=check_command)


def check_command(args: argparse.Namespace) -> int:
    from nas.study import check_storage, mask_password, resolve_storage, schema_advice

    url = resolve_storage(args.url)
    found = check_storage(url)
    print(f"storage  {mask_password(url)}")
    print(f"backend  {found.backend}")
    if found.schema is None:
        kind = "a journal log, no SQL schema" if url.startswith("journal:") else "no tables yet"
        print(f"schema   {kind} (nas study run creates what it needs)")
    else:
        state = "up to date" if found.up_to_date else "needs attention"
        print(f"schema   {found.schema} (this Optuna writes {found.head}): {state}")
    advice = schema_advice(found)
    if advice:
        print(advice)
    if found.studies is None:
        print("studies  not read: upgrade the schema first")
    else:
        print(f"studies  {len(found.studies)}")
        width = max((len(name) for name in found.studies), default=0)
        for name, trials in sorted(found.studies.items()):
            print(f"  {name:<{width}}  {trials} trials")
    return 0 if advice is None else EXIT_SCHEMA
