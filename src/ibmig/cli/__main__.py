"""`python -m ibmig.cli ...`: the `ibmig` command."""

import sys

from ibmig.cli import main

sys.exit(main())
