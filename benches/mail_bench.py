"""The Python side of the mailbox benchmark (standard library only).

    mail_bench.py fill PORT USER PASSWORD COUNT    # COUNT messages, each with a ~100 KB PDF
    mail_bench.py loop PORT USER PASSWORD OUTDIR   # imaplib: one FETCH per message
    mail_bench.py batch PORT USER PASSWORD OUTDIR  # imaplib: 50 messages per FETCH

`loop` and `batch` fetch every message of INBOX without marking it seen,
parse it with the email package, save its attachments under their SHA-256,
and print the seconds that took (login included).
"""

import email
import email.policy
import hashlib
import imaplib
import os
import random
import sys
import time
from email.message import EmailMessage


def pdf_with_image(seed: int) -> bytes:
    """A valid one-page PDF holding a 320x320 grey image of noise (~100 KB):
    a scan's size, and bytes that no compression shrinks."""
    rng = random.Random(seed)
    side = 320
    pixels = bytes(rng.getrandbits(8) for _ in range(side * side))
    content = f"q {side} 0 0 {side} 100 400 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(pixels))
        + pixels
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def connect(port: str, user: str, password: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", int(port))
    imap.login(user, password)
    return imap


def fill(port, user, password, count):
    imap = connect(port, user, password)
    for i in range(int(count)):
        message = EmailMessage()
        message["From"] = "Billing <billing@vendor.example>"
        message["To"] = "invoices@clerk.example"
        message["Subject"] = f"Invoice {i}"
        message["Message-ID"] = f"<bench-{i}@vendor.example>"
        message.set_content(f"Invoice {i} is attached.")
        message.add_attachment(
            pdf_with_image(i), maintype="application", subtype="pdf", filename=f"invoice-{i}.pdf"
        )
        imap.append("INBOX", None, None, message.as_bytes())
    imap.logout()


def save_attachments(raw: bytes, outdir: str) -> int:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    saved = 0
    for part in message.iter_attachments():
        data = part.get_payload(decode=True) or b""
        name = os.path.basename(part.get_filename() or "attachment")
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(outdir, f"{digest[:12]}-{name}"), "wb") as f:
            f.write(data)
        saved += 1
    return saved


def fetch_all(port, user, password, outdir, batch):
    os.makedirs(outdir, exist_ok=True)
    start = time.perf_counter()
    imap = connect(port, user, password)
    imap.select("INBOX", readonly=True)
    _, found = imap.uid("SEARCH", None, "ALL")
    uids = found[0].split()
    messages = saved = 0
    for i in range(0, len(uids), batch):
        group = b",".join(uids[i : i + batch])
        _, data = imap.uid("FETCH", group, "(BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                saved += save_attachments(item[1], outdir)
                messages += 1
    imap.logout()
    seconds = time.perf_counter() - start
    print(f"{messages} {saved} {seconds:.3f}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "fill":
        fill(*args)
    elif command == "loop":
        fetch_all(*args, batch=1)
    elif command == "batch":
        fetch_all(*args, batch=50)
    else:
        sys.exit(f"unknown command {command}")
