import sys

from pyvrel.cli import main

sys.exit(main())
