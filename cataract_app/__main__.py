"""`python -m cataract_app`: the same entry point as the `cataract-grader` script."""

import sys

from cataract_app.main import main

sys.exit(main())
