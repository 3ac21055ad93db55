"""``kienco compliance``: hardened stations per area, for the ministry (table, CSV or PDF)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kienco import admin_token
from kienco.commands import add_url_option

if TYPE_CHECKING:
    from kienco.commands import Subcommands


def run(args: argparse.Namespace) -> int:
    import httpx
    from pydantic import TypeAdapter

    from kienco import compliance_report
    from plumbing.untrusted import terminal
    from rules.compliance import ComplianceReport

    params = {"province": args.province}
    if args.area_level:
        params["area_level"] = args.area_level
    try:
        response = httpx.get(
            f"{args.url.rstrip('/')}/api/v1/compliance",
            params=params,
            timeout=60,
            headers=admin_token.headers(args),
        )
        if response.status_code in (401, 403):
            text = terminal(f"kienco compliance: {response.status_code} {response.text}")
            print(text, file=sys.stderr)
            hint = admin_token.explain_refusal(response.status_code, args)
            print(f"kienco compliance: {hint}", file=sys.stderr)
            return 1
        response.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"kienco compliance: cannot ask the collector at {args.url}: {exc}", file=sys.stderr)
        return 1
    report = TypeAdapter(ComplianceReport).validate_json(response.content)
    if args.format == "table":
        compliance_report.render_table(report, sys.stdout, lang=args.lang)
    else:
        out = args.out or Path(f"compliance-{args.province}.{args.format}")
        with out.open("wb") as stream:
            render = getattr(compliance_report, f"render_{args.format}")
            render(report, stream, lang=args.lang)
        print(out)
    return 0


def add_parser(sub: Subcommands) -> None:
    compliance = sub.add_parser(
        "compliance",
        help="hardened stations per area: compliant, not (and why), missing — for the ministry",
    )
    compliance.add_argument("--province", required=True)
    compliance.add_argument("--format", choices=["table", "csv", "pdf"], default="table")
    compliance.add_argument(
        "--out", type=Path, help="file for csv/pdf (default: compliance-<p>.<fmt>)"
    )
    compliance.add_argument("--lang", choices=["vi", "en"], default="vi")
    compliance.add_argument(
        "--area-level", choices=["area", "province"], help="default: the policy's"
    )
    add_url_option(compliance)
    compliance.set_defaults(func=run)
