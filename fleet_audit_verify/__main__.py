import sys

from fleet_audit_verify.cli import main

sys.exit(main())
