"""SSRF protection: which URLs and addresses Parley may fetch, and connections pinned to them.

Every request goes through `GuardedTransport`, which resolves the host name, refuses the request
if any resolved address is not a public one, and then connects to the vetted address itself
(keeping the Host header and the TLS server name), so a second DNS answer cannot swap in an
internal address between the check and the connection. Redirects are separate requests, so each
hop is checked the same way.

Ports are not restricted: public sites do serve pages on ports other than 80 and 443, and what
keeps Parley away from internal services is the address check, which holds on every port.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import httpx

from backend.knowledge.fetching.errors import AddressRefused, FetchError

IPAddress = IPv4Address | IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

_PRIVATE = "a private network address"
_LOOPBACK = "a loopback address"
_LINK_LOCAL = "a link-local address (the range cloud metadata services use)"
_UNSPECIFIED = "an unspecified address"
_MULTICAST = "a multicast address"
_RESERVED = "a reserved address"
_SHARED = "a carrier-grade NAT address"

_V4_RULES: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(network), reason)
    for network, reason in (
        ("0.0.0.0/8", _UNSPECIFIED),
        ("10.0.0.0/8", _PRIVATE),
        ("100.64.0.0/10", _SHARED),
        ("127.0.0.0/8", _LOOPBACK),
        ("169.254.0.0/16", _LINK_LOCAL),
        ("172.16.0.0/12", _PRIVATE),
        ("192.0.0.0/24", _RESERVED),
        ("192.0.2.0/24", _RESERVED),
        ("192.88.99.0/24", _RESERVED),
        ("192.168.0.0/16", _PRIVATE),
        ("198.18.0.0/15", _RESERVED),
        ("198.51.100.0/24", _RESERVED),
        ("203.0.113.0/24", _RESERVED),
        ("224.0.0.0/4", _MULTICAST),
        ("240.0.0.0/4", _RESERVED),
    )
)
_V6_RULES: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(network), reason)
    for network, reason in (
        ("::/128", _UNSPECIFIED),
        ("::1/128", _LOOPBACK),
        ("100::/64", _RESERVED),
        ("2001:db8::/32", _RESERVED),
        ("fc00::/7", _PRIVATE),
        ("fe80::/10", _LINK_LOCAL),
        ("fec0::/10", _PRIVATE),
        ("ff00::/8", _MULTICAST),
    )
)
# IPv6 ranges that carry an IPv4 address inside: the IPv4 address decides.
_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")

# Cloud metadata services reachable by name; `.internal` is reserved for private networks.
_BLOCKED_HOSTNAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_BLOCKED_SUFFIXES = (".internal",)


def refusal_reason(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why Parley must not connect to `address` (a noun phrase), or None if it may.

    `allow_loopback` admits 127.0.0.0/8 and ::1 only, for tests against a local server; the
    IPv4-mapped forms of loopback stay refused, as does every other non-public range.
    """
    if allow_loopback and address.is_loopback:
        return None
    if isinstance(address, IPv4Address):
        for network, reason in _V4_RULES:
            if address in network:
                return reason
        return None if address.is_global else _RESERVED
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = refusal_reason(embedded)
        return f"{inner} inside an IPv6 address" if inner else None
    for network6, reason in _V6_RULES:
        if address in network6:
            return reason
    return None if address.is_global else _RESERVED


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_url(url: str | httpx.URL) -> httpx.URL:
    """Parse `url` and refuse what no address check can make safe: scheme, credentials, names."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(f"{url} is not a valid web address.") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise AddressRefused(
            f"Parley fetches only http:// and https:// addresses; {url} is not one."
        )
    if not parsed.host:
        raise FetchError(f"{url} has no host name.")
    if parsed.userinfo:
        raise AddressRefused(
            "The address contains a user name or password; Parley does not send credentials "
            "to sites. Remove them, or make the page public."
        )
    host = _host_of(parsed)
    if host in _BLOCKED_HOSTNAMES or host.endswith(_BLOCKED_SUFFIXES):
        raise AddressRefused(
            f"{host} is an internal or cloud metadata host name; Parley only fetches public "
            "web pages."
        )
    return parsed


def _host_of(url: httpx.URL) -> str:
    """The ASCII (IDNA) host name, lower case, without a trailing dot."""
    return url.raw_host.decode("ascii").lower().rstrip(".")


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to, in the resolver's order of preference."""
    literal = _literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"The name {host} could not be resolved; check the address.") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ip_address(str(info[4][0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchError(f"The name {host} could not be resolved; check the address.")
    return addresses


async def vet_host(host: str, port: int, *, allow_loopback: bool) -> list[IPAddress]:
    """Resolve `host` and return its addresses, refusing if any one of them is not public.

    All of them are checked, not just the first: a name that answers with one public and one
    private address could otherwise reach the private one on a retry.
    """
    addresses = await resolve_host(host, port)
    for address in addresses:
        reason = refusal_reason(address, allow_loopback=allow_loopback)
        if reason is None:
            continue
        if _literal_address(host) is not None:
            raise AddressRefused(
                f"The address {address} is {reason}; Parley only fetches public web pages."
            )
        raise AddressRefused(
            f"The address {host} resolves to {reason} ({address}); Parley only fetches public "
            "web pages."
        )
    return addresses


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that only connects to vetted public addresses, pinned per host.

    Each host name gets its own connection pool, so a TLS connection opened for one name is
    never reused for another that happens to share its address. Addresses are resolved once
    per transport: a crawl keeps talking to the address it checked.
    """

    def __init__(self, *, allow_loopback: bool, verify: ssl.SSLContext | bool = True) -> None:
        self._allow_loopback = allow_loopback
        self._verify = verify
        self._addresses: dict[tuple[str, int], list[IPAddress]] = {}
        self._pools: dict[str, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = check_url(request.url)
        host = _host_of(url)
        port = url.port or DEFAULT_PORTS[url.scheme]
        addresses = await self._vetted(host, port)
        pool = self._pool_for(host)
        extensions = dict(request.extensions)
        if _literal_address(host) is None:
            extensions["sni_hostname"] = host
        last_error: httpx.ConnectError | None = None
        for address in addresses:
            pinned = httpx.Request(
                request.method,
                url.copy_with(host=str(address)),
                headers=request.headers,
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return await pool.handle_async_request(pinned)
            except httpx.ConnectError as exc:
                # Nothing was sent; the next vetted address (say IPv4 after IPv6) may answer.
                last_error = exc
        raise last_error or FetchError(f"Parley could not connect to {host}.")

    async def _vetted(self, host: str, port: int) -> list[IPAddress]:
        key = (host, port)
        if key not in self._addresses:
            self._addresses[key] = await vet_host(host, port, allow_loopback=self._allow_loopback)
        return self._addresses[key]

    def _pool_for(self, host: str) -> httpx.AsyncHTTPTransport:
        if host not in self._pools:
            self._pools[host] = httpx.AsyncHTTPTransport(
                verify=self._verify, trust_env=False, retries=0
            )
        return self._pools[host]

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
