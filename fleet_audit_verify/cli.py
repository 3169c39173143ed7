"""``fleet-audit-verify BUNDLE --key PUBLIC_KEY``: check an export bundle, offline.

Exit 0 when every event, checkpoint and the manifest hold; 1 naming the first bad
line and event when anything does not; 2 when the bundle or key cannot be read.
It never prints a traceback: an auditor gets a sentence, not a stack.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet_audit_verify.bundle import read_lines, verify_bundle
from fleet_audit_verify.signing import BadKey, key_id, load_public_key


def _keys(paths: list[str]) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for path in paths:
        try:
            key = load_public_key(Path(path).read_text())
        except OSError as exc:
            raise SystemExit(_usage(f"cannot read key {path}: {exc.strerror}")) from None
        except (BadKey, UnicodeDecodeError) as exc:
            raise SystemExit(_usage(f"{path}: {exc}")) from None
        keys[key_id(key)] = key
    return keys


def _usage(message: str) -> int:
    print(f"fleet-audit-verify: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet-audit-verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="the bundle file (.jsonl, or gzip-compressed)")
    parser.add_argument("--key", action="append", required=True, metavar="PUBLIC_KEY",
                        help="Fleet's audit public key (PEM, or base64 of the raw 32 bytes); repeat for old keys")
    args = parser.parse_args(argv)
    keys = _keys(args.key)
    try:
        with open(args.bundle, "rb") as handle:
            report = verify_bundle(read_lines(handle), keys)
    except (OSError, EOFError) as exc:  # EOFError: a gzip file cut short
        return _usage(f"cannot read {args.bundle}: {exc.strerror or exc}")
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
