import sys

from exprbench.cli import main

sys.exit(main())
