"""``scrm simulator``: run the fake WeCom API standalone with the sample company."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``simulator`` subcommand; the parser sets ``func(args) -> int``."""
    parser = subparsers.add_parser("simulator", help="run a fake WeCom API (demo credentials, sample company)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on (default: 8090)")
    parser.add_argument("--contacts", type=int, default=0,
                        help="instead of the sample customers, a generated company of this many external contacts")
    parser.add_argument("--reps", type=int, default=40, help="sales reps the generated contacts belong to (default: 40)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the demo credentials the service must be configured with, then serve until Ctrl-C."""
    from aiohttp import web

    from connectors.wecom.simulator.sample_data import DEMO_OPEN_KFID, sample_state
    from connectors.wecom.simulator.server import SimulatorAccessLogger, create_simulator_app

    state = sample_state()
    if args.contacts:
        from connectors.wecom.simulator.contacts import generate_company

        generate_company(state, args.contacts, reps=args.reps)
    print("WeCom simulator (demo credentials, not secret):")
    print(f"  api base:          http://{args.host}:{args.port}/cgi-bin/")
    print(f"  corp id:           {state.corp_id}")
    print(f"  agent id:          {state.agent_id}")
    print(f"  secret:            {state.secret}")
    print(f"  callback token:    {state.callback_token}")
    print(f"  encoding aes key:  {state.encoding_aes_key}")
    print(f"  kf open_kfid:      {DEMO_OPEN_KFID}")
    print(f"  sent so far:       http://{args.host}:{args.port}/sim/state", flush=True)
    web.run_app(create_simulator_app(state), host=args.host, port=args.port, print=None,
                access_log_class=SimulatorAccessLogger)
    return 0
