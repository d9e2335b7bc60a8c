"""``python -m dgdm_lib train | evaluate | compare`` (see ``dgdm_lib.cli``)."""

import os
import sys

from dgdm_lib.cli import main

if __name__ == "__main__":
    if "OMP_WAIT_POLICY" not in os.environ:
        # Spinning OpenMP threads made training 3-10x slower on CPU cores shared with other jobs
        # (measured on 2 shared cores); the policy is read when torch loads OpenMP, which importing
        # dgdm_lib already did, hence one re-exec with it set. Set the variable yourself to opt out.
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, "-m", "dgdm_lib", *sys.argv[1:]])
    sys.exit(main())
