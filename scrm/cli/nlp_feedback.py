"""`scrm nlp eval --from-tickets`: how the complaint detection fared with the agents, and the
tickets they decided on as labelled examples for the next retraining (`工单 误判` = not a complaint)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from datetime import datetime
from pathlib import Path

from nlp import cli as nlp_cli
from scrm.cli.arguments import in_zone, iso_time

EXPORT_COLUMNS = ("ticket", "opened_at", "score", "signals", "verdict", "note", "text", "score_now")


def register(nlp_commands: argparse._SubParsersAction) -> None:
    """Adds the database-backed options to `scrm nlp eval` (nlp/ itself knows no database)."""
    evaluate = nlp_commands.choices["eval"]
    evaluate.add_argument("--from-tickets", action="store_true",
                          help="report the agents' verdicts on complaint tickets (工单 误判) instead of the labelled sets")
    evaluate.add_argument("--since", type=iso_time, help="with --from-tickets: tickets opened from this time on (ISO-8601)")
    evaluate.add_argument("--export", type=Path,
                          help="with --from-tickets: write the decided tickets as labelled examples (.csv)")
    evaluate.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    if not args.from_tickets:
        if args.since or args.export:
            print("--since and --export go with --from-tickets", file=sys.stderr)
            return 2
        return nlp_cli.cmd_eval(args)
    since = args.since
    if since is not None and since.tzinfo is None:
        from config.settings import load_settings

        since = in_zone(since, load_settings(toml_path=args.config).tz)
    return asyncio.run(from_tickets(args.config, since, args.export))


async def from_tickets(config_path: str | None, since: datetime | None, export: Path | None, out=None) -> int:
    import nlp
    from crm_core.audit import AuditService
    from crm_core.ticket_feedback import NOT_COMPLAINT, detection_verdicts
    from scrm.resources import with_session

    async def work(session):
        found = await detection_verdicts(session, since)
        AuditService(session).record(actor="cli", action="nlp.eval_tickets",
                                     detail=f"tickets={len(found)} export={export.name if export else '-'}")
        await session.commit()
        return found

    verdicts = await with_session(config_path, work)
    out = out or sys.stdout
    dismissed = [v for v in verdicts if v.verdict == NOT_COMPLAINT]
    analyzer = nlp.load()
    now_scores = [analyzer.analyze(v.text).complaint_score for v in verdicts]
    total = len(verdicts)
    print(f"complaint tickets decided by agents: {total}", file=out)
    print(f"  dismissed as 误判 (not a complaint): {len(dismissed)}"
          + (f" ({100 * len(dismissed) / total:.1f} %)" if total else ""), file=out)
    print(f"  confirmed (resolved):                {total - len(dismissed)}", file=out)
    if total:
        print(f"  precision of the detection:          {100 * (total - len(dismissed)) / total:.1f} %", file=out)
        still = sum(1 for v, s in zip(verdicts, now_scores) if v.verdict == NOT_COMPLAINT and s >= nlp.COMPLAINT_THRESHOLD)
        print(f"  dismissed ones the current model still flags: {still} of {len(dismissed)}", file=out)
    if dismissed:
        print("\nlabelled examples (verdict: not a complaint):", file=out)
        for v, score_now in zip(verdicts, now_scores):
            if v.verdict != NOT_COMPLAINT:
                continue
            opened = f"{v.score:.2f}" if v.score is not None else "-"
            print(f"  {v.number}  score {opened} -> now {score_now:.2f}  signals: {'、'.join(v.signals) or '-'}"
                  f"  text: {v.text[:80]}" + (f"  note: {v.note[:40]}" if v.note else ""), file=out)
    if export is not None:
        with export.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(EXPORT_COLUMNS)
            for v, score_now in zip(verdicts, now_scores):
                writer.writerow([v.number, v.opened_at.isoformat(), "" if v.score is None else v.score,
                                 "|".join(v.signals), v.verdict, v.note, v.text, score_now])
        print(f"\nwrote {total} labelled example(s) to {export}", file=out)
    return 0
