"""`python -m iotcert`: the same as the installed `iotcert` command."""

from iotcert.cli import main

raise SystemExit(main())
