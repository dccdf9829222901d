"""`python -m ibmig.sm_cmd`: kept only because `ibmig.ibsim.harness` starts the SM
that way; the command is `ibmig.cli.sm` (`python -m ibmig.cli.sm`). Remove this
module when the harness's argv says `ibmig.cli.sm`."""

import sys

from ibmig.cli.sm import main

if __name__ == "__main__":
    sys.exit(main())
