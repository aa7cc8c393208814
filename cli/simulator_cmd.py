"""``rsu simulator``: run the RunSignUp look-alike on loopback (for demos and manual testing)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import typer

from rsu.cli.common import duration as duration_parser
from rsu.cli.common import number
from rsu.simulator import Faults, SimulatorServer, World, WorldConfig

app = typer.Typer(
    help="Run a local RunSignUp API look-alike (loopback only) with seeded data and faults.",
    no_args_is_help=True,
)


def _today_epoch() -> int:
    """Midnight UTC today, epoch seconds: the simulated races then lie 20-240 days ahead, inside
    ``rsu sync``'s default date window."""
    return int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def _config(
    seed: int, partners: int, races: int, events: int, registrations: int, start_epoch: int = 0
) -> WorldConfig:
    return WorldConfig(
        seed=seed,
        partners=partners,
        races_per_partner=races,
        events_per_race=(1, max(1, events)),
        registrations_per_event=(max(1, registrations // 2), max(1, registrations)),
        start_epoch=start_epoch or _today_epoch(),
    )


def _print_credentials(world: World) -> None:
    """One ready-to-paste ``rsu credentials add`` line per partner (these secrets are the
    simulator's own, fake by construction), plus the races each partner sees."""
    for c in world.credentials:
        pid = c.timing_partner_id
        if c.auth == "api_key":
            add = (
                f"RSU_API_SECRET={c.secret} rsu credentials add --partner {pid} "
                f"--api-key {c.principal}"
            )
        elif c.auth == "rsu_api_key":
            add = (
                f"RSU_RSU_API_SECRET={c.secret} rsu credentials add --partner {pid} "
                f"--rsu-api-key {c.principal}"
            )
        else:
            add = (
                f"RSU_BEARER_TOKEN={c.secret} rsu credentials add --partner {pid} --bearer-token -"
            )
        races = ",".join(str(r) for r in world.race_ids(pid))
        typer.echo(f"partner {pid} ({c.auth}, races {races}):\n  {add}")


def _print_caller(world: World, required: bool) -> None:
    """The ready-to-paste line that stores the world's API caller registration (RunSignUp's
    ``rsu_api_reg`` + ``X-RSU-API-REG-SECRET``; fake by construction, like the credentials)."""
    c = world.caller
    state = "required" if required else "optional, checked when sent"
    typer.echo(
        f"caller registration {c.reg_id} ({state}):\n"
        f"  RSU_API_REG_SECRET={c.secret} rsu credentials caller --token {c.param}"
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Loopback address to bind (127.0.0.1 only)."),
    port: int = typer.Option(0, min=0, max=65535, help="TCP port; 0 picks a free one."),
    seed: int = typer.Option(1, help="Seed for the generated world and the faults."),
    partners: int = typer.Option(3, min=1, help="Timing partners (one credential each)."),
    races: int = typer.Option(4, min=1, help="Races per partner."),
    events: int = typer.Option(3, min=1, help="At most this many events per race."),
    registrations: int = typer.Option(
        400, min=1, help="At most this many registrations per event."
    ),
    http_5xx: float = typer.Option(
        0.0, parser=number(0.0, 1.0), help="Rate of HTTP 5xx answers (0..1)."
    ),
    throttle: float = typer.Option(
        0.0, parser=number(0.0, 1.0), help="Rate of error 14 'Request throttled.' (0..1)."
    ),
    throttle_429: bool = typer.Option(False, help="Throttle with HTTP 429 + Retry-After."),
    truncated: float = typer.Option(
        0.0, parser=number(0.0, 1.0), help="Rate of truncated JSON bodies (0..1)."
    ),
    html_error: float = typer.Option(
        0.0, parser=number(0.0, 1.0), help="Rate of HTML error pages under HTTP 200 (0..1)."
    ),
    drop_connection: float = typer.Option(
        0.0, parser=number(0.0, 1.0), help="Rate of dropped connections (0..1)."
    ),
    latency_ms: float = typer.Option(
        0.0, parser=number(0.0), help="Added latency per request, milliseconds."
    ),
    advance_every: float = typer.Option(
        0.0,
        parser=duration_parser("s"),
        metavar="DURATION",
        help="Advance the world this often: 30s, 5m, 30 (seconds); 0: never.",
    ),
    duration: float = typer.Option(
        0.0,
        parser=duration_parser("s"),
        metavar="DURATION",
        help="Stop after this long: 10m, 600 (seconds); 0: run until Ctrl-C.",
    ),
    start_epoch: int = typer.Option(
        0, help="Simulator clock at start, epoch seconds (0: midnight UTC today)."
    ),
    require_caller: bool = typer.Option(
        False,
        "--require-caller",
        help="Refuse calls without the API caller registration (HTTP 400, error 17), as "
        "RunSignUp does from 2027-01-01. A wrong registration is always refused.",
    ),
    max_in_flight: int = typer.Option(
        2,
        min=0,
        help="Refuse a call while this many are being answered (error 14), as RunSignUp "
        "allows 2 concurrent calls from 2027 (0: no limit).",
    ),
    in_flight_429: bool = typer.Option(
        False, help="Refuse calls over --max-in-flight with HTTP 429 + Retry-After instead."
    ),
    multi_event_paging: str = typer.Option(
        "per_event",
        help="Paging of a several-event participant listing: per_event (each event paged on "
        "its own) or total (one merged page of results_per_page rows in all).",
    ),
    participants_shape: str = typer.Option(
        "array",
        help="A one-event /participants page as an array (what clients read) or object (the "
        "bare element of RunSignUp's documentation example).",
    ),
    removed_shape: str = typer.Option(
        "array", help="A one-event /removed-participants page as an array or object."
    ),
    max_page_size: int = typer.Option(
        0,
        min=0,
        help="Serve at most this many participants a page, whatever results_per_page asks "
        "(0: as asked, up to 2500).",
    ),
) -> None:
    """Serve the simulator and print its base URL and the credentials it accepts."""
    world = World.generate(_config(seed, partners, races, events, registrations, start_epoch))
    faults = Faults(
        seed=seed,
        http_5xx=http_5xx,
        throttle=throttle,
        throttle_http_429=throttle_429,
        truncated=truncated,
        html_error=html_error,
        drop_connection=drop_connection,
        latency_ms=latency_ms,
    )
    try:
        server = SimulatorServer(
            world,
            faults=faults,
            host=host,
            port=port,
            require_caller=require_caller,
            max_in_flight=max_in_flight,
            in_flight_http_429=in_flight_429,
            multi_event_paging=multi_event_paging,
            participants_shape=participants_shape,
            removed_shape=removed_shape,
            max_page_size=max_page_size,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with server as sim:
        typer.echo(f"base URL: {sim.base_url}  (clock {world.now})")
        _print_credentials(world)
        _print_caller(world, require_caller)
        limit = f"{max_in_flight} calls in flight" if max_in_flight else "no in-flight limit"
        typer.echo(f"limits: {limit}; multi-event paging {multi_event_paging}")
        typer.echo(f"then: rsu sync --base-url {sim.base_url}")
        typer.echo(f"advance: curl -X POST {sim.base_url}/_admin/advance -d '{{\"new\": 10}}'")
        started = last = time.monotonic()
        try:
            while duration <= 0 or time.monotonic() - started < duration:
                time.sleep(0.05)
                if advance_every > 0 and time.monotonic() - last >= advance_every:
                    last = time.monotonic()
                    changes = world.advance(seconds=max(1, int(advance_every)))
                    typer.echo(f"advanced: {len(changes)} changes, clock {world.now}")
        except KeyboardInterrupt:
            pass
    typer.echo("stopped")


@app.command()
def credentials(
    seed: int = typer.Option(1, help="Seed of the world."),
    partners: int = typer.Option(3, help="Timing partners."),
    races: int = typer.Option(4, help="Races per partner."),
) -> None:
    """Print the credentials and caller registration a world with these knobs accepts
    (without serving)."""
    world = World.generate(_config(seed, partners, races, 1, 1))
    _print_credentials(world)
    _print_caller(world, required=False)
