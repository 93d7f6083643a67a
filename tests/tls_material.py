"""Test PKI made on the fly with `cryptography`: a CA, a server certificate for 127.0.0.1/localhost, client
certificates by common name, and RSA keys for JWTs with their JWKS."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_NOW = datetime.datetime.now(datetime.UTC)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Pki:
    ca_cert: bytes
    ca_key: rsa.RSAPrivateKey

    @classmethod
    def create(cls) -> Pki:
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certa test CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(days=1))
            .not_valid_after(_NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM), key)

    def issue(self, common_name: str, server: bool = False) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) signed by the CA."""
        key = _key()
        ca = x509.load_pem_x509_certificate(self.ca_cert)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(days=1))
            .not_valid_after(_NOW + datetime.timedelta(days=30))
        )
        if server:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self.ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        server_cert, server_key = self.issue("localhost", server=True)
        files = {"ca": self.ca_cert, "server_cert": server_cert, "server_key": server_key}
        paths = {}
        for name, content in files.items():
            paths[name] = directory / f"{name}.pem"
            paths[name].write_bytes(content)
        return paths


class JwtIssuer:
    """Signs tokens with an RSA key published in a JWKS file."""

    def __init__(self, key_id: str = "test-key") -> None:
        self.key = _key()
        self.key_id = key_id

    def jwks(self) -> dict[str, object]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.key_id, "use": "sig", "alg": "RS256"}]}

    def token(self, expires_in_s: float = 300, **claims: object) -> str:
        now = datetime.datetime.now(datetime.UTC)
        payload = {"exp": now + datetime.timedelta(seconds=expires_in_s), "iat": now, **claims}
        return jwt.encode(payload, _pem_key(self.key), algorithm="RS256", headers={"kid": self.key_id})
