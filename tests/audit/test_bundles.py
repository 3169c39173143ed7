"""Export bundles and the standalone verifier: a bundle checks out with the public key
alone, and every kind of tampering is named at its first bad line, exit 1, no traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command

from fleet_audit_verify.cli import main
from fleet_audit_verify.signing import public_key_text
from tests.audit.support import make_events

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exported(settings, tmp_path) -> tuple[Path, Path]:
    """A bundle of events #2..#8 (checkpoints at 3 and 6) and the public key file."""
    settings.FLEET_AUDIT_CHECKPOINT_EVERY = 3
    events = make_events(9)
    bundle, key = tmp_path / "bundle.jsonl", tmp_path / "fleet.pub"
    call_command("audit", "export", "--since", events[1].timestamp.isoformat(), "--until",
                 events[8].timestamp.isoformat(), "--output", str(bundle), stderr=io.StringIO())
    out = io.StringIO()
    call_command("audit", "public-key", stdout=out, stderr=io.StringIO())
    key.write_text(out.getvalue())
    return bundle, key


def verify(bundle: Path, key: Path, capsys) -> tuple[int, str]:
    code = main([str(bundle), "--key", str(key)])
    return code, capsys.readouterr().out.strip()


def lines_of(bundle: Path) -> list[bytes]:
    return bundle.read_bytes().splitlines(keepends=True)


def test_a_bundle_holds_the_range_its_checkpoints_and_a_signed_manifest(exported, capsys):
    bundle, key = exported
    kinds = [json.loads(line)["kind"] for line in lines_of(bundle)]
    assert kinds == ["header", "event", "event", "checkpoint", "event", "event", "event", "checkpoint", "event",
                     "event", "manifest"]
    assert verify(bundle, key, capsys) == (0, verify(bundle, key, capsys)[1])
    code, out = verify(bundle, key, capsys)
    assert code == 0 and out.startswith("OK: 7 events (#2..#8), 2 checkpoints, manifest signed by key")


def _edit_event(lines: list[bytes], index: int, **changes) -> None:
    record = json.loads(lines[index])
    record.update(changes)
    lines[index] = json.dumps(record, ensure_ascii=False).encode() + b"\n"


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda lines: _edit_event(lines, 2, actor="mallory"),
     "FAILED at line 3 (event #3): stored hash does not match the event's content: it was altered"),
    (lambda lines: lines.pop(4),
     "FAILED at line 5 (event #5): follows #3: events are missing (#4), removed or reordered"),
    (lambda lines: lines.insert(5, lines.pop(4)),
     "FAILED at line 5 (event #5): follows #3: events are missing (#4), removed or reordered"),
    (lambda lines: lines.pop(3),
     "FAILED at line 4 (event #3): the checkpoint of #3 announced in the header is missing"),
    (lambda lines: lines.pop(),
     "FAILED at line 10 (event #8): the bundle ends without a manifest: it was truncated"),
    (lambda lines: lines.__setitem__(-1, lines[-1].replace(b'"count":7', b'"count":8')),
     "FAILED at line 11 (event #8): the manifest its signature does not verify"),
], ids=["altered", "deleted", "reordered", "checkpoint-removed", "truncated", "manifest-edited"])
def test_tampering_is_named_at_the_first_bad_line(exported, capsys, edit, expected):
    bundle, key = exported
    lines = lines_of(bundle)
    edit(lines)
    bundle.write_bytes(b"".join(lines))
    code, out = verify(bundle, key, capsys)
    assert code == 1 and out.startswith(expected), out


def test_a_wrong_key_is_named_at_the_first_signature(exported, capsys, tmp_path):
    bundle, _ = exported
    other = tmp_path / "other.pub"
    other.write_text(public_key_text(Ed25519PrivateKey.generate().public_key()))
    code, out = verify(bundle, other, capsys)
    assert code == 1 and out.startswith("FAILED at line 4 (event #3): checkpoint of #3") and \
        "which is not the given public key" in out


def test_unreadable_input_exits_2_with_a_sentence(exported, capsys, tmp_path):
    bundle, key = exported
    assert main([str(tmp_path / "nope.jsonl"), "--key", str(key)]) == 2
    (tmp_path / "bad.pub").write_text("not a key")
    with pytest.raises(SystemExit) as exit_:
        main([str(bundle), "--key", str(tmp_path / "bad.pub")])
    assert exit_.value.code == 2
    assert "a public key must be PEM" in capsys.readouterr().err
    (tmp_path / "junk.jsonl").write_bytes(b"\x00\xff garbage\n")
    assert main([str(tmp_path / "junk.jsonl"), "--key", str(key)]) == 1
    assert "not a JSON line" in capsys.readouterr().out


def test_the_verifier_cannot_import_django_or_fleet(tmp_path):
    """Run it with Django and fleet made unimportable: it must not notice."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
                       "        if name.split('.')[0] in ('django', 'fleet', 'celery', 'rest_framework'):\n"
                       "            raise ImportError('blocked: ' + name)\nsys.meta_path.insert(0, Block())\n")
    done = subprocess.run([sys.executable, "-m", "fleet_audit_verify", "--help"], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "fleet-audit-verify" in done.stdout


@pytest.mark.slow
def test_the_installed_console_script_in_a_clean_virtualenv(exported, tmp_path):
    """The wheel with no dependencies but cryptography, in a virtualenv of its own."""
    bundle, key = exported
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(dist), str(ROOT)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", str(next(dist.glob("fleet-*.whl")))], check=True)
    subprocess.run([*pip, "cryptography"], check=True, capture_output=True)
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import django"], capture_output=True).returncode
    ok = subprocess.run([str(venv / "bin" / "fleet-audit-verify"), str(bundle), "--key", str(key)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: 7 events"), ok.stdout + ok.stderr
    lines = lines_of(bundle)
    lines.pop(5)
    bundle.write_bytes(b"".join(lines))
    bad = subprocess.run([str(venv / "bin" / "fleet-audit-verify"), str(bundle), "--key", str(key)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout.startswith("FAILED at line 6 (event #6)") and not bad.stderr
