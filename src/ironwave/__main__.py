"""``python -m ironwave`` runs the CLI."""
import sys

from ironwave.cli.main import main

sys.exit(main())
