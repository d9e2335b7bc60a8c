"""``python -m dgdm_lib train | evaluate | compare`` (see ``dgdm_lib.cli``)."""

import sys

from dgdm_lib.cli import main

if __name__ == "__main__":
    sys.exit(main())
