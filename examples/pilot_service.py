"""A pilot service using the Rhizome SDK: the booking page of the bike-share pilot (examples/bike-share.yaml).

    rhizome up                                          # broker, ingest API on :8700, worker, console
    rhizome pilot apply examples/bike-share.yaml        # prints the pilot's API key, once
    python examples/pilot_service.py --api-key rhz_...  # then, for one citizen:

    curl 'http://127.0.0.1:8800/consent?citizen=p-1842'
    curl 'http://127.0.0.1:8800/?citizen=p-1842'
    curl 'http://127.0.0.1:8800/ride?citizen=p-1842&minutes=12'
    curl 'http://127.0.0.1:8800/rate?citizen=p-1842&stars=4'

Citizens are identified by opaque ids; an e-mail address or phone number would be pseudonymised by the
SDK with RHIZOME_SECRET (or refused without it). Ctrl-C stops the service; leaving the `with` block
sends what the SDK still holds.
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from services.sdk import RhizomeClient

EXPERIMENT = "onboarding-v2"


def answer(rhizome: RhizomeClient, path: str, query: dict[str, str]) -> tuple[int, str]:
    """Returns the status and text of the booking service's answer to one request."""
    citizen = query.get("citizen", "")
    if not citizen:
        return 400, "which citizen? add ?citizen=<opaque id>"
    if path == "/consent":
        rhizome.consent(citizen, granted=query.get("granted", "yes") == "yes")
        return 200, "thank you, your choice is recorded"
    if path == "/":
        # Local assignment, no network call; None (no copy of the registry yet) shows the default page.
        variant = rhizome.variant(EXPERIMENT, citizen) or "control"
        return 200, "Step 1 of 3: pick a bike near you" if variant == "guided" else "Book a bike"
    if path == "/ride":
        minutes = float(query.get("minutes", "0"))
        rhizome.track(citizen, "ride", minutes, properties={"channel": "web"})
        rhizome.track(citizen, "trip_completed", properties={"channel": "web"})
        return 200, f"enjoy your {minutes:g}-minute ride"
    if path == "/rate":
        rhizome.feedback(citizen, "rating", score=float(query.get("stars", "5")))
        return 200, "thanks for the rating"
    return 404, "no such page"


def make_handler(rhizome: RhizomeClient) -> type[BaseHTTPRequestHandler]:
    """Returns the request handler class of the booking service, reporting to `rhizome`."""

    class Booking(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                status, text = answer(rhizome, url.path, query)
            except ValueError as exc:  # e.g. stars=9: the SDK names the field and what it expects
                status, text = 400, str(exc)
            body = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Booking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-key", required=True, help="the pilot's API key (rhizome pilot apply prints it)")
    parser.add_argument("--ingest", default="http://127.0.0.1:8700", help="the Rhizome ingest API")
    parser.add_argument("--port", type=int, default=8800, help="the port this service listens on")
    args = parser.parse_args()
    with RhizomeClient(args.ingest, args.api_key, source="bike-booking@1.0") as rhizome:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(rhizome))
        print(f"booking service on http://127.0.0.1:{args.port}/?citizen=p-1842")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.server_close()
    print(f"stopped; {rhizome.stats()}")


if __name__ == "__main__":
    main()
