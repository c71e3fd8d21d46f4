"""A TLS front for a server on loopback (moto, `serve`), with a private CA: an endpoint as a
VPC endpoint or a TLS-inspecting proxy presents it, signed by a CA no public root program
knows.

Usage: tls_front.py UPSTREAM_PORT DIR
Writes DIR/ca.pem (the CA's certificate), listens on 127.0.0.1, prints {"port": N} and
forwards each connection, once its TLS handshake is done, to 127.0.0.1:UPSTREAM_PORT.
Runs until stdin closes.
"""

import datetime
import json
import os
import socket
import ssl
import sys
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

upstream_port = int(sys.argv[1])
directory = sys.argv[2]


def name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


now = datetime.datetime.now(datetime.timezone.utc)
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (
    x509.CertificateBuilder()
    .subject_name(name("mcp-aws-tools test private CA"))
    .issuer_name(name("mcp-aws-tools test private CA"))
    .public_key(ca_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(hours=1))
    .not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    .add_extension(
        x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
    )
    .sign(ca_key, hashes.SHA256())
)
leaf_key = ec.generate_private_key(ec.SECP256R1())
leaf = (
    x509.CertificateBuilder()
    .subject_name(name("localhost"))
    .issuer_name(ca.subject)
    .public_key(leaf_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(hours=1))
    .not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .add_extension(
        x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
    )
    .sign(ca_key, hashes.SHA256())
)

pem = serialization.Encoding.PEM
with open(os.path.join(directory, "ca.pem"), "wb") as f:
    f.write(ca.public_bytes(pem))
chain = os.path.join(directory, "server-chain.pem")
key = os.path.join(directory, "server-key.pem")
with open(chain, "wb") as f:
    f.write(leaf.public_bytes(pem) + ca.public_bytes(pem))
with open(key, "wb") as f:
    f.write(
        leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(chain, key)


def pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.close()
            except OSError:
                pass


def serve(raw):
    try:
        client = context.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        # A client that does not trust the CA hangs up during the handshake.
        raw.close()
        return
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    pump(client, upstream)


listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)


def accept():
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=serve, args=(raw,), daemon=True).start()


threading.Thread(target=accept, daemon=True).start()
print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
sys.stdin.read()
