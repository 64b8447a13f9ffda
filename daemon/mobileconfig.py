"""What a phone downloads to trust this Pi's CA: the certificate, and an
iOS/iPadOS configuration profile holding it.

Android installs a CA from its DER file (Settings > Security > Encryption &
credentials > Install a certificate > CA certificate).  iOS installs one only
from a configuration profile (a plist with a ``com.apple.security.root``
payload), and then asks the user to turn on full trust for it.  Both are
built once, when first asked for, from the CA certificate in the daemon's
certfile as it was at start.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["CA_PATH", "CA_TYPE", "PROFILE_PATH", "PROFILE_TYPE", "CaDownloads", "ca_downloads", "deferred_ca_downloads", "profile"]

CA_PATH = "/ca.crt"
CA_TYPE = "application/x-x509-ca-cert"
PROFILE_PATH = "/ca.mobileconfig"
PROFILE_TYPE = "application/x-apple-aspen-config"
_NAMESPACE = "6f0c2b52-3c1e-4c43-9a5e-7a1d6f3f1e20"
"""The UUID namespace of the profile's identifiers."""


@dataclass(frozen=True, slots=True)
class CaDownloads:
    """The two files, ready to serve."""

    der: bytes
    profile: bytes
    name: str
    """The CA's common name, as the phone shows it."""


def profile(der: bytes, *, name: str) -> bytes:
    """An iOS configuration profile (XML plist) that installs the CA ``der``.

    Its identifiers derive from the certificate, so the same CA always gives
    the same profile (a phone replaces it rather than adding a second one).
    """
    # Here, not at the top: the daemon builds a profile only when a phone asks
    # for one, and start-up on a Pi Zero need not pay for these imports.
    import hashlib
    import plistlib
    import uuid

    namespace = uuid.UUID(_NAMESPACE)
    digest = hashlib.sha256(der).hexdigest()
    ident = f"local.gravity-led.ca.{digest[:16]}"
    payload = {
        "PayloadType": "com.apple.security.root",
        "PayloadVersion": 1,
        "PayloadIdentifier": ident + ".root",
        "PayloadUUID": str(uuid.uuid5(namespace, digest + ".root")).upper(),
        "PayloadDisplayName": name,
        "PayloadDescription": "Lets this phone open the gravity-led page and its WebSocket without warnings.",
        "PayloadCertificateFileName": "gravity-led-ca.cer",
        "PayloadContent": der,
    }
    doc = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": ident,
        "PayloadUUID": str(uuid.uuid5(namespace, digest)).upper(),
        "PayloadDisplayName": name,
        "PayloadDescription": (
            "Trust this Raspberry Pi's own certificate authority. It may only vouch for this Pi's names "
            "and for private network addresses, never for other sites."
        ),
        "PayloadOrganization": "gravity-led",
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [payload],
    }
    return plistlib.dumps(doc, fmt=plistlib.FMT_XML)


def deferred_ca_downloads(certfile: str | Path) -> Callable[[], CaDownloads | None]:
    """Read ``certfile`` now (as the TLS context does at start); build its
    downloads on the first call (then kept).  Parsing the chain imports
    cryptography, seconds on a Pi Zero, which a phone's first connection
    does not need."""
    try:
        pem = Path(certfile).read_bytes()
    except OSError:
        pem = None
    return functools.cache(lambda: None if pem is None else ca_downloads(pem))


def ca_downloads(pem: bytes) -> CaDownloads | None:
    """The downloads for the CA that signed the first certificate of the
    PEM chain ``pem``, or None when it has none (a self-signed certificate)."""
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    from .ca import ca_of_chain

    ca = ca_of_chain(pem)
    if ca is None:
        return None
    der = ca.public_bytes(Encoding.DER)
    names = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else "gravity-led CA"
    return CaDownloads(der=der, profile=profile(der, name=name), name=name)
