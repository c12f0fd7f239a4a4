"""The frozen app's entry script: the same main() as the `cataract-grader` command."""

import sys

from cataract_app.main import main

if __name__ == "__main__":
    sys.exit(main())
