"""Outbound URLs (a job's ``url`` source, its ``callback_url``): http(s) only, no credentials shown,
and no loopback, private, link-local or metadata address (after DNS resolution) unless
``jobs.allow_private_urls`` names the host or a network that holds it.

``outbound_client`` connects to the address it checked: each request's host is resolved once,
every address checked, and the connection made to that IP (the Host header, TLS SNI and the
certificate check keep the name), so a name that answers a public address to the check and a
private one a moment later (DNS rebinding) cannot steer the request inside."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from urllib.parse import urlsplit, urlunsplit

import httpx

from app.errors import InvalidRequest, shown

MAX_URL_CHARS = 2048


def redact(url: str) -> str:
    """The URL without its user name and password (for listings and logs)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_form(url: str, field: str) -> None:
    """The URL's shape: http or https, a host, not too long (400 naming ``field`` otherwise)."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidRequest(f"{field}: longer than {MAX_URL_CHARS} characters", field=field)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidRequest(f"{field}: {shown(redact(url))} is not a URL", field=field) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidRequest(f"{field}: must be an http:// or https:// URL with a host", field=field)


async def check_reachable(url: str, field: str, allowed: tuple[str, ...]) -> str:
    """Resolve the URL's host; refuse (400 naming ``field``) an address that is not public,
    unless allowed. Raises for a name that does not resolve, too. The address to connect to."""
    check_form(url, field)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise InvalidRequest(f"{field}: the host {shown(host)} does not resolve", field=field) from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not _public(address) and not _allowed(host, address, allowed):
            raise InvalidRequest(
                f"{field}: {shown(host)} is a loopback, private or link-local address ({address}); "
                "the server's jobs.allow_private_urls setting can allow it",
                field=field,
            )
    if not addresses:
        raise InvalidRequest(f"{field}: the host {shown(host)} does not resolve", field=field)
    return str(addresses[0])


class _Pinned(httpx.AsyncBaseTransport):
    """Sends each request to the address ``check_reachable`` approved for its host (raises its
    ``InvalidRequest`` otherwise); SNI and the certificate are checked against the name."""

    def __init__(self, field: str, allowed: tuple[str, ...], verify: ssl.SSLContext | bool) -> None:
        self._field, self._allowed = field, allowed
        # No connection kept: one made (and its certificate checked) for a name is never reused
        # for another name at the same address.
        self._inner = httpx.AsyncHTTPTransport(
            verify=verify, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.raw_host.decode("ascii")  # (IDNA-encoded: as SNI wants it)
        address = await check_reachable(str(request.url), self._field, self._allowed)
        if address != host:
            request.url = request.url.copy_with(host=address)  # the Host header keeps the name
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def outbound_client(
    field: str, allowed: tuple[str, ...], timeout_s: float, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """A client for ``field``'s URLs that reaches only addresses checked as above, redirects not
    followed (the caller checks each hop by sending it again); ``verify``: httpx's, for TLS."""
    return httpx.AsyncClient(
        transport=_Pinned(field, allowed, verify), follow_redirects=False, timeout=timeout_s, trust_env=False
    )


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _allowed(
    host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, allowed: tuple[str, ...]
) -> bool:
    for entry in allowed:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name, compared above
    return False
