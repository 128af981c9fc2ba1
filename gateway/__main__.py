"""``python -m gateway``: the operator CLI."""

from gateway.cli import main

raise SystemExit(main())
