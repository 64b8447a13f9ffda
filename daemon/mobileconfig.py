"""What a phone downloads to trust this Pi's CA: the certificate, and an
iOS/iPadOS configuration profile holding it.

Android installs a CA from its DER file (Settings > Security > Encryption &
credentials > Install a certificate > CA certificate).  iOS installs one only
from a configuration profile (a plist with a ``com.apple.security.root``
payload), and then asks the user to turn on full trust for it.  Both are
built once at start from the CA certificate in the daemon's certfile.
"""

from __future__ import annotations

import hashlib
import plistlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from .ca import ca_of_chain

__all__ = ["CA_PATH", "CA_TYPE", "PROFILE_PATH", "PROFILE_TYPE", "CaDownloads", "ca_downloads", "profile"]

CA_PATH = "/ca.crt"
CA_TYPE = "application/x-x509-ca-cert"
PROFILE_PATH = "/ca.mobileconfig"
PROFILE_TYPE = "application/x-apple-aspen-config"
_NAMESPACE = uuid.UUID("6f0c2b52-3c1e-4c43-9a5e-7a1d6f3f1e20")


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
    digest = hashlib.sha256(der).hexdigest()
    ident = f"local.gravity-led.ca.{digest[:16]}"
    payload = {
        "PayloadType": "com.apple.security.root",
        "PayloadVersion": 1,
        "PayloadIdentifier": ident + ".root",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, digest + ".root")).upper(),
        "PayloadDisplayName": name,
        "PayloadDescription": "Lets this phone open the gravity-led page and its WebSocket without warnings.",
        "PayloadCertificateFileName": "gravity-led-ca.cer",
        "PayloadContent": der,
    }
    doc = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": ident,
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, digest)).upper(),
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


def ca_downloads(certfile: str | Path) -> CaDownloads | None:
    """The downloads for the CA that signed ``certfile``'s certificate, or
    None when it has none (a self-signed certificate, or no TLS)."""
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    try:
        pem = Path(certfile).read_bytes()
    except OSError:
        return None
    ca = ca_of_chain(pem)
    if ca is None:
        return None
    der = ca.public_bytes(Encoding.DER)
    names = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else "gravity-led CA"
    return CaDownloads(der=der, profile=profile(der, name=name), name=name)
